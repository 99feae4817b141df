"""Dead letters read back, the ``x-replay-of`` mark, and what a replay peeks at in a value."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from consumer.errors import InvalidEventError
from consumer.outcomes import dead_letter_headers
from consumer.replay import (
    DeadLetter,
    EventPeek,
    peek_event,
    read_dead_letter,
    replay_headers,
    replayed_from,
)
from consumer.results import RecordPosition
from tests.unit.replay.history import FakeRecord

AT = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)


def test_a_dead_letter_reads_back_as_the_consumer_wrote_it() -> None:
    """Where it came from, why, when, which order and event, the original headers apart."""
    headers = dead_letter_headers(
        headers=[("traceparent", b"00-abc")],
        error=InvalidEventError("schema", "data.order: required", order_id="O-1"),
        topic="orders",
        partition=2,
        offset=41,
        at=AT,
        event_id="e-1",
    )
    record = FakeRecord(
        topic="dlq",
        partition=0,
        offset=5,
        timestamp=0,
        key=b"O-1",
        value=b"{}",
        headers=tuple(headers),
    )
    assert read_dead_letter(record) == DeadLetter(
        at=RecordPosition(topic="dlq", partition=0, offset=5),
        source=RecordPosition(topic="orders", partition=2, offset=41),
        reason="schema",
        time=AT,
        order_id="O-1",
        event_id="e-1",
        truncated=False,
        key=b"O-1",
        value=b"{}",
        original_headers=(("traceparent", b"00-abc"),),
    )


def test_a_record_without_readable_dead_letter_headers_is_none() -> None:
    """A stray record on the dead-letter topic is skipped."""
    record = FakeRecord(
        topic="dlq",
        partition=0,
        offset=0,
        timestamp=0,
        key=None,
        value=b"x",
        headers=(("x-dlq-source-offset", b"not a number"),),
    )
    assert read_dead_letter(record) is None


def test_the_mark_names_the_original_and_replaces_an_inherited_one() -> None:
    """A copy of a copy names the copy it was made from, once."""
    original = RecordPosition(topic="orders", partition=1, offset=9)
    copy = RecordPosition(topic="orders", partition=1, offset=30)
    headers = replay_headers([("a", b"1"), ("x-replay-of", str(original).encode())], of=copy)
    assert headers == [("a", b"1"), ("x-replay-of", b"orders/1/30")]
    assert replayed_from(headers) == copy
    assert replayed_from([("a", b"1")]) is None
    assert replayed_from([("x-replay-of", b"garbage")]) is None


@pytest.mark.parametrize(
    ("value", "peek"),
    [
        (orjson.dumps({"id": "e", "type": "order.upserted"}), EventPeek(event_id="e", writes=True)),
        (orjson.dumps({"id": "e", "type": "order.deleted"}), EventPeek(event_id="e", writes=True)),
        (
            orjson.dumps({"id": "e", "type": "order.shipped", "data": {"order": {}}}),
            EventPeek(event_id="e", writes=True),
        ),
        (
            orjson.dumps({"id": "e", "type": "order.shipped", "data": {}}),
            EventPeek(event_id="e", writes=False),
        ),
        (orjson.dumps({"type": "order.action"}), EventPeek(event_id=None, writes=False)),
        (b"{broken", EventPeek(event_id=None, writes=None)),
        (b"[]", EventPeek(event_id=None, writes=None)),
        (None, EventPeek(event_id=None, writes=None)),
    ],
    ids=["upsert", "delete", "snapshot", "no-snapshot", "no-id", "broken", "array", "none"],
)
def test_a_peek_reads_the_id_and_whether_the_event_writes(
    value: bytes | None, peek: EventPeek
) -> None:
    """Without validating: an unreadable value says nothing (None)."""
    assert peek_event(value) == peek
