"""``engage-consumer validate``: check events against the contract before they reach Kafka.

Producers run it on a file of events (one JSON document per line, a JSON array, or a single
event) or on standard input. Each event goes through the consumer's own decoder, so the verdict is
the one the running service would reach, minus the record-key check (a file has no keys). Every
invalid event is reported with where it is and what exactly is wrong::

    line 3: data.order.orderId: must be a string
    11 valid, 1 invalid

Exit status: 0 when every event is valid, 1 when any is not, 2 when a file cannot be read.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

# Mirrors consumer.events.DEFAULT_MAX_BYTES; kept literal so building the parser imports nothing.
_DEFAULT_MAX_BYTES = 1_000_000


@dataclass(frozen=True, kw_only=True, slots=True)
class Problem:
    """One invalid event: where it is and what the decoder said."""

    file: str
    where: str
    reason: str
    detail: str
    order_id: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class _Piece:
    where: str
    value: bytes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments."""
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="events: one JSON per line, a JSON array, or one event; - reads standard input",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        dest="as_json",
        help="print one JSON report ({valid, invalid, problems: [...]}) instead of text",
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=_DEFAULT_MAX_BYTES,
        metavar="N",
        help=f"largest accepted event in bytes, as MAX_RECORD_BYTES (default {_DEFAULT_MAX_BYTES})",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Validate the named files and report; returns the exit status."""
    import orjson  # noqa: PLC0415 - the parser is built for every command; import on use

    inputs: list[tuple[str, bytes]] = []
    for name in args.files:
        try:
            content = sys.stdin.buffer.read() if name == "-" else _read(name)
        except OSError as exc:
            sys.stderr.write(f"engage-consumer validate: cannot read {name}: {exc.strerror}\n")
            return 2
        inputs.append(("<stdin>" if name == "-" else name, content))

    valid, problems = check_inputs(inputs, max_bytes=args.max_bytes)
    many = len(inputs) > 1
    if args.as_json:
        report = {
            "valid": valid,
            "invalid": len(problems),
            "problems": [
                {
                    "file": p.file,
                    "where": p.where,
                    "reason": p.reason,
                    "detail": p.detail,
                    "orderId": p.order_id,
                }
                for p in problems
            ],
        }
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for p in problems:
            prefix = f"{p.file}: " if many else ""
            sys.stdout.write(f"{prefix}{p.where}: {p.detail}\n")
        sys.stdout.write(f"{valid} valid, {len(problems)} invalid\n")
    return 1 if problems else 0


def check_inputs(inputs: list[tuple[str, bytes]], *, max_bytes: int) -> tuple[int, list[Problem]]:
    """Decode every event of every input; return the count of valid ones and the problems."""
    from consumer.errors import InvalidEventError  # noqa: PLC0415
    from consumer.events import decode_record  # noqa: PLC0415

    valid = 0
    problems: list[Problem] = []
    for file, content in inputs:
        for index, piece in enumerate(_pieces(content)):
            try:
                # No key: a file has none, and the key check is the only one that needs it.
                decode_record(
                    key=None,
                    value=piece.value,
                    topic=file,
                    partition=0,
                    offset=index,
                    max_bytes=max_bytes,
                )
            except InvalidEventError as exc:
                problems.append(
                    Problem(
                        file=file,
                        where=piece.where,
                        reason=exc.reason,
                        detail=exc.detail,
                        order_id=exc.order_id,
                    )
                )
            else:
                valid += 1
    return valid, problems


def _pieces(content: bytes) -> Iterator[_Piece]:
    """Split input into events: a JSON array's items, one whole document, or JSON lines."""
    import orjson  # noqa: PLC0415

    stripped = content.strip()
    if not stripped:
        return
    try:
        document = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        if stripped.startswith(b"["):
            # An array that does not parse: there are no items to number, so report the file.
            yield _Piece(where="document", value=stripped)
            return
        yield from _lines(content)
        return
    if isinstance(document, list):
        for number, item in enumerate(document, start=1):
            # Re-encoded so that each item takes the decoder's own path, byte limit included.
            yield _Piece(where=f"item {number}", value=orjson.dumps(item))
        return
    # One document: on one line it reads naturally as "line N", pretty-printed it does not.
    if b"\n" in stripped:
        yield _Piece(where="document", value=stripped)
    else:
        line = content[: content.index(stripped)].count(b"\n") + 1
        yield _Piece(where=f"line {line}", value=stripped)


def _lines(content: bytes) -> Iterator[_Piece]:
    for number, line in enumerate(content.split(b"\n"), start=1):
        if line.strip():
            yield _Piece(where=f"line {number}", value=line)


def _read(name: str) -> bytes:
    return Path(name).read_bytes()
