"""Replicas act as one client of Engage: one budget, co-partitioned work, rebalances unseen.

`engage-consumer run` processes in one group against the simulator, which limits the API key
the way Engage does (429 above its rate) and counts the requests of every second. What Engage
sees must not tell one process from several: the group stays within ``ENGAGE_RATE_LIMIT``,
every action goes with the tag one process would give it, in stream order, without a stall.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import anyio
import orjson
import pytest

from consumer.sandbox.audit import audit
from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import gated_stream
from tests.integration.harness import (
    ConsumerProcess,
    actions_reach,
    as_records,
    consumer_settings,
    drained,
    make_topics,
    produce,
    read_outcomes,
    settings_env,
)

if TYPE_CHECKING:
    from pathlib import Path

    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage, pytest.mark.slow]

#: The API key's budget the group is told, and the rate above which Engage answers 429.
BUDGET = 60.0
KEY_LIMIT = 66.0
#: Poison records between the events: refused, dead-lettered, and no reason to stop.
POISON = [(b"BROKEN-1", b"{not json"), (None, b"\xff\xfe binary"), (b"X", b"[]")]


@pytest.mark.timeout(600)
async def test_three_replicas_spend_one_budget_and_a_throttled_rebalance_changes_nothing(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """1 → 3 → 1 replicas while calls wait for the budget: within it every second, no 429,
    ≥ 85 % of it used by three, and every gated action with the tag of the write before it in
    its stream, in order, none parked."""
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("uniform:0.05,0.3"), rate_limit=KEY_LIMIT)
    )
    topics = await make_topics(new_topic, partitions=6)
    events = gated_stream(150, seed=11)
    records = as_records(events)
    for n, poison in enumerate(POISON):
        records.insert(len(records) * (n + 1) // (len(POISON) + 1), poison)
    await produce(kafka_broker, topics.inputs[0], records)
    settings = consumer_settings(
        kafka_broker,
        sim,
        topics,
        engage_rate_limit=BUDGET,
        kafka_session_timeout_ms=6000,
        # A parked action would wait this long: a stall could not hide in the noise.
        revision_wait_seconds=30.0,
    )
    env = settings_env(settings)
    members = [ConsumerProcess(env, str(tmp_path / "c0.log"))]
    try:
        await anyio.sleep(3)
        members.append(ConsumerProcess(env, str(tmp_path / "c1.log")))
        await anyio.sleep(3)
        members.append(ConsumerProcess(env, str(tmp_path / "c2.log")))
        three_from = (await sim.stats())["uptimeSeconds"] + 6
        total_actions = sum(1 for e in events if e.event["type"] != "order.upserted")
        await actions_reach(sim, int(total_actions * 0.6), wait_seconds=300)
        three_until = (await sim.stats())["uptimeSeconds"]
        for member in members[1:]:
            member.signal(signal.SIGTERM)
        assert [await m.wait() for m in members[1:]] == [0, 0]
        await drained(kafka_broker, settings.kafka_group_id, topics.inputs[0], 300)
        members[0].signal(signal.SIGTERM)
        assert await members[0].wait() == 0
    finally:
        for member in members:
            member.close()
    outcomes = await read_outcomes(kafka_broker, topics, at_least=len(events))
    journal = await sim.journal()
    # Kept beside the consumers' logs: what to read first when this test fails.
    (tmp_path / "journal.json").write_bytes(orjson.dumps(journal))
    (tmp_path / "outcomes.json").write_bytes(orjson.dumps(outcomes))
    report = audit(events=events, journal=journal, outcomes=outcomes, strict=True)
    seconds = await sim.per_second()
    three = [count for second, count, _ in seconds if three_from <= second < three_until - 1]
    figures = {
        **report.summary(),
        "max_lateness_seconds": round(max(report.lateness, default=0.0), 3),
        "busiest_second": max(count for _, count, _ in seconds),
        "rate_limited": sum(throttled for _, _, throttled in seconds),
        "three_replica_seconds": len(three),
        "three_replica_mean_rps": round(sum(three) / max(len(three), 1), 1),
        "gets": sum(
            n
            for status, n in (await sim.stats())["requests"]["GET /api/v3/orders/{orderId}"].items()
        ),
    }
    print("scale-out figures:", figures)
    assert report.missing_outcomes == []
    assert report.duplicate_actions == 0
    assert report.unexpected_actions == 0
    assert report.wrong_tag == []
    assert report.out_of_order == []
    assert figures["rate_limited"] == 0
    assert figures["busiest_second"] <= BUDGET * 1.25
    assert len(three) >= 5
    assert figures["three_replica_mean_rps"] >= 0.85 * BUDGET
    # One process sends a gated action within a second or two of its write; a parked one
    # would wait REVISION_WAIT_SECONDS (30 s) or for the next write.
    assert max(report.lateness) < 5.0
