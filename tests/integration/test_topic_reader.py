"""The group-less reader the operator commands use, against the real broker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from consumer.errors import ConfigError
from consumer.kafka import KafkaConnection, TopicRecord, open_topic_reader

if TYPE_CHECKING:
    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.kafka import TopicFactory

pytestmark = pytest.mark.kafka


async def fill(broker: KafkaBroker, topic: str, per_partition: dict[int, int]) -> None:
    """``n`` records on each partition, valued ``p-i`` (and one header each)."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(
                topic,
                key=b"k",
                value=f"{partition}-{n}".encode(),
                partition=partition,
                headers=[("h", b"v")],
            )
            for partition, count in per_partition.items()
            for n in range(count)
        ]
        for future in sent:
            await future
    finally:
        await producer.stop()


async def test_read_gives_every_record_up_to_the_end_without_a_group(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """Each partition's records in order, with their headers; it then stops by itself."""
    topic = await new_topic("read", partitions=2)
    await fill(kafka_broker, topic, {0: 3, 1: 2})
    connection = KafkaConnection(bootstrap_servers=kafka_broker.bootstrap_servers)
    async with open_topic_reader(connection) as reader:
        records = [r async for r in reader.read(topic)]
    assert sorted((r.partition, r.offset, r.value, r.headers) for r in records) == [
        (0, 0, b"0-0", (("h", b"v"),)),
        (0, 1, b"0-1", (("h", b"v"),)),
        (0, 2, b"0-2", (("h", b"v"),)),
        (1, 0, b"1-0", (("h", b"v"),)),
        (1, 1, b"1-1", (("h", b"v"),)),
    ]


async def test_fetch_finds_records_by_position_and_says_why_others_are_not_there(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """Found ones come back whole; retention, the end and a missing partition are named."""
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete  # noqa: PLC0415
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    topic = await new_topic("fetch", partitions=2)
    await fill(kafka_broker, topic, {0: 1200, 1: 2})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 1): RecordsToDelete(before_offset=1)})
    finally:
        await admin.close()
    connection = KafkaConnection(bootstrap_servers=kafka_broker.bootstrap_servers)
    async with open_topic_reader(connection) as reader:
        # 3 and 1100 lie more than a seek gap apart: both reads must land.
        found, missing = await reader.fetch(
            {(topic, 0): [1100, 3, 3, 1200], (topic, 1): [0, 1], (topic, 7): [0]}
        )
    assert {key: record.value for key, record in found.items()} == {
        (topic, 0, 3): b"0-3",
        (topic, 0, 1100): b"0-1100",
        (topic, 1, 1): b"1-1",
    }
    assert isinstance(found[(topic, 0, 3)], TopicRecord)
    assert missing == {
        (topic, 0, 1200): f"{topic}/0 ends at offset 1200 (was the topic recreated?)",
        (topic, 1, 0): f"deleted from {topic}/1, which now starts at offset 1 (retention)",
        (topic, 7, 0): f"{topic} has no partition 7",
    }


async def test_a_topic_the_cluster_does_not_have_is_a_setting_to_fix(
    kafka_broker: KafkaBroker,
) -> None:
    """Reading a missing topic raises ConfigError naming it (the command exits 2)."""
    connection = KafkaConnection(bootstrap_servers=kafka_broker.bootstrap_servers)
    async with open_topic_reader(connection) as reader:
        with pytest.raises(ConfigError, match="topic 'no-such-topic' does not exist"):
            await reader.partitions("no-such-topic")
