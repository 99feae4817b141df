"""The order state store: what the group knows per order, kept where a new owner finds it.

A rebalance or a restart used to start a partition's new owner knowing nothing: every order
was ``unknown``, so each needed a GET, and an action gated on a revision the previous owner had
already confirmed parked for ``REVISION_WAIT_SECONDS`` while the next write went past it, and
then went with that write's tag. Now every settled write's knowledge (``OrderBook.take_changes``:
the confirmed tag and revision, the floor, a failed write) goes to a compacted state topic,
keyed by orderId, on the event's partition number, before the event's outcome; the offset is
finished only once both are acknowledged, so whatever a committed offset covers is in the
topic. A member assigned partition p reads p's records back (``restore``) into its book before
it takes p's first record: the Kafka Streams state-store pattern, with the book as the store.

Ordering across owners: each record carries the group generation of its writer and a sequence
number, and the newest (generation, sequence) of an order wins on restore. A member cut off
from the group may deliver a record late, after the new owner's newer ones; since compaction
keeps the last record by offset, the restore publishes the winner again when it is not the
last, so the topic heals.

The commit metadata (what Parallel Consumer keeps its offsets in) could not serve: it holds
about 4 KB per partition, the state of some dozens of orders, not of thousands.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from consumer.kafka import read_changelog
from consumer.logs import get_logger
from consumer.orders import Knowledge, State

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from consumer.kafka import KafkaConnection, RecordSink
    from consumer.orders import OrderBook
    from consumer.service.pending import OpRef

log = get_logger("state")

#: The record format's version: a reader refuses (skips) what it does not know.
FORMAT = 1


def encode(knowledge: Knowledge, *, generation: int, sequence: int) -> bytes:
    """A state record's value: the knowledge, who wrote it (generation) and in what order."""
    return orjson.dumps(
        {
            "v": FORMAT,
            "state": knowledge.state.value,
            "tag": knowledge.tag,
            "revision": knowledge.revision,
            "floor": knowledge.floor,
            "exists": knowledge.exists,
            "deleted": knowledge.deleted,
            "failedRevision": knowledge.failed_revision,
            "generation": generation,
            "sequence": sequence,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
    )


def decode(value: bytes) -> tuple[Knowledge, tuple[int, int]] | None:
    """The knowledge and its (generation, sequence); None for a value this version cannot read."""
    try:
        data: Any = orjson.loads(value)
        if data.get("v") != FORMAT:
            return None
        knowledge = Knowledge(
            state=State(data["state"]),
            tag=_optional(data.get("tag"), str),
            revision=_optional(data.get("revision"), int),
            floor=_optional(data.get("floor"), int),
            exists=_optional(data.get("exists"), bool),
            deleted=bool(data.get("deleted", False)),
            failed_revision=_optional(data.get("failedRevision"), int),
        )
        order = (int(data["generation"]), int(data["sequence"]))
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None
    if knowledge.state in {State.WRITING, State.FETCHING}:
        return None  # never written: a record of a call in flight would mean nothing
    return knowledge, order


def _optional(value: object, kind: type[Any]) -> Any:  # noqa: ANN401 - one JSON field
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r} is not a {kind.__name__}")
    return value


class StateStore:
    """Writes the book's changes to the state topic and restores a partition's orders from it.

    ``generation`` gives the consumer group generation this member is in now.
    """

    def __init__(
        self,
        *,
        topic: str,
        connection: KafkaConnection,
        sink: RecordSink,
        generation: Callable[[], int],
    ) -> None:
        self.topic = topic
        self._connection = connection
        self._sink = sink
        self._generation = generation
        # Microseconds since the epoch at start: a restarted member's sequence keeps rising
        # within one generation (static membership keeps the generation across restarts).
        self._sequence = int(time.time() * 1_000_000)
        #: orders restored and records read in the last restore (metrics, logs)
        self.restored = 0

    def record(self, knowledge: Knowledge) -> bytes:
        """The value to publish for one order's new knowledge (the next sequence number)."""
        self._sequence += 1
        return encode(knowledge, generation=self._generation(), sequence=self._sequence)

    async def restore(self, partitions: Iterable[int], book: OrderBook[OpRef]) -> int:
        """Read the orders of ``partitions`` into ``book``; return how many were restored."""
        started = time.monotonic()
        records = await read_changelog(self._connection, self.topic, partitions)
        best: dict[bytes, tuple[tuple[int, int], Knowledge, int, int]] = {}
        last: dict[bytes, int] = {}
        for record in records:
            last[record.key] = record.offset
            if record.value is None:
                best.pop(record.key, None)
                continue
            decoded = decode(record.value)
            if decoded is None:
                continue
            knowledge, order = decoded
            held = best.get(record.key)
            if held is None or order >= held[0]:
                best[record.key] = (order, knowledge, record.offset, record.partition)
        restored = 0
        healed = 0
        for key, (_order, knowledge, offset, partition) in best.items():
            if book.restore(key.decode(errors="replace"), knowledge):
                restored += 1
            if last[key] != offset:
                # A late record (a member cut off from the group) came after the newest one:
                # publish the newest again, or compaction would keep the late one.
                await self._sink.publish(
                    self.topic,
                    key=key,
                    value=self.record(knowledge),
                    headers=[],
                    partition=partition,
                )
                healed += 1
        self.restored = restored
        log.info(
            "order state restored",
            topic=self.topic,
            partitions=sorted(set(partitions)),
            records=len(records),
            orders=restored,
            healed=healed,
            seconds=round(time.monotonic() - started, 3),
        )
        return restored
