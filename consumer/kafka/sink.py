"""Publishing to Kafka: outcome events and dead-letter records, acknowledged before commit.

One idempotent producer (acks=all) writes both the results topic and the dead-letter topic, so a
record's outcome and its dead-letter copy share ordering and retries. ``publish`` returns once the
broker acknowledged the write; only then may the source offset be committed.

With ``KAFKA_TRANSACTIONAL_ID`` set, ``TransactionalSink`` stages records instead, and the
runner's commit writes them and the consumed offsets they finish in one Kafka transaction: a
reader with ``read_committed`` sees an outcome exactly when its input offset is committed, so a
crash can neither lose an outcome nor show one twice.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import anyio

from consumer.errors import TransactionFailed
from consumer.kafka.connection import connection_kwargs

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from aiokafka import AIOKafkaProducer

    from consumer.kafka.connection import KafkaConnection
    from consumer.types import TP, Headers


class RecordSink(Protocol):
    """Where outcome and dead-letter records go; Kafka in production, a list in unit tests."""

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        finishes: tuple[TP, int] | None = None,
        partition: int | None = None,
    ) -> None:
        """Write one record and return when it is acknowledged (or committed).

        ``finishes`` names the consumed offset this record is the last word on; a transactional
        sink commits that offset in the same transaction. ``partition`` places the record
        (None: by its key).
        """
        ...


class KafkaSink:
    """A ``RecordSink`` on an idempotent aiokafka producer (acks=all)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        finishes: tuple[TP, int] | None = None,  # noqa: ARG002 - offsets commit separately
        partition: int | None = None,
    ) -> None:
        """Send and wait for the broker's acknowledgement."""
        await self.producer.send_and_wait(
            topic, value=value, key=key, headers=headers, partition=partition
        )


@dataclass(kw_only=True, slots=True, eq=False)
class Staged:
    """One record staged for the next transaction; ``publish`` waits on ``done``."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    finishes: tuple[TP, int] | None
    partition: int | None = None
    done: anyio.Event = field(default_factory=anyio.Event)
    failed: bool = False


class TransactionalSink:
    """Stages records for the next transaction; ``publish`` returns once it committed."""

    def __init__(self, producer: AIOKafkaProducer, *, wake: Callable[[], None]) -> None:
        self.producer = producer
        # aiokafka's max_request_size, less room for the batch and record overhead.
        self.max_record_bytes = int(getattr(producer, "_max_request_size", 1_048_576)) - 1024
        self._staged: list[Staged] = []
        #: the records the next ``commit`` writes (what ``take`` closed)
        self._batch: list[Staged] = []
        # Tells the runner there is something to commit (it commits at once, batching).
        self._wake = wake

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        finishes: tuple[TP, int] | None = None,
        partition: int | None = None,
    ) -> None:
        """Stage the record and wait until a transaction carrying it committed.

        A record too large for the producer is refused here, as the plain producer would
        refuse it (``MessageSizeTooLargeError``): inside a transaction it would fail the whole
        transaction, and the restart would meet the same record again.
        """
        from aiokafka.errors import MessageSizeTooLargeError  # noqa: PLC0415

        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers)
        if size > self.max_record_bytes:
            raise MessageSizeTooLargeError(f"{size} bytes is above {self.max_record_bytes}")
        staged = Staged(
            topic=topic,
            key=key,
            value=value,
            headers=headers,
            finishes=finishes,
            partition=partition,
        )
        self._staged.append(staged)
        self._wake()
        await staged.done.wait()
        if staged.failed:
            raise TransactionFailed("the transaction carrying this record did not commit")

    def take(self) -> list[tuple[TP, int] | None]:
        """Close the batch of records staged so far; per record, the input offset it finishes.

        The next ``commit`` writes this batch (the committer marks those offsets finished
        first, so the positions it commits include them).
        """
        self._batch, self._staged = self._batch + self._staged, []
        return [s.finishes for s in self._batch]

    async def commit(self, *, positions: Mapping[TP, tuple[int, str]], group_id: str) -> None:
        """Write the batch ``take`` closed and ``positions`` in one transaction.

        Any failure aborts and raises ``TransactionFailed``: the in-memory state may then be
        ahead of Kafka, so the only safe way on is a restart.
        """
        from aiokafka.errors import KafkaError  # noqa: PLC0415
        from aiokafka.structs import OffsetAndMetadata, TopicPartition  # noqa: PLC0415

        producer = self.producer
        batch, self._batch = self._batch, []
        try:
            await producer.begin_transaction()
            futures = [
                await producer.send(
                    s.topic, value=s.value, key=s.key, headers=s.headers, partition=s.partition
                )
                for s in batch
            ]
            committed = {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, metadata)
                for (topic, partition), (offset, metadata) in positions.items()
            }
            if committed:
                await producer.send_offsets_to_transaction(committed, group_id)
            await producer.commit_transaction()
            for future in futures:
                await future
        except KafkaError as exc:
            for staged in batch:
                staged.failed = True
                staged.done.set()
            # Fenced or broken, the restart recovers either way: an abort is only a courtesy.
            with anyio.CancelScope(shield=True), contextlib.suppress(KafkaError):
                await producer.abort_transaction()
            raise TransactionFailed(f"transaction failed: {exc!r}") from exc
        for staged in batch:
            staged.done.set()


def make_producer(
    connection: KafkaConnection, *, transactional_id: str | None = None
) -> AIOKafkaProducer:
    """An idempotent producer, transactional when ``transactional_id`` is given."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415 - heavy import, used at run time

    return AIOKafkaProducer(
        **connection_kwargs(connection),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        transactional_id=transactional_id,
    )
