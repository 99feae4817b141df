"""The records a replay reads and writes: dead letters, input records, the ``x-replay-of`` mark.

A dead letter keeps the refused record's key, value and headers and says in ``x-dlq-*`` headers
where it was read (schemas/dead-letter.schema.json); ``read_dead_letter`` turns one back into a
typed value. A republished record carries ``x-replay-of: topic/partition/offset``, naming the
record it copies: that mark is how a later replay knows the work is done, and how a copy's
place in its order's stream is traced back to the original's.

Pure: no Kafka library. Records come in as anything with the attributes of ``KafkaRecord``
(aiokafka's ``ConsumerRecord`` and ``consumer.kafka.TopicRecord`` both have them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import orjson

from consumer.outcomes import DLQ_PREFIX, DLQ_TRUNCATED
from consumer.results import RecordPosition, parse_rfc3339

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

#: Header of a republished record: the position of the record it copies.
REPLAY_HEADER: Final = "x-replay-of"
_WRITE_TYPES: Final = frozenset({"order.upserted", "order.deleted"})


class KafkaRecord(Protocol):
    """What a replay needs of a record read from Kafka."""

    @property
    def topic(self) -> str:
        """Its topic."""
        ...

    @property
    def partition(self) -> int:
        """Its partition."""
        ...

    @property
    def offset(self) -> int:
        """Its offset."""
        ...

    @property
    def timestamp(self) -> int:
        """Its timestamp, in milliseconds since the epoch."""
        ...

    @property
    def key(self) -> bytes | None:
        """Its key."""
        ...

    @property
    def value(self) -> bytes | None:
        """Its value."""
        ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]:
        """Its headers."""
        ...


def position_of(record: KafkaRecord) -> RecordPosition:
    """Where a record is."""
    return RecordPosition(topic=record.topic, partition=record.partition, offset=record.offset)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadLetter:
    """One record of the dead-letter topic: the refused input and why."""

    at: RecordPosition
    """Its own place on the dead-letter topic."""
    source: RecordPosition
    """Where the refused record was read (``x-dlq-source-*``)."""
    reason: str
    time: datetime
    order_id: str | None
    event_id: str | None
    truncated: bool
    """The copy was reduced to fit the producer (``x-dlq-truncated``): not the original."""
    key: bytes | None
    value: bytes | None
    original_headers: tuple[tuple[str, bytes], ...]


def read_dead_letter(record: KafkaRecord) -> DeadLetter | None:
    """The dead letter a record holds; None when its ``x-dlq-*`` headers are not readable."""
    named = {name: raw for name, raw in record.headers if name.startswith(DLQ_PREFIX)}
    try:
        source = RecordPosition(
            topic=named["x-dlq-source-topic"].decode(),
            partition=int(named["x-dlq-source-partition"]),
            offset=int(named["x-dlq-source-offset"]),
        )
        time = parse_rfc3339(named["x-dlq-time"].decode())
        reason = named["x-dlq-reason"].decode()
    except (KeyError, UnicodeDecodeError, ValueError):
        return None
    order_id = named.get("x-dlq-order-id")
    event_id = named.get("x-dlq-event-id")
    return DeadLetter(
        at=position_of(record),
        source=source,
        reason=reason,
        time=time,
        order_id=None if order_id is None else order_id.decode(errors="replace"),
        event_id=None if event_id is None else event_id.decode(errors="replace"),
        truncated=DLQ_TRUNCATED in named,
        key=record.key,
        value=record.value,
        original_headers=tuple(
            (name, raw) for name, raw in record.headers if not name.startswith(DLQ_PREFIX)
        ),
    )


def replayed_from(headers: Iterable[tuple[str, bytes]]) -> RecordPosition | None:
    """The position a republished record copies (its ``x-replay-of``), or None."""
    for name, raw in headers:
        if name == REPLAY_HEADER:
            try:
                return RecordPosition.parse(raw.decode())
            except (UnicodeDecodeError, ValueError):
                return None
    return None


def replay_headers(
    headers: Iterable[tuple[str, bytes]], *, of: RecordPosition
) -> list[tuple[str, bytes]]:
    """The headers of a copy of the record at ``of``: the original's, then ``x-replay-of``.

    A mark the original already carried (it was itself a copy) is dropped: the copy names the
    record it was made from, and the chain of marks leads back to the first.
    """
    kept = [(name, raw) for name, raw in headers if name != REPLAY_HEADER]
    return [*kept, (REPLAY_HEADER, str(of).encode())]


@dataclass(frozen=True, kw_only=True, slots=True)
class EventPeek:
    """What the replay reads of an input record's value: its id and whether it writes."""

    event_id: str | None
    writes: bool | None
    """Whether the event writes the order (an upsert, a delete, a snapshot); None: unreadable."""


def peek_event(value: bytes | None) -> EventPeek:
    """Read the ``id`` of an event and whether it writes the order, without validating it."""
    if not value:
        return EventPeek(event_id=None, writes=None)
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return EventPeek(event_id=None, writes=None)
    if not isinstance(document, dict):
        return EventPeek(event_id=None, writes=None)
    event_id = document.get("id")
    data = document.get("data")
    writes = document.get("type") in _WRITE_TYPES or (
        isinstance(data, dict) and isinstance(data.get("order"), dict)
    )
    return EventPeek(event_id=event_id if isinstance(event_id, str) else None, writes=writes)
