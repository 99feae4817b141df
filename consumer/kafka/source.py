"""Reading from Kafka: the group consumer, its rebalance hooks, and what was committed before.

Manual commits only (``enable_auto_commit=False``): the offset tracker decides what is safe to
commit. ``read_committed`` so that transactional producers upstream never show us aborted
records. The rebalance listener forwards to the pipeline, which finishes or abandons the work of
revoked partitions and commits before aiokafka lets the group move on.

Partitions are assigned range-style (``RangePartitionAssignor``): with input topics of equal
partition counts, partition p of every topic goes to the same member, so an order's events on
several topics meet in one process (``minRevision`` gating across topics stays exact).
``partition_counts`` lets the runner check that the counts are equal before it joins.
``watch_heartbeats`` tells the service's fence each time the coordinator answers a heartbeat:
aiokafka keeps that to itself, and it is what a member's claim on its partitions rests on.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor

from consumer.errors import CommitFailed, ConfigError
from consumer.kafka.connection import KafkaConnection, connection_kwargs
from consumer.offsets import decode_metadata

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import ConsumerRecord, TopicPartition

    from consumer.types import TP


@dataclass(frozen=True, kw_only=True, slots=True)
class ConsumerSettings:
    """The group consumer's settings (``KAFKA_*`` and ``MAX_RECORD_BYTES``)."""

    connection: KafkaConnection
    group_id: str
    group_instance_id: str | None = None
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_record_bytes: int = 1_000_000


class AssignmentHandler(Protocol):
    """What the pipeline does when partitions come and go."""

    async def partitions_assigned(self, assigned: set[TP]) -> None:
        """Start on newly assigned partitions."""
        ...

    async def partitions_revoked(self, revoked: set[TP]) -> None:
        """Finish or abandon the work of revoked partitions and commit, before returning."""
        ...


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, handler: AssignmentHandler) -> None:
        self.handler = handler

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.handler.partitions_revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.handler.partitions_assigned({(tp.topic, tp.partition) for tp in assigned})


def make_consumer(settings: ConsumerSettings) -> AIOKafkaConsumer:
    """A group consumer with manual commits; subscribe it with ``subscribe``."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 - heavy import, used at run time

    return AIOKafkaConsumer(
        **connection_kwargs(settings.connection),
        group_id=settings.group_id,
        # Static membership (KIP-345) when an instance id is given: a restarted pod with the
        # same id takes its partitions back at once instead of waiting for a rebalance.
        group_instance_id=settings.group_instance_id,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        # Range: partition p of every input topic lands on one member (co-partitioning).
        # Only one assignor: aiokafka 0.14 sends a JoinGroup per listed assignor, each with a
        # different protocol list, and two members joining so rebalanced each other for
        # minutes (aio-libs/aiokafka#1168). A group that still has members of an earlier build
        # (round-robin only) refuses this one's join: ``fetch`` says so.
        partition_assignment_strategy=(RangePartitionAssignor,),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=500,
        # A record may be as large as MAX_RECORD_BYTES plus envelope; fetch at least that much
        # so an oversized record reaches the decoder (and the dead-letter topic) instead of
        # stalling the partition.
        max_partition_fetch_bytes=max(1_048_576, settings.max_record_bytes + 65_536),
    )


def subscribe(
    consumer: AIOKafkaConsumer, topics: tuple[str, ...], handler: AssignmentHandler
) -> None:
    """Join the group on ``topics``, forwarding rebalances to ``handler``."""
    consumer.subscribe(topics=list(topics), listener=_Listener(handler))


class GroupOffsets:
    """Commits positions for the group through its consumer (``consumer.service.commits``)."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def commit(self, positions: Mapping[TP, tuple[int, str]]) -> None:
        """Commit each partition's offset with its metadata; ``CommitFailed`` if Kafka refused."""
        from aiokafka.errors import KafkaError  # noqa: PLC0415
        from aiokafka.structs import OffsetAndMetadata, TopicPartition  # noqa: PLC0415

        offsets = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, metadata)
            for (topic, partition), (offset, metadata) in positions.items()
        }
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            raise CommitFailed(repr(exc)) from exc


