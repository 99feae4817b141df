"""Reading topics without a consumer group: whole topics, a time onward, or records by position.

What the operator commands read with (``engage-consumer results``, ``replay``): partitions are
assigned and seeked, never subscribed, so reading joins no group, commits nothing and changes
nothing for anyone else. ``read_committed``, as analytics reads: records of aborted
transactions are never seen.

``read`` reads every partition of a topic up to the end it had when reading began (or, with
``follow``, on and on); ``fetch`` gets single records by offset, seeking past gaps, and says for
each one it could not get why (retention deleted it, the partition never had it, ...).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from consumer.errors import ConfigError
from consumer.kafka.connection import connection_kwargs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Mapping

    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import ConsumerRecord, TopicPartition

    from consumer.kafka.connection import KafkaConnection
    from consumer.types import TP

#: Offsets further apart than this are reached by a seek, not by reading what lies between.
_SEEK_GAP = 500
#: How long one ``fetch`` may take before it gives up on the records it has not reached.
_FETCH_TIMEOUT = 120.0
_BATCH = 5000


@dataclass(frozen=True, kw_only=True, slots=True)
class TopicRecord:
    """One record as read: where, when (``timestamp``, ms since the epoch), key, value, headers."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class TopicReader:
    """A group-less consumer: ``read`` topics, ``fetch`` records by position."""

    def __init__(self, consumer: AIOKafkaConsumer, *, bootstrap_servers: str) -> None:
        self._consumer = consumer
        self._bootstrap = bootstrap_servers

    async def partitions(self, topic: str) -> list[int]:
        """The topic's partitions; ``ConfigError`` when the cluster has no such topic."""
        # One metadata round trip for all topics, which creates none (asking by name may);
        # aiokafka's public ``topics()`` does the same but keeps the partitions to itself.
        cluster = await self._consumer._client.fetch_all_metadata()  # noqa: SLF001
        found = cluster.partitions_for_topic(topic)
        if not found:
            raise ConfigError([f"topic {topic!r} does not exist on {self._bootstrap}"])
        return sorted(found)

    async def read(
        self, topic: str, *, since_ms: int | None = None, follow: bool = False
    ) -> AsyncIterator[TopicRecord]:
        """Every record of ``topic``, each partition's in order, from ``since_ms`` on if given.

        ``since_ms`` is a record timestamp (ms since the epoch). Reads up to the ends the
        partitions had when reading began, or forever with ``follow``.
        """
        from aiokafka.structs import TopicPartition  # noqa: PLC0415

        consumer = self._consumer
        tps = [TopicPartition(topic, p) for p in await self.partitions(topic)]
        consumer.assign(tps)
        ends: dict[Any, int] = await consumer.end_offsets(tps)
        starts: dict[Any, int] = await consumer.beginning_offsets(tps)
        if since_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        for tp in tps:
            consumer.seek(tp, starts[tp])
        left = {tp for tp in tps if starts[tp] < ends[tp]}
        while left or follow:
            batch = await consumer.getmany(*(tps if follow else left), timeout_ms=200)
            for tp, records in batch.items():
                for record in records:
                    if follow or record.offset < ends[tp]:
                        yield _record(record)
            # Positions also move over transaction markers, which are never returned.
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}

    async def fetch(
        self, wanted: Mapping[TP, Iterable[int]]
    ) -> tuple[dict[tuple[str, int, int], TopicRecord], dict[tuple[str, int, int], str]]:
        """The records at the wanted offsets, and for each one not found, why not."""
        from aiokafka.structs import TopicPartition  # noqa: PLC0415

        found: dict[tuple[str, int, int], TopicRecord] = {}
        missing: dict[tuple[str, int, int], str] = {}
        asked = {tp: sorted(set(offsets)) for tp, offsets in wanted.items()}
        tps: dict[TP, TopicPartition] = {}
        for topic in sorted({topic for topic, _ in asked}):
            partitions = set(await self.partitions(topic))
            for tp in (tp for tp in asked if tp[0] == topic):
                if tp[1] in partitions:
                    tps[tp] = TopicPartition(*tp)
                else:
                    missing.update(
                        ((*tp, offset), f"{topic} has no partition {tp[1]}") for offset in asked[tp]
                    )
        if not tps:
            return found, missing
        consumer = self._consumer
        consumer.assign(list(tps.values()))
        starts = await consumer.beginning_offsets(list(tps.values()))
        ends = await consumer.end_offsets(list(tps.values()))
        with anyio.move_on_after(_FETCH_TIMEOUT):
            for tp, kafka_tp in tps.items():
                low, high = starts[kafka_tp], ends[kafka_tp]
                missing.update(_out_of_range(tp, asked[tp], low, high))
                inside = [offset for offset in asked[tp] if low <= offset < high]
                await self._fetch_partition(kafka_tp, inside, high, found, missing)
        for tp, offsets in asked.items():
            for offset in offsets:
                key = (*tp, offset)
                if key not in found and key not in missing:
                    missing[key] = f"not read within {_FETCH_TIMEOUT:.0f}s"
        return found, missing

    async def _fetch_partition(
        self,
        tp: TopicPartition,
        offsets: list[int],
        high: int,
        found: dict[tuple[str, int, int], TopicRecord],
        missing: dict[tuple[str, int, int], str],
    ) -> None:
        """Read the sorted ``offsets`` of one partition, seeking over large gaps."""
        consumer = self._consumer
        index = 0
        while index < len(offsets):
            consumer.seek(tp, offsets[index])
            while index < len(offsets):
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=_BATCH)
                records = batch.get(tp, [])
                for record in records:
                    while index < len(offsets) and offsets[index] < record.offset:
                        missing[(tp.topic, tp.partition, offsets[index])] = _not_there(tp)
                        index += 1
                    if index < len(offsets) and offsets[index] == record.offset:
                        found[(tp.topic, tp.partition, record.offset)] = _record(record)
                        index += 1
                position = await consumer.position(tp)
                if position >= high:
                    for offset in offsets[index:]:
                        missing[(tp.topic, tp.partition, offset)] = _not_there(tp)
                    return
                if index < len(offsets) and offsets[index] - position > _SEEK_GAP:
                    break  # the next one is far ahead: seek instead of reading up to it


