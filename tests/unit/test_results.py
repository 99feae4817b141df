"""Reading outcomes back: decoding, the latest of each id, filters, the table, the flags."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from consumer.outcomes import InputRef, Operation, Outcome, Status, encode_outcome
from consumer.results import (
    OutcomeFilter,
    OutcomeRecord,
    RecordPosition,
    decode_outcome,
    latest_outcomes,
    parse_moment,
    parse_statuses,
    render_line,
    render_summary,
    summarize,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "order-outcome"
T0 = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)


def outcome(
    status: Status,
    operation: Operation | None = "upsert",
    *,
    event_id: str | None = "e-1",
    order_id: str = "O-1",
    offset: int = 0,
    at: int = 0,
    results_partition: int = 0,
    seconds: float = 0.0,
    reason: str | None = None,
) -> OutcomeRecord:
    """An outcome as the consumer encodes it, read back from results partition/offset ``at``."""
    finished = T0 + timedelta(seconds=seconds)
    value = encode_outcome(
        Outcome(
            origin=InputRef(
                event_id=event_id,
                event_type="order.upserted" if operation == "upsert" else "order.action",
                topic="orders",
                partition=0,
                offset=offset,
                order_id=order_id,
            ),
            operation=operation,
            status=status,
            reason=reason if status == "accepted" or reason else status,
            action="ConfirmOrder" if operation == "action" else None,
            received_at=finished - timedelta(milliseconds=20),
            finished_at=finished,
        )
    )
    position = RecordPosition(topic="results", partition=results_partition, offset=at)
    decoded = decode_outcome(value, at=position)
    assert decoded is not None
    return decoded


def test_a_schema_example_decodes_to_every_field_it_names() -> None:
    """The failed-action example of the contract reads back as the values it holds."""
    value = (EXAMPLES / "failed.json").read_bytes()
    at = RecordPosition(topic="results", partition=1, offset=7)
    record = decode_outcome(value, at=at, keep_raw=True)
    assert record == OutcomeRecord(
        at=at,
        id="6f1c2d0e-0003:action",
        source="engage-consumer",
        time=datetime(2025, 3, 1, 14, 40, 1, 644_000, tzinfo=UTC),
        order_id="ORD-10042",
        event_id="6f1c2d0e-0003",
        event_type="order.action",
        input=RecordPosition(topic="orders.lifecycle", partition=3, offset=1042),
        operation="action",
        status="failed",
        reason="write_failed",
        action="ConfirmShipment",
        revision=2,
        received_at=datetime(2025, 3, 1, 14, 40, 0, 120_000, tzinfo=UTC),
        raw=value,
    )


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_schema_example_decodes(example: Path) -> None:
    """Each example outcome of the contract is one this reader understands."""
    at = RecordPosition(topic="results", partition=0, offset=0)
    assert decode_outcome(example.read_bytes(), at=at) is not None


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"{not json",
        b"[1, 2]",
        b'{"id": "x"}',
        orjson.dumps({"id": "x", "source": "s", "time": "2026-01-01T00:00:00Z", "data": {}}),
    ],
    ids=["none", "empty", "broken", "array", "no-data", "data-without-fields"],
)
def test_what_is_not_an_outcome_decodes_to_none(value: bytes | None) -> None:
    """A record that is not an outcome is skipped, not an error."""
    assert decode_outcome(value, at=RecordPosition(topic="r", partition=0, offset=0)) is None


def test_the_latest_of_an_id_is_the_later_offset_on_one_partition() -> None:
    """On one results partition the later offset wins, even with an earlier time."""
    first = outcome("failed", at=3, seconds=10)
    replayed = outcome("accepted", at=9, seconds=5)
    other = outcome("accepted", event_id="e-2", at=4)
    assert latest_outcomes([replayed, first, other]) == [other, replayed]


def test_across_results_partitions_the_later_time_wins() -> None:
    """Records of one id on two results partitions: the later outcome time is the latest."""
    early = outcome("failed", results_partition=0, at=50, seconds=1)
    late = outcome("accepted", results_partition=1, at=2, seconds=2)
    assert latest_outcomes([late, early]) == [late]


def test_the_filter_passes_only_what_matches_every_part() -> None:
    """Orders, statuses and the time window ([since, until)) all apply."""
    records = [
        outcome("failed", order_id="A", seconds=0),
        outcome("failed", order_id="B", event_id="e-2", seconds=60),
        outcome("accepted", order_id="A", event_id="e-3", seconds=120),
    ]
    chosen = OutcomeFilter(
        orders=frozenset({"A", "B"}),
        statuses=frozenset({"failed"}),
        since=T0 + timedelta(seconds=30),
        until=T0 + timedelta(seconds=120),
    )
    assert [r for r in records if chosen.matches(r)] == [records[1]]


def test_the_summary_counts_by_operation_and_status_and_lists_reasons() -> None:
    """The table has one row per operation, one column per status seen, and totals."""
    records = [
        outcome("accepted", event_id="e-1"),
        outcome("accepted", "action", event_id="e-2"),
        outcome("failed", "action", event_id="e-3", reason="write_failed"),
        outcome("failed", "action", event_id="e-4", reason="write_failed"),
        outcome("unknown", event_id="e-5", reason="deadline"),
        outcome("invalid", None, event_id=None, reason="schema"),
    ]
    assert render_summary(summarize(records)) == (
        "operation   accepted    failed   unknown   invalid   total\n"
        "----------------------------------------------------------\n"
        "upsert             1         0         1         0       2\n"
        "action             1         2         0         0       3\n"
        "(invalid)          0         0         0         1       1\n"
        "total              2         2         1         1       6\n"
        "\n"
        "not accepted, by reason:\n"
        "  status    operation  reason         count\n"
        "  failed    action     write_failed       2\n"
        "  invalid   (invalid)  schema             1\n"
        "  unknown   upsert     deadline           1\n"
    )


def test_an_empty_summary_says_so() -> None:
    """No outcome at all is one line, not an empty table."""
    assert render_summary(summarize([])) == "no outcomes\n"


def test_one_line_per_outcome_names_time_status_order_event_and_input() -> None:
    """What --follow prints for each outcome."""
    record = outcome("failed", "action", offset=12, seconds=1.5, reason="deadline")
    assert render_line(record) == (
        "2026-03-01T14:00:01.500Z  failed    action     O-1  e-1  ConfirmOrder  orders/0/12"
        "  deadline"
    )


def test_statuses_parse_from_a_comma_list() -> None:
    """Case and spaces do not matter; the result is a set."""
    assert parse_statuses(" Failed, unknown,failed ") == frozenset({"failed", "unknown"})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "name at least one status"),
        (
            "failed,lost",
            "lost: not a status (one of accepted, rejected, failed, skipped, unknown, invalid)",
        ),
    ],
)
def test_a_wrong_status_is_named_with_the_valid_ones(text: str, message: str) -> None:
    """The error says which word is wrong and what would do."""
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_statuses(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T15:00:00Z", datetime(2026, 3, 1, 15, tzinfo=UTC)),
        ("2026-03-01T15:00:00+01:00", datetime(2026, 3, 1, 14, tzinfo=UTC)),
        ("2026-03-01T15:00", datetime(2026, 3, 1, 15, tzinfo=UTC)),
        ("30m", T0 - timedelta(minutes=30)),
        ("2h", T0 - timedelta(hours=2)),
        ("1.5d", T0 - timedelta(hours=36)),
        ("45s", T0 - timedelta(seconds=45)),
    ],
)
def test_times_are_iso_or_an_age(text: str, expected: datetime) -> None:
    """An ISO time (UTC when it names no offset) or an age before now."""
    assert parse_moment(text, now=T0) == expected


def test_a_wrong_time_says_what_is_accepted() -> None:
    """Neither ISO nor an age: the message shows one of each."""
    with pytest.raises(ValueError, match=r"neither an ISO time .* nor an age"):
        parse_moment("yesterday", now=T0)


def test_positions_read_and_print_as_topic_partition_offset() -> None:
    """``topic/partition/offset`` both ways; anything else is refused."""
    position = RecordPosition.parse("orders.v2/3/1042")
    assert (position, str(position)) == (
        RecordPosition(topic="orders.v2", partition=3, offset=1042),
        "orders.v2/3/1042",
    )
    for wrong in ("orders/3", "orders/x/1", "/1/2", "orders/1/-2"):
        with pytest.raises(ValueError, match="is not topic/partition/offset"):
            RecordPosition.parse(wrong)
