"""A replay's world without Kafka: input records, their outcomes, dead letters, in time order.

``History`` hands out results-topic positions and outcome times in the order things happen,
encodes outcomes with the consumer's own ``encode_outcome`` (so they are what the results topic
holds) and keeps the input records by position, as ``plan_replay`` gets them fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from consumer.errors import InvalidEventError
from consumer.outcomes import (
    InputRef,
    Operation,
    Outcome,
    Status,
    dead_letter_headers,
    encode_outcome,
)
from consumer.replay import (
    Criteria,
    DeadLetter,
    Plan,
    Selection,
    plan_replay,
    read_dead_letter,
    select_candidates,
)
from consumer.results import OutcomeRecord, RecordPosition, decode_outcome
from consumer.sandbox.workload import EventFactory

if TYPE_CHECKING:
    from consumer.sandbox.workload import GeneratedEvent

T0 = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class FakeRecord:
    """A Kafka record as the reader returns one (it has what ``KafkaRecord`` asks for)."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


def operation_of(generated: GeneratedEvent) -> Operation:
    """The operation an event's one outcome names (an action for a lifecycle event)."""
    if generated.event["type"] == "order.upserted":
        return "upsert"
    if generated.event["type"] == "order.deleted":
        return "delete"
    return "action"


@dataclass
class History:
    """Input records, outcomes and dead letters as a run leaves them."""

    factory: EventFactory = field(default_factory=lambda: EventFactory(prefix="h"))
    records: dict[RecordPosition, FakeRecord] = field(default_factory=dict)
    outcomes: list[OutcomeRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    seconds: int = 0
    next_offset: dict[tuple[str, int], int] = field(default_factory=dict)

    def tick(self) -> datetime:
        self.seconds += 1
        return T0 + timedelta(seconds=self.seconds)

    def publish(
        self,
        generated: GeneratedEvent,
        *,
        topic: str = "orders",
        partition: int = 0,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> RecordPosition:
        """Put an event on an input topic; its position."""
        offset = self.next_offset.get((topic, partition), 0)
        self.next_offset[(topic, partition)] = offset + 1
        position = RecordPosition(topic=topic, partition=partition, offset=offset)
        self.records[position] = FakeRecord(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp=int(self.tick().timestamp() * 1000),
            key=generated.key,
            value=generated.value,
            headers=headers,
        )
        return position

    def outcome(
        self,
        generated: GeneratedEvent,
        position: RecordPosition,
        status: Status,
        *,
        reason: str | None = None,
        operation: Operation | None = None,
    ) -> OutcomeRecord:
        """The consumer's outcome of the event read at ``position``, published now."""
        finished = self.tick()
        data = generated.event["data"]
        revision = data.get("revision") if isinstance(data, dict) else None
        value = encode_outcome(
            Outcome(
                origin=InputRef(
                    event_id=generated.event_id,
                    event_type=str(generated.event["type"]),
                    topic=position.topic,
                    partition=position.partition,
                    offset=position.offset,
                    order_id=generated.order_id,
                ),
                operation=operation or operation_of(generated),
                status=status,
                reason=None if status == "accepted" else reason or status,
                action="SomeAction" if (operation or operation_of(generated)) == "action" else None,
                revision=revision if isinstance(revision, int) else None,
                received_at=finished - timedelta(milliseconds=500),
                finished_at=finished,
            )
        )
        at = RecordPosition(topic="results", partition=0, offset=len(self.outcomes))
        record = decode_outcome(value, at=at)
        assert record is not None
        self.outcomes.append(record)
        return record

    def handled(
        self,
        generated: GeneratedEvent,
        status: Status,
        *,
        reason: str | None = None,
        partition: int = 0,
        topic: str = "orders",
    ) -> RecordPosition:
        """Publish an event and give it its outcome at once."""
        position = self.publish(generated, topic=topic, partition=partition)
        self.outcome(generated, position, status, reason=reason)
        return position

    def dead_letter(
        self, key: bytes | None, value: bytes, *, reason: str = "schema", order_id: str | None
    ) -> RecordPosition:
        """Put a record on the input topic that the consumer dead-letters."""
        offset = self.next_offset.get(("orders", 0), 0)
        self.next_offset[("orders", 0)] = offset + 1
        position = RecordPosition(topic="orders", partition=0, offset=offset)
        moment = self.tick()
        self.records[position] = FakeRecord(
            topic="orders",
            partition=0,
            offset=offset,
            timestamp=int(moment.timestamp() * 1000),
            key=key,
            value=value,
        )
        headers = dead_letter_headers(
            headers=[],
            error=InvalidEventError(reason, f"{reason} detail", order_id=order_id),
            topic="orders",
            partition=0,
            offset=offset,
            at=moment,
        )
        letter = read_dead_letter(
            FakeRecord(
                topic="dlq",
                partition=0,
                offset=len(self.dead_letters),
                timestamp=0,
                key=key,
                value=value,
                headers=tuple(headers),
            )
        )
        assert letter is not None
        self.dead_letters.append(letter)
        return position

    def select(self, criteria: Criteria | None = None) -> Selection:
        """Step one over this history."""
        return select_candidates(self.outcomes, self.dead_letters, criteria or Criteria())

    def plan(
        self,
        criteria: Criteria | None = None,
        *,
        copies: dict[RecordPosition, RecordPosition] | None = None,
        gone: frozenset[RecordPosition] = frozenset(),
        to_topic: str | None = None,
    ) -> Plan:
        """Both steps, with every record fetched but those ``gone``."""
        criteria = criteria or Criteria()
        return plan_replay(
            self.select(criteria),
            records={p: r for p, r in self.records.items() if p not in gone},
            missing=dict.fromkeys(gone, "deleted by retention"),
            copies=copies or {},
            criteria=criteria,
            to_topic=to_topic,
        )
