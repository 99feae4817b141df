"""Publishing to Kafka: outcome events and dead-letter records, acknowledged before commit.

One idempotent producer (acks=all) writes both the results topic and the dead-letter topic, so a
record's outcome and its dead-letter copy share ordering and retries. ``publish`` returns once the
broker acknowledged the write; only then may the source offset be committed.

With ``KAFKA_TRANSACTIONAL_ID`` set, the producer is transactional and outcomes and consumed
offsets commit in one Kafka transaction (see ``TransactionalBatch`` in the runner).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from consumer.kafka_conn import connection_kwargs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka import AIOKafkaProducer

    from consumer.config import Settings

Headers = list[tuple[str, bytes]]


class RecordSink(Protocol):
    """Where outcome and dead-letter records go; Kafka in production, a list in unit tests."""

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        """Write one record and return when it is acknowledged."""
        ...


class KafkaSink:
    """A ``RecordSink`` on an idempotent aiokafka producer (acks=all)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Headers
    ) -> None:
        """Send and wait for the broker's acknowledgement."""
        await self.producer.send_and_wait(topic, value=value, key=key, headers=headers)

    async def publish_many(
        self, records: Sequence[tuple[str, bytes | None, bytes | None, Headers]]
    ) -> None:
        """Send a batch and wait for all acknowledgements (the producer batches them)."""
        futures = [
            await self.producer.send(topic, value=value, key=key, headers=headers)
            for topic, key, value, headers in records
        ]
        for future in futures:
            await future


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """An idempotent producer, transactional when KAFKA_TRANSACTIONAL_ID is set."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415 - heavy import, used at run time

    return AIOKafkaProducer(
        **connection_kwargs(settings),
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        transactional_id=settings.kafka_transactional_id,
    )
