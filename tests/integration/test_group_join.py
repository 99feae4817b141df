"""Joining the group: the refusals that would part an order's events say what to do.

Against the real broker. The consumer refuses to start on input topics of unequal partition
counts (unless told to warn), and a group it cannot agree with (members that assign round-robin,
as earlier builds did) ends the run with a message instead of aiokafka's bare error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from consumer.errors import ConfigError
from consumer.service import Service
from tests.integration.harness import Topics, consumer_settings

if TYPE_CHECKING:
    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage]


async def _topics(new_topic: TopicFactory, *partitions: int) -> Topics:
    return Topics(
        inputs=tuple([await new_topic(f"in{n}", partitions=p) for n, p in enumerate(partitions)]),
        results=await new_topic("results", partitions=1),
        dead_letter=await new_topic("dlq", partitions=1),
    )


async def test_input_topics_of_unequal_partition_counts_are_refused_before_joining(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """2 and 3 partitions: partition 2 of one topic would have no partner. Refused, naming the
    counts and the setting that runs anyway; with it set to warn, the consumer runs."""
    sim = await engage_sim_factory()
    topics = await _topics(new_topic, 2, 3)
    settings = consumer_settings(kafka_broker, sim, topics)
    with anyio.fail_after(30):
        message = await _refusal(Service(settings))
    assert "INPUT_PARTITIONS_MISMATCH=warn" in message
    assert f"{topics.inputs[0]} has 2" in message
    assert f"{topics.inputs[1]} has 3" in message

    warned = Service(consumer_settings(kafka_broker, sim, topics, input_partitions_mismatch="warn"))
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(warned.run)
            while len(warned.assigned) < 5:
                await anyio.sleep(0.05)
            warned.stopping.set()


async def test_a_group_whose_members_assign_round_robin_ends_the_run_with_what_to_do(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """A member of an earlier build holds the group: the new one cannot agree on an assignor
    with it, and says so (and which setting avoids it) instead of retrying for ever."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415
    from aiokafka.coordinator.assignors.roundrobin import (  # noqa: PLC0415
        RoundRobinPartitionAssignor,
    )

    sim = await engage_sim_factory()
    topics = await _topics(new_topic, 2)
    settings = consumer_settings(kafka_broker, sim, topics)
    earlier = AIOKafkaConsumer(
        *topics.inputs,
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=settings.kafka_group_id,
        partition_assignment_strategy=(RoundRobinPartitionAssignor,),
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await earlier.start()
    try:
        with anyio.fail_after(30):
            while not earlier.assignment():
                await earlier.getmany(timeout_ms=100)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_keep_polling, earlier)
                message = await _refusal(Service(settings))
                tg.cancel_scope.cancel()
    finally:
        await earlier.stop()
    assert "round-robin" in message
    assert "KAFKA_GROUP_ID" in message


async def _refusal(service: Service) -> str:
    """The message of the ``ConfigError`` that ended the service's run (which must end so)."""
    messages: list[str] = []
    try:
        await service.run()
    except* ConfigError as group:
        messages += [str(error) for error in group.exceptions]
    assert messages, "the run ended without a ConfigError"
    return "\n".join(messages)


async def _keep_polling(consumer: object) -> None:
    # The earlier member stays alive in the group while the new one tries to join.
    while True:
        await consumer.getmany(timeout_ms=100)  # type: ignore[attr-defined]