@asynccontextmanager
async def open_topic_reader(connection: KafkaConnection) -> AsyncIterator[TopicReader]:
    """A started ``TopicReader`` (``read_committed``, no group), stopped on exit."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 - heavy import, used at run time

    consumer = AIOKafkaConsumer(
        **connection_kwargs(connection),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=2 * 1_048_576,
    )
    await consumer.start()
    try:
        yield TopicReader(consumer, bootstrap_servers=connection.bootstrap_servers)
    finally:
        with anyio.CancelScope(shield=True):
            await consumer.stop()


def _record(record: ConsumerRecord[bytes, bytes]) -> TopicRecord:
    return TopicRecord(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=int(record.timestamp),
        key=record.key,
        value=record.value,
        headers=tuple((name, bytes(raw or b"")) for name, raw in record.headers or ()),
    )


def _out_of_range(
    tp: TP, offsets: Iterable[int], low: int, high: int
) -> dict[tuple[str, int, int], str]:
    """Why each offset outside [low, high) of a partition cannot be read."""
    why: dict[tuple[str, int, int], str] = {}
    for offset in offsets:
        if offset < low:
            why[(*tp, offset)] = (
                f"deleted from {tp[0]}/{tp[1]}, which now starts at offset {low} (retention)"
            )
        elif offset >= high:
            why[(*tp, offset)] = f"{tp[0]}/{tp[1]} ends at offset {high} (was the topic recreated?)"
    return why


def _not_there(tp: TopicPartition) -> str:
    return (
        f"not on {tp.topic}/{tp.partition} (compacted away, or written by a transaction that "
        "was aborted)"
    )
