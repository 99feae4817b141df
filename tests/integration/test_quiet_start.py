"""A normal start of `engage-consumer run` logs nothing above info, from start to SIGTERM exit.

The test runs against a broker of its own: aiokafka's "Group Coordinator Request failed:
[Error 15]" comes when the group's coordinator cannot be found yet, which on a fresh cluster is
the first group's start (``__consumer_offsets`` is created by that lookup). The session's broker
has had groups by the time this test runs, so it would prove nothing there.
"""

from __future__ import annotations

import signal
import uuid
from typing import TYPE_CHECKING

import orjson
import pytest

from consumer.sandbox.kafka import open_kafka
from consumer.sandbox.workload import lifecycle_stream
from tests.integration.harness import (
    ConsumerProcess,
    Topics,
    as_records,
    consumer_settings,
    produce,
    read_outcomes,
    settings_env,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker

COORDINATOR_WAIT = "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"
QUIET_LEVELS = {"debug", "info"}


@pytest.fixture
async def fresh_broker() -> AsyncIterator[KafkaBroker]:
    """A broker no group has used yet, as a new cluster is."""
    async with open_kafka() as broker:
        yield broker


async def _topics(broker: KafkaBroker) -> Topics:
    suffix = uuid.uuid4().hex[:8]
    names = {kind: f"quiet-start-{kind}-{suffix}" for kind in ("in", "results", "dlq")}
    await broker.create_topics([names["in"]], partitions=2)
    await broker.create_topics([names["results"], names["dlq"]], partitions=1)
    return Topics(inputs=(names["in"],), results=names["results"], dead_letter=names["dlq"])


@pytest.mark.kafka
@pytest.mark.engage
async def test_a_normal_start_logs_nothing_above_info(
    fresh_broker: KafkaBroker, engage_sim: EngageSimulator, tmp_path: Path
) -> None:
    """A first group joins, answers its events and drains on SIGTERM with no warning or error;
    the expected coordinator wait is there, at debug."""
    topics = await _topics(fresh_broker)
    events = lifecycle_stream(3, seed=5)
    await produce(fresh_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(fresh_broker, engage_sim, topics)
    log = tmp_path / "consumer.log"
    process = ConsumerProcess({**settings_env(settings), "LOG_LEVEL": "DEBUG"}, str(log))
    try:
        await read_outcomes(fresh_broker, topics, at_least=len(events))
        process.signal(signal.SIGTERM)
        assert await process.wait() == 0
    finally:
        process.close()
    lines = log.read_text().splitlines()
    # A line that is not JSON (a traceback, a Python warning) counts as loud too.
    parsed = [orjson.loads(line) if line.startswith("{") else {"raw": line} for line in lines]
    assert [line for line in parsed if line.get("level") not in QUIET_LEVELS] == []
    assert {"event": COORDINATOR_WAIT, "level": "debug"} in [
        {"event": line["event"], "level": line["level"]} for line in parsed
    ]
    assert parsed[-1]["event"] == "stopped"
