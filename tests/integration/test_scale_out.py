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
from consumer.sandbox.kafka import BrokerSettings, ExtraListener, open_kafka
from consumer.sandbox.workload import EventFactory, gated_stream
from tests.integration import netns
from tests.integration.harness import (
    ConsumerProcess,
    Topics,
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
        # Three replicas for most of the work: enough seconds to read their rate from.
        await actions_reach(sim, int(total_actions * 0.75), wait_seconds=300)
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


@pytest.mark.timeout(600)
@pytest.mark.skipif(netns.usable() is not None, reason=str(netns.usable()))
async def test_a_member_cut_off_from_the_broker_sends_nothing_for_partitions_it_lost(
    engage_sim_factory: EngageSimFactory, tmp_path: Path
) -> None:
    """Member B runs in a network namespace; its link to the broker is cut mid-run while its
    link to Engage stays up. A takes B's partitions over; B sends nothing once its session
    could have ended; the link comes back and B rejoins. Every order's writes reach Engage in
    stream order, no action twice, no event lost."""
    with netns.open_namespace() as ns:
        listener = ExtraListener(name="NETNS", security_protocol="PLAINTEXT", host=ns.broker_ip)
        async with open_kafka(BrokerSettings(extra_listeners=(listener,))) as broker:
            sim = await engage_sim_factory(
                SimulatorSettings(
                    job_delay=Delay.parse("uniform:0.05,0.3"),
                    rate_limit=2000.0,
                    request_log=500_000,
                ),
                host=ns.engage_ip,
            )
            topics = Topics(inputs=("orders",), results="outcomes", dead_letter="dlq")
            await broker.create_topics(["orders"], partitions=6)
            await broker.create_topics(["outcomes", "dlq"], partitions=1)
            events = gated_stream(240, seed=23)
            await produce(broker, "orders", as_records(events))
            settings = consumer_settings(broker, sim, topics, engage_rate_limit=120.0)
            env = settings_env(settings)
            inside = env | {"KAFKA_BOOTSTRAP_SERVERS": broker.listener_address("NETNS")}
            ns.wait_reachable(broker.listener_address("NETNS"))
            ns.wait_reachable(sim.base_url.removeprefix("http://"))
            a = ConsumerProcess(env, str(tmp_path / "a.log"))
            b = ConsumerProcess(inside, str(tmp_path / "b.log"), prefix=ns.prefix)
            session = settings.kafka_session_timeout_ms / 1000
            try:
                total_actions = sum(1 for e in events if e.event["type"] != "order.upserted")
                await actions_reach(sim, total_actions // 4, wait_seconds=120)
                ns.cut()
                cut_at = (await sim.stats())["uptimeSeconds"]
                # A takes over once the coordinator drops B; give it time to work on them.
                await anyio.sleep(session + 4)
                ns.heal()
                healed_at = (await sim.stats())["uptimeSeconds"]
                await drained(broker, settings.kafka_group_id, "orders", 300)
                for member in (a, b):
                    member.signal(signal.SIGTERM)
                assert [await a.wait(), await b.wait()] == [0, 0]
            finally:
                a.close()
                b.close()
            outcomes = await read_outcomes(broker, topics, at_least=len(events))
            journal = await sim.journal()
            requests = await sim.requests()
    (tmp_path / "journal.json").write_bytes(orjson.dumps(journal))
    report = audit(events=events, journal=journal, outcomes=outcomes)
    from_b = [r for r in requests if r[1] == ns.inner_ip]
    silent = [r for r in from_b if cut_at + session <= r[0] < healed_at]
    b_log = (tmp_path / "b.log").read_text()
    figures = {
        **report.summary(),
        "b_requests_before_cut": sum(1 for r in from_b if r[0] < cut_at),
        "b_requests_cut_to_session_end": sum(
            1 for r in from_b if cut_at <= r[0] < cut_at + session
        ),
        "b_requests_while_its_partitions_were_lost": len(silent),
        "b_requests_after_heal": sum(1 for r in from_b if r[0] >= healed_at),
    }
    print("network partition figures:", figures)
    assert figures["b_requests_before_cut"] > 0, "B must have worked before the cut"
    assert silent == []
    assert report.missing_outcomes == []
    assert report.duplicate_actions == 0
    assert report.writes_out_of_order == []
    assert report.wrong_tag == []
    assert report.out_of_order == []
    assert '"event":"partitions revoked"' in b_log


@pytest.mark.timeout(300)
async def test_an_action_on_one_topic_waits_for_its_write_on_another_across_two_members(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """Writes on topic A, actions gated on their revisions on topic B (produced first), two
    members: partition p of both topics lands on one member, so each action goes as soon as
    its write is processed, with that write's tag."""
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("uniform:0.05,0.2"), rate_limit=2000.0)
    )
    # Three partitions for two members: round-robin assignment (aiokafka's default) would
    # part partition p of one topic from p of the other; range assignment keeps them together.
    writes_topic = await new_topic("writes", partitions=3)
    actions_topic = await new_topic("actions", partitions=3)
    topics = Topics(
        inputs=(writes_topic, actions_topic),
        results=await new_topic("results", partitions=2),
        dead_letter=await new_topic("dlq", partitions=1),
    )
    factory = EventFactory(prefix="xt")
    orders = [f"XT-{n:04d}" for n in range(60)]
    writes = [factory.upserted(order, 1) for order in orders]
    actions = [factory.action(order, "ConfirmOrder", min_revision=1) for order in orders]
    await produce(kafka_broker, actions_topic, as_records(actions))
    settings = consumer_settings(
        kafka_broker, sim, topics, engage_rate_limit=400.0, revision_wait_seconds=30.0
    )
    env = settings_env(settings)
    members = [ConsumerProcess(env, str(tmp_path / f"m{n}.log")) for n in range(2)]
    try:
        # Both members joined (and parked the actions) before any write exists.
        await anyio.sleep(6)
        await produce(kafka_broker, writes_topic, as_records(writes))
        await actions_reach(sim, len(actions), wait_seconds=60)
        for member in members:
            member.signal(signal.SIGTERM)
        assert [await m.wait() for m in members] == [0, 0]
    finally:
        for member in members:
            member.close()
    events = [*actions, *writes]
    outcomes = await read_outcomes(kafka_broker, topics, at_least=len(events))
    report = audit(events=[*writes, *actions], journal=await sim.journal(), outcomes=outcomes)
    assigned = [
        orjson.loads(line)["partitions"]
        for n in range(2)
        for line in (tmp_path / f"m{n}.log").read_text().splitlines()
        if '"event":"partitions assigned"' in line
    ]
    final = assigned[-2:]
    print("two topics:", report.summary(), "lateness max", max(report.lateness, default=0.0))
    # Each member's last assignment pairs partition p of one topic with p of the other.
    for partitions in final:
        by_topic: dict[str, set[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, set()).add(partition)
        assert len(set(map(frozenset, by_topic.values()))) == 1, partitions
    assert report.missing_outcomes == []
    assert report.wrong_tag == []
    assert report.duplicate_actions == 0
    assert report.actions_accepted == len(actions)
    assert max(report.lateness) < 5.0
