"""`engage-consumer run` as a real process: bad settings, SIGTERM drain, restart without replays."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import anyio
import pytest

from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import lifecycle_stream
from tests.integration.harness import (
    ConsumerProcess,
    as_records,
    check,
    consumer_settings,
    make_topics,
    produce,
    settings_env,
)

if TYPE_CHECKING:
    from pathlib import Path

    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory


def test_bad_settings_are_all_reported_with_a_non_zero_exit() -> None:
    """Every bad variable is named at once, and the process exits 2 without starting."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KAFKA_", "ENGAGE_", "INPUT_", "RESULTS_"))
    }
    env |= {"KAFKA_BOOTSTRAP_SERVERS": "nohost", "ENGAGE_MAX_IN_FLIGHT": "many"}
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    for fragment in (
        "'nohost' is not host:port",
        "ENGAGE_BASE_URL is required",
        "ENGAGE_API_KEY is required",
        "INPUT_TOPICS is required",
        "ENGAGE_MAX_IN_FLIGHT='many' is not a valid int",
    ):
        assert fragment in done.stderr


@pytest.mark.kafka
@pytest.mark.engage
async def test_sigterm_drains_and_a_restart_finishes_without_replaying(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """SIGTERM mid-stream exits 0 after a drain; the restart answers all, sends no action twice."""
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.parse("uniform:0.05,0.4")))
    topics = await make_topics(new_topic, partitions=4)
    events = lifecycle_stream(150, seed=23)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, sim, topics, engage_rate_limit=150.0)
    env = settings_env(settings)
    log = tmp_path / "consumer.log"

    first = ConsumerProcess(env, str(log))
    try:
        with anyio.fail_after(60):
            while (await sim.stats())["actionsAccepted"] < 40:
                await anyio.sleep(0.05)
        first.signal(signal.SIGTERM)
        assert await first.wait() == 0
    finally:
        first.close()
    accepted_at_stop = (await sim.stats())["actionsAccepted"]
    assert accepted_at_stop < sum(1 for e in events if e.event["type"] != "order.upserted")

    second = ConsumerProcess(env, str(log))
    try:
        report, outcomes = await check(kafka_broker, sim, topics, events)
        second.signal(signal.SIGTERM)
        assert await second.wait() == 0
    finally:
        second.close()
    assert report.missing_outcomes == []
    assert report.duplicate_actions == 0
    assert report.wrong_tag == []
    assert report.out_of_order == []
    assert report.repeated_outcomes == 0
    assert len(outcomes) == len(events)
    text = log.read_text()
    assert text.count('"event":"signal received; draining"') == 2
    assert settings.engage_api_key.reveal() not in text
