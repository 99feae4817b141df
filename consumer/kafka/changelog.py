"""The state topic in Kafka: a compacted changelog of what the service knows per order.

Partition p of the state topic holds the orders of input partition p (every input topic has the
same partition count: ``consumer.kafka.source``), keyed by orderId, so a member that is assigned
p reads exactly those orders back (``read_changelog``) before it takes p's first record. The
topic is created when missing (``cleanup.policy=compact``, the cluster's replication factor),
as Kafka Streams creates its changelogs; one with fewer partitions than the input is refused.

Only bytes here: what a record means is ``consumer.service.state_store``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from consumer.errors import ConfigError
from consumer.kafka.connection import connection_kwargs

if TYPE_CHECKING:
    from collections.abc import Iterable

    from consumer.kafka.connection import KafkaConnection

#: How long a restore may take before it gives up on a partition that never reaches its end.
_RESTORE_TIMEOUT = 120.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ChangelogRecord:
    """One record read back from the state topic."""

    partition: int
    offset: int
    key: bytes
    value: bytes | None


async def ensure_changelog(connection: KafkaConnection, topic: str, *, partitions: int) -> bool:
    """Create the compacted state topic with ``partitions`` partitions unless it exists.

    Returns True when it was created. Raises ``ConfigError`` when it exists with fewer
    partitions (orders of the missing ones would have nowhere to go) or is not compacted.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: PLC0415
    from aiokafka.errors import TopicAlreadyExistsError, for_code  # noqa: PLC0415

    admin = AIOKafkaAdminClient(**connection_kwargs(connection))
    await admin.start()
    try:
        new = NewTopic(topic, partitions, 1, topic_configs={"cleanup.policy": "compact"})
        # -1: the cluster's default replication factor (KIP-464). aiokafka's NewTopic refuses
        # -1 together with a partition count, which the protocol allows, so it is set after.
        new.replication_factor = -1
        response = await admin.create_topics([new])
        (entry,) = response.to_object()["topic_errors"]
        error = for_code(entry["error_code"])
        if entry["error_code"] == 0:
            await _wait_for_leaders(admin, topic)
            return True
        if error is not TopicAlreadyExistsError:
            problem = (
                f"STATE_TOPIC={topic!r} could not be created: {error.__name__} "
                f"{entry.get('error_message') or ''}; create it (compacted, {partitions} "
                "partitions) or set STATE_TOPIC= to run without one"
            )
            raise ConfigError([problem])
        (described,) = await admin.describe_topics([topic])
        have = len(described["partitions"])
        resource = ConfigResource(ConfigResourceType.TOPIC, topic)
        configs = await admin.describe_configs([resource])
        policy = _config_value(configs, "cleanup.policy")
    finally:
        await admin.close()
    problems = []
    if have < partitions:
        problems.append(
            f"STATE_TOPIC={topic!r} has {have} partitions, the input topics {partitions}: "
            "give it as many partitions as the input topics"
        )
    if policy is not None and "compact" not in policy:
        problems.append(f"STATE_TOPIC={topic!r} must be compacted (cleanup.policy={policy})")
    if problems:
        raise ConfigError(problems)
    return False


async def read_changelog(
    connection: KafkaConnection, topic: str, partitions: Iterable[int]
) -> list[ChangelogRecord]:
    """Every record of the given state-topic partitions, up to their ends when asked."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    tps = [TopicPartition(topic, p) for p in sorted(set(partitions))]
    if not tps:
        return []
    reader = AIOKafkaConsumer(
        **connection_kwargs(connection),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    records: list[ChangelogRecord] = []
    await reader.start()
    try:
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        left = {tp for tp in tps if ends[tp] > 0}
        await reader.seek_to_beginning(*left)
        with anyio.fail_after(_RESTORE_TIMEOUT):
            while left:
                batch = await reader.getmany(*left, timeout_ms=500, max_records=10_000)
                for tp, got in batch.items():
                    records.extend(
                        ChangelogRecord(
                            partition=r.partition, offset=r.offset, key=r.key, value=r.value
                        )
                        for r in got
                        if r.key is not None and r.offset < ends[tp]
                    )
                left = {tp for tp in left if await reader.position(tp) < ends[tp]}
    finally:
        await reader.stop()
    return records


async def _wait_for_leaders(admin: object, topic: str) -> None:
    """Until every partition of a new topic has a leader (bounded)."""
    describe = getattr(admin, "describe_topics")  # noqa: B009 - typed loosely: aiokafka's admin
    with anyio.fail_after(30):
        while True:
            (described,) = await describe([topic])
            parts = described.get("partitions") or []
            if parts and all(p.get("leader", -1) >= 0 for p in parts):
                return
            await anyio.sleep(0.1)


def _config_value(configs: list[Any], name: str) -> str | None:
    """One config entry's value from aiokafka's describe_configs answers, if it is there."""
    for response in configs:
        for resource in response.to_object().get("resources", []):
            for entry in resource.get("config_entries", []):
                if entry.get("config_names") == name or entry.get("config_name") == name:
                    value = entry.get("config_value")
                    return str(value) if value is not None else None
    return None
