"""Crash safety: `engage-consumer run` killed with SIGKILL again and again over a big workload.

At the end every input event has an outcome; the simulator's journal shows no action with a
wrong tag, none out of per-order order, and none sent twice: an action in flight at a kill was
recorded as an intent before it was sent, so the next process reports it `unknown` instead of
sending it again.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import lifecycle_stream
from tests.integration.harness import (
    as_records,
    assert_guarantees,
    check,
    consumer_settings,
    kill_after_actions,
    make_topics,
    produce,
    run_until_committed,
    settings_env,
)

if TYPE_CHECKING:
    from pathlib import Path

    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage, pytest.mark.slow]

ORDERS = 2000
KILLS = 10


@pytest.mark.timeout(900)
async def test_repeated_sigkill_loses_nothing_and_sends_no_action_twice(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """≥8,000 events over 6 partitions, 10 SIGKILLs at random moments: the guarantees hold."""
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("uniform:0.01,0.15"), rate_limit=2000.0)
    )
    topics = await make_topics(new_topic, partitions=6)
    events = lifecycle_stream(ORDERS, seed=97)
    assert len(events) >= 8000
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(
        kafka_broker,
        sim,
        topics,
        engage_rate_limit=1000.0,
        engage_max_in_flight=64,
        kafka_session_timeout_ms=4000,
        # Static membership: each restart takes the partitions back at once instead of waiting
        # for the killed member's session to expire. Rebalances have their own test.
        kafka_group_instance_id="chaos-consumer",
    )
    env = settings_env(settings)
    log = tmp_path / "consumer.log"
    rng = random.Random(2024)
    started = time.monotonic()
    kills = 0
    accepted_at_kill: list[int] = []
    for _ in range(KILLS):
        # Kill it mid-flight: once it has sent a random number of actions more.
        more = rng.randint(30, 400)
        accepted_at_kill.append(await kill_after_actions(sim, env, str(log), more=more))
        kills += 1
    await run_until_committed(kafka_broker, settings, env, str(log))
    elapsed = time.monotonic() - started
    report, outcomes = await check(kafka_broker, sim, topics, events)
    statuses = Counter(o["data"]["status"] for o in outcomes)
    interrupted = sum(1 for o in outcomes if o["data"]["reason"] == "interrupted")
    figures = {
        "events": len(events),
        "kills": kills,
        "seconds": round(elapsed, 1),
        "outcomes": len(outcomes),
        "statuses": dict(statuses),
        "interrupted_unknown": interrupted,
        "reasons": dict(Counter(o["data"]["reason"] for o in outcomes)),
        "accepted_at_each_kill": accepted_at_kill,
        **report.summary(),
    }
    print("chaos figures:", figures)
    # Every kill cut work short: more actions went out after it.
    assert accepted_at_kill[-1] < report.actions_accepted
    assert_guarantees(report, outcomes)
    # Repeated outcomes only ever repeat one event's id (replayed after a kill), never invent one.
    assert report.outcomes == len(events) + report.repeated_outcomes
    assert settings.engage_api_key.reveal() not in log.read_text()


@pytest.mark.timeout(900)
async def test_transactional_outcomes_are_never_repeated_across_kills(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """KAFKA_TRANSACTIONAL_ID: outcomes and offsets commit together; no outcome twice."""
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("uniform:0.01,0.15"), rate_limit=2000.0)
    )
    topics = await make_topics(new_topic, partitions=4)
    events = lifecycle_stream(600, seed=71)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(
        kafka_broker,
        sim,
        topics,
        engage_rate_limit=1000.0,
        kafka_session_timeout_ms=4000,
        kafka_group_instance_id="eos-consumer",
        kafka_transactional_id="eos-consumer-1",
    )
    env = settings_env(settings)
    log = tmp_path / "consumer.log"
    rng = random.Random(7)
    for _ in range(5):
        await kill_after_actions(sim, env, str(log), more=rng.randint(30, 300))
    await run_until_committed(kafka_broker, settings, env, str(log))
    report, outcomes = await check(kafka_broker, sim, topics, events)
    print("transactional chaos:", report.summary())
    assert report.repeated_outcomes == 0
    assert len(outcomes) == len(events)
    assert report.missing_outcomes == []
    assert report.wrong_tag == []
    assert report.out_of_order == []
    assert report.duplicate_actions == 0
