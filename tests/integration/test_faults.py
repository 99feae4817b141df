"""Faults around the consumer: rebalances, a broker restart, Engage outages, slowness and 429s.

Each test runs `engage-consumer run` processes against a real broker and the simulator, then
checks the same guarantees as the crash test: every event answered, every action with the tag
of its write, in order, never twice.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from typing import TYPE_CHECKING

import anyio
import pytest

from consumer.sandbox.engage import Delay, Faults, SimulatorSettings
from consumer.sandbox.kafka import BrokerSettings, open_kafka
from consumer.sandbox.workload import lifecycle_stream
from tests.integration.harness import (
    ConsumerProcess,
    Topics,
    actions_reach,
    as_records,
    assert_guarantees,
    check,
    consumer_settings,
    drained,
    make_topics,
    produce,
    settings_env,
)

if TYPE_CHECKING:
    from pathlib import Path

    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage, pytest.mark.slow]


@pytest.mark.timeout(600)
async def test_scale_out_and_rebalance_keep_the_guarantees(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """Three consumers in one group; one killed and one added mid-run: the guarantees hold."""
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("uniform:0.01,0.2"), rate_limit=2000.0)
    )
    topics = await make_topics(new_topic, partitions=6)
    events = lifecycle_stream(500, seed=31)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    # The group's budget (shared by the members since each spends its share): the test is
    # about the guarantees through a kill and a join, not about waiting for tokens.
    settings = consumer_settings(
        kafka_broker, sim, topics, engage_rate_limit=450.0, kafka_session_timeout_ms=4000
    )
    env = settings_env(settings) | {"LOG_LEVEL": "DEBUG"}
    members = [ConsumerProcess(env, str(tmp_path / f"c{i}.log")) for i in range(3)]
    try:
        await actions_reach(sim, 300)
        members[1].signal(signal.SIGKILL)
        await members[1].wait()
        await actions_reach(sim, 700)
        members.append(ConsumerProcess(env, str(tmp_path / "c3.log")))
        await drained(kafka_broker, settings.kafka_group_id, topics.inputs[0], 300)
        for member in (members[0], members[2], members[3]):
            member.signal(signal.SIGTERM)
        assert [await m.wait() for m in (members[0], members[2], members[3])] == [0, 0, 0]
    finally:
        for member in members:
            member.close()
    report, outcomes = await check(kafka_broker, sim, topics, events)
    assert_guarantees(report, outcomes)
    text = "".join(path.read_text() for path in tmp_path.glob("c*.log"))
    assert text.count('"event":"partitions revoked"') >= 4


@pytest.mark.timeout(600)
async def test_broker_restart_mid_run(engage_sim_factory: EngageSimFactory, tmp_path: Path) -> None:
    """The broker restarts (same data) under a running consumer, which reconnects and finishes."""
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("uniform:0.01,0.2"), rate_limit=2000.0)
    )
    async with open_kafka(BrokerSettings(), data_dir=tmp_path / "kafka") as broker:
        topics = Topics(inputs=("orders",), results="outcomes", dead_letter="dlq")
        await broker.create_topics(["orders"], partitions=4)
        await broker.create_topics(["outcomes", "dlq"], partitions=1)
        events = lifecycle_stream(300, seed=41)
        await produce(broker, "orders", as_records(events))
        # The budget is not what this test is about: a generous one keeps the run short.
        settings = consumer_settings(broker, sim, topics, engage_rate_limit=400.0)
        process = ConsumerProcess(settings_env(settings), str(tmp_path / "consumer.log"))
        try:
            await actions_reach(sim, 150)
            restart_took = await broker.restart()
            at_restart = (await sim.stats())["actionsAccepted"]
            await drained(broker, settings.kafka_group_id, "orders", 300)
            process.signal(signal.SIGTERM)
            assert await process.wait() == 0
        finally:
            process.close()
        report, outcomes = await check(broker, sim, topics, events)
    print("broker restart:", {"restart_seconds": restart_took, **report.summary()})
    assert at_restart < report.actions_accepted
    assert_guarantees(report, outcomes)


@pytest.mark.timeout(900)
async def test_engage_outage_slowness_and_429s_pause_and_recover(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """15 s of 503s then refused connections, 5 s latency, 429s throughout: bounded, recovers."""
    # Engage allows 150 requests/s; the consumer starts at 250/s: 429s all along.
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("uniform:0.01,0.2"), rate_limit=150.0)
    )
    topics = await make_topics(new_topic, partitions=4)
    events = lifecycle_stream(300, seed=53)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(
        kafka_broker,
        sim,
        topics,
        engage_rate_limit=250.0,
        max_buffered_events=300,
        # The defaults: the outage must fit in both. (With the harness's 20 s job deadline,
        # a write polling its job when the outage began gave up, and the action behind it
        # failed with write_failed.)
        event_deadline_seconds=300.0,
        job_deadline_seconds=120.0,
        engage_read_timeout_seconds=10.0,
    )
    log = tmp_path / "consumer.log"
    process = ConsumerProcess(settings_env(settings), str(log))
    rss: list[float] = []

    async def sample_rss(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rss.append(process.peak_rss_mib())
            await anyio.sleep(0.5)

    try:
        await actions_reach(sim, 100)
        # Each phase outlasts the retry backoff's cap (10 s), so calls meet it more than once.
        await sim.set_faults(Faults(outage_seconds=15.0, outage_mode="error"))
        before_outage = (await sim.stats())["actionsAccepted"]
        # The refusing phase starts while the first still runs: no gap between the two in
        # which calls waiting to retry get through.
        await sample_rss(14.5)
        await sim.set_faults(Faults(outage_seconds=15.0, outage_mode="refuse"))
        await sample_rss(14.5)  # read the count while the outage still runs
        during_outage = (await sim.stats())["actionsAccepted"] - before_outage
        await actions_reach(sim, before_outage + during_outage + 50)
        await sim.set_faults(Faults(latency=Delay.parse("fixed:5")))
        await sample_rss(6.0)
        await sim.set_faults(Faults())
        await drained(kafka_broker, settings.kafka_group_id, topics.inputs[0], 400)
        process.signal(signal.SIGTERM)
        assert await process.wait() == 0
    finally:
        process.close()
    report, outcomes = await check(kafka_broker, sim, topics, events)
    stats = await sim.stats()
    text = log.read_text()
    figures = {
        "peak_rss_mib": max(rss),
        "actions_during_outage": during_outage,
        "rate_limited": stats["rateLimited"],
        "faults": stats["faultsInjected"],
        "statuses": dict(Counter(o["data"]["status"] for o in outcomes)),
        "not_accepted": [
            (o["data"]["eventType"], o["data"]["status"], o["data"]["reason"], o["data"]["detail"])
            for o in outcomes
            if o["data"]["status"] in {"failed", "unknown"}
        ],
        **report.summary(),
    }
    print("engage faults:", figures)
    # Only requests already inside the simulator when the outage began can have got through.
    assert during_outage <= 5
    assert stats["rateLimited"] > 0
    assert '"event":"paused: too many events in progress"' in text
    assert max(rss) < 300
    assert_guarantees(report, outcomes)
