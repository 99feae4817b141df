"""Read a topic from its start: how the demo, the tests and the checks see what was published.

Reads as analytics does (``read_committed``: records of aborted transactions are never seen),
with no consumer group, so reading changes nothing for anyone else.
"""

from __future__ import annotations

from typing import Any

import anyio


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    at_least: int,
    wait_seconds: float = 30.0,
    grace_seconds: float = 0.0,
) -> list[Any]:
    """Records of ``topic`` from the start, once ``at_least`` arrived or ``wait_seconds`` passed.

    ``grace_seconds`` keeps reading a little longer, so that records beyond the expected
    count (a duplicate) show up. Returns aiokafka's ``ConsumerRecord`` objects.
    """
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415 - a sandbox helper, loaded on use

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    out: list[Any] = []
    try:
        with anyio.move_on_after(wait_seconds):
            while len(out) < at_least:
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    out.extend(records)
        if grace_seconds > 0:
            batch = await consumer.getmany(timeout_ms=int(grace_seconds * 1000))
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out
