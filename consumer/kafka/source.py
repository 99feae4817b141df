"""Reading from Kafka: the group consumer, its rebalance hooks, and what was committed before.

Manual commits only (``enable_auto_commit=False``): the offset tracker decides what is safe to
commit. ``read_committed`` so that transactional producers upstream never show us aborted
records. The rebalance listener forwards to the pipeline, which finishes or abandons the work of
revoked partitions and commits before aiokafka lets the group move on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiokafka.abc import ConsumerRebalanceListener

from consumer.errors import CommitFailed
from consumer.kafka.connection import KafkaConnection, connection_kwargs
from consumer.offsets import decode_metadata

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

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
