"""`engage-consumer validate`: every invalid event reported by place and problem, exit status."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from consumer import cli

if TYPE_CHECKING:
    import pytest

EXAMPLES = Path(__file__).resolve().parents[3] / "schemas" / "examples"
VALID = sorted((EXAMPLES / "order-event").glob("*.json"))


def _event(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(
        (EXAMPLES / "order-event" / "upserted.json").read_bytes()
    )
    document.update(changes)
    return document


def _bad_order_id() -> dict[str, Any]:
    document = _event()
    document["data"]["order"]["orderId"] = 10042
    return document


def _line(document: object) -> bytes:
    return orjson.dumps(document) + b"\n"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(["validate", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_all_valid_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A JSON-lines file of valid events prints the count and exits 0."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(_line(orjson.loads(p.read_bytes())) for p in VALID))
    assert _run([str(events)], capsys) == (0, f"{len(VALID)} valid, 0 invalid\n", "")


def test_invalid_lines_are_reported_by_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each invalid line is named with its number (blank lines count) and what is wrong."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(
        _line(_event())
        + b"\n"
        + _line(_bad_order_id())
        + b"not json\n"
        + _line(_event(type="order.refunded"))
        + _line(["an", "array"])
    )
    status, out, err = _run([str(events)], capsys)
    assert (status, err) == (1, "")
    assert out.splitlines() == [
        "line 3: data.order.orderId: must be a string",
        "line 4: not UTF-8 JSON: invalid literal, expected 'null' at column 1",
        (
            "line 5: type: 'order.refunded' is not an event type this service handles"
            " (order.upserted, order.action, order.deleted, order.confirmed, order.shipped,"
            " order.delivered, order.cancelled, order.completed)"
        ),
        "line 6: the event must be a JSON object, not an array",
        "1 valid, 4 invalid",
    ]


def test_array_items_are_reported_by_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A JSON array is checked item by item; items are numbered from 1."""
    events = tmp_path / "events.json"
    events.write_bytes(
        orjson.dumps([_event(), _bad_order_id(), _event(id="")], option=orjson.OPT_INDENT_2)
    )
    assert _run([str(events)], capsys) == (
        1,
        (
            "item 2: data.order.orderId: must be a string\nitem 3: id: must not be empty\n"
            "1 valid, 2 invalid\n"
        ),
        "",
    )


def test_pretty_printed_single_event(capsys: pytest.CaptureFixture[str]) -> None:
    """A file holding one pretty-printed event is checked as one document."""
    invalid = EXAMPLES / "invalid" / "misspelt-data-member.json"
    assert _run([str(invalid)], capsys) == (
        1,
        (
            "document: data.actiondata: is not allowed here"
            " (allowed: order, revision, language, actionData)\n0 valid, 1 invalid\n"
        ),
        "",
    )


def test_several_files_are_prefixed_with_their_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With more than one file, each problem names its file and the summary covers all."""
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(_line(_event(time="soon")))
    status, out, _ = _run([str(VALID[0]), str(bad)], capsys)
    assert (status, out.splitlines()) == (
        1,
        [
            (
                f"{bad}: line 1: time: must be an RFC 3339 date-time with an offset,"
                " e.g. 2025-03-01T10:15:00Z"
            ),
            "1 valid, 1 invalid",
        ],
    )


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one machine-readable report with every problem."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(_line(_event()) + _line(_bad_order_id()))
    status, out, _ = _run(["--json", str(events)], capsys)
    assert status == 1
    assert orjson.loads(out) == {
        "valid": 1,
        "invalid": 1,
        "problems": [
            {
                "file": str(events),
                "where": "line 2",
                "reason": "schema",
                "detail": "data.order.orderId: must be a string",
                "orderId": "ORD-10042",
            }
        ],
    }


def test_stdin_is_read_for_dash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-` reads events from standard input."""
    stdin = io.TextIOWrapper(io.BytesIO(_line(_event()) + _line(_event(id="e-2"))))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert _run(["-"], capsys) == (0, "2 valid, 0 invalid\n", "")


def test_empty_input_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file with no events has nothing wrong with it."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n  \n")
    assert _run([str(empty)], capsys) == (0, "0 valid, 0 invalid\n", "")


def test_broken_array_is_reported_as_the_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An array that does not parse has no items to number: the document is reported."""
    broken = tmp_path / "broken.json"
    broken.write_bytes(b'[{"specversion": "1.0"},')
    status, out, _ = _run([str(broken)], capsys)
    assert (status, out.splitlines()[-1]) == (1, "0 valid, 1 invalid")
    assert out.startswith("document: not UTF-8 JSON: ")


def test_max_bytes_applies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Events over --max-bytes are refused as the service would refuse them."""
    events = tmp_path / "events.jsonl"
    line = _line(_event())
    events.write_bytes(line)
    size = len(line) - 1
    assert _run(["--max-bytes", "100", str(events)], capsys) == (
        1,
        f"line 1: the value is {size} bytes; the limit is 100\n0 valid, 1 invalid\n",
        "",
    )


def test_unreadable_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file that cannot be read exits 2 with the reason on stderr and nothing checked."""
    missing = tmp_path / "missing.jsonl"
    assert _run([str(VALID[0]), str(missing)], capsys) == (
        2,
        "",
        f"engage-consumer validate: cannot read {missing}: No such file or directory\n",
    )


def test_installed_command_reads_stdin() -> None:
    """The console script validates events piped to it and exits 1 on an invalid one."""
    script = Path(sys.executable).parent / "engage-consumer"
    result = subprocess.run(
        [str(script), "validate", "-"],
        input=_line(_event()) + _line(_bad_order_id()),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout.decode(), result.stderr.decode()) == (
        1,
        "line 2: data.order.orderId: must be a string\n1 valid, 1 invalid\n",
        "",
    )