@contextmanager
def _group_agreement() -> Iterator[None]:
    """Turn a join the group refuses for good into an error that says what to do.

    The join fails for good when the group's other members offer no assignor in common with
    this one: aiokafka raises a bare ``InconsistentGroupProtocolError`` (from ``start``, or
    from a later fetch when the group rebalances).
    """
    from aiokafka.errors import InconsistentGroupProtocolError  # noqa: PLC0415

    try:
        yield
    except InconsistentGroupProtocolError as exc:
        problem = (
            "the consumer group's other members assign partitions another way (round-robin:"
            " replicas of an earlier engage-consumer build?); stop them before starting this"
            " build (in Kubernetes: roll out once with strategy Recreate), or give this"
            " deployment another KAFKA_GROUP_ID"
        )
        raise ConfigError([problem]) from exc


async def join(consumer: AIOKafkaConsumer) -> None:
    """Start the (subscribed) consumer: join the group and wait for the first assignment."""
    with _group_agreement():
        await consumer.start()


async def fetch(
    consumer: AIOKafkaConsumer, *, timeout_ms: int, max_records: int
) -> dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
    """The records fetched so far (``getmany``)."""
    with _group_agreement():
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]] = await consumer.getmany(
            timeout_ms=timeout_ms, max_records=max_records
        )
    return batch


def pause(consumer: AIOKafkaConsumer, tps: Iterable[TP]) -> None:
    """Fetch nothing more of ``tps`` (records already fetched are dropped, not consumed)."""
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    consumer.pause(*(TopicPartition(topic, partition) for topic, partition in tps))


def resume(consumer: AIOKafkaConsumer, tps: Iterable[TP]) -> None:
    """Fetch ``tps`` again from where their consumption stood."""
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    consumer.resume(*(TopicPartition(topic, partition) for topic, partition in tps))


def group_generation(consumer: AIOKafkaConsumer) -> int:
    """The consumer group generation this member is in now (-1 before it joined)."""
    coordinator = getattr(consumer, "_coordinator", None)
    return int(getattr(coordinator, "generation", -1))


async def partition_counts(producer: AIOKafkaProducer, topics: tuple[str, ...]) -> dict[str, int]:
    """How many partitions each topic has (0: the cluster does not know the topic).

    Asked through the (started) producer's client, before the consumer starts: one metadata
    round trip for every topic, which creates none (asking for one topic by name may).
    """
    cluster = await producer.client.fetch_all_metadata()
    return {topic: len(cluster.partitions_for_topic(topic) or ()) for topic in topics}


def watch_heartbeats(consumer: AIOKafkaConsumer, answered: Callable[[float], None]) -> None:
    """Call ``answered(sent_at)`` whenever the group coordinator answers a heartbeat.

    ``sent_at`` is ``time.monotonic()`` when the heartbeat was sent: the coordinator's session
    timer restarted no earlier than that. Call after ``start()`` (aiokafka makes its
    coordinator there). aiokafka has no public hook for this, so it wraps the coordinator's
    heartbeat; ``RuntimeError`` if a new aiokafka moved it.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    beat: Callable[[], Awaitable[bool]] | None = getattr(coordinator, "_do_heartbeat", None)
    if coordinator is None or beat is None:
        raise RuntimeError("aiokafka's group coordinator has no _do_heartbeat to watch")

    async def heartbeat() -> bool:
        sent_at = time.monotonic()
        # True also for "rebalance in progress": the coordinator still counts this member in.
        ok = await beat()
        if ok:
            answered(sent_at)
        return ok

    coordinator._do_heartbeat = heartbeat  # noqa: SLF001


async def committed_state(
    consumer: AIOKafkaConsumer, partitions: set[TP]
) -> dict[TP, tuple[int | None, set[int], set[int]]]:
    """The committed offset, finished offsets and action intents of each partition.

    The finished offsets and intents are what the previous owner kept in its commit metadata.
    """
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    tps = [TopicPartition(topic, partition) for topic, partition in partitions]
    # The coordinator's fetch returns the metadata string as well as the offset; the public
    # ``committed()`` drops it.
    fetched = await consumer._coordinator.fetch_committed_offsets(tps)  # noqa: SLF001
    out: dict[TP, tuple[int | None, set[int], set[int]]] = {}
    for tp in tps:
        meta = fetched.get(tp)
        if meta is None or meta.offset < 0:
            out[(tp.topic, tp.partition)] = (None, set(), set())
        else:
            finished, intents = decode_metadata(meta.offset, meta.metadata)
            out[(tp.topic, tp.partition)] = (meta.offset, finished, intents - finished)
    return out
