"""The consumer end to end: real broker, real simulator over HTTP, the service's own loops.

Every scenario checks the simulator's journal (each action with the tag of the write it depends
on, in order, once) and the results topic (one valid outcome per input event).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import orjson
import pytest

from consumer.outcomes import dead_letter_view, outcome_problem
from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import EventFactory, lifecycle_stream
from tests.fixtures.engage import engage_headers
from tests.integration.harness import (
    as_records,
    by_event,
    check,
    consumer_settings,
    journal_of,
    make_topics,
    produce,
    read_all,
    running,
    wait_for,
)

if TYPE_CHECKING:
    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

#: The scenarios with a write followed by an action run in both modes of ENGAGE_ACTION_DELIVERY.
both_deliveries = pytest.mark.parametrize("delivery", ["separate", "embedded"])


def actions_of(journal: list[dict[str, Any]], order_id: str) -> list[dict[str, Any]]:
    """Accepted actions of one order, in arrival order."""
    return journal_of(journal, order_id, "action")


def processed_tags(journal: list[dict[str, Any]], order_id: str) -> list[str]:
    """The versionTags of the order's processed writes, in processing order."""
    return [
        e["versionTag"]
        for e in journal
        if e["kind"] == "processed" and e["orderId"] == order_id and e["versionTag"]
    ]


@both_deliveries
async def test_interleaved_lifecycles_over_partitions(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory, delivery: str
) -> None:
    """Many orders' lifecycles interleaved over 4 partitions: all correct, once, in order."""
    topics = await make_topics(new_topic, partitions=4)
    events = lifecycle_stream(120, seed=11)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, engage_sim, topics, engage_action_delivery=delivery)
    async with running(settings) as service:
        await wait_for(service, finished=len(events))
    report, outcomes = await check(kafka_broker, engage_sim, topics, events)
    assert report.summary() | {"actions_accepted": 0, "embedded_actions": 0} == {
        "events": len(events),
        "outcomes": len(events),
        "repeated_outcomes": 0,
        "missing_outcomes": 0,
        "actions_accepted": 0,
        "embedded_actions": 0,
        "duplicate_actions": 0,
        "wrong_tag": 0,
        "out_of_order": 0,
        "writes_out_of_order": 0,
        "unexpected_actions": 0,
        "superseded": 0,
    }
    actions = sum(1 for e in events if e.event["type"] != "order.upserted")
    assert report.actions_accepted == actions
    assert [problem for o in outcomes if (problem := outcome_problem(o))] == []
    statuses = Counter(o["data"]["status"] for o in outcomes)
    assert set(statuses) <= {"accepted", "skipped"}
    deliveries = Counter(o["data"].get("delivery") for o in outcomes if o["data"]["action"])
    if delivery == "separate":
        assert set(deliveries) == {"separate"}
    else:
        # Every lifecycle snapshot carries its action; only actions with no write of their
        # own (ReviewReminder after a confirmed order) go to the action endpoint.
        snapshots = sum(1 for e in events if isinstance(e.event["data"].get("order"), dict))
        snapshot_actions = snapshots - sum(1 for e in events if e.event["type"] == "order.upserted")
        assert deliveries["embedded"] >= snapshot_actions
        embedded = sum(1 for e in await engage_sim.journal() if e.get("embedded"))
        assert embedded == deliveries["embedded"]


@both_deliveries
async def test_action_waits_for_running_job_and_uses_its_new_tag(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    delivery: str,
) -> None:
    """An action behind a write whose job takes 1 s goes out after it, with the new tag."""
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.parse("fixed:1.0")))
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="wait")
    events = [factory.upserted("W-1", 1), factory.action("W-1", "ConfirmOrder")]
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, sim, topics, engage_action_delivery=delivery)
    async with running(settings) as service:
        await wait_for(service, finished=2)
    journal = await sim.journal()
    processed = [e for e in journal if e["kind"] == "processed"]
    (action,) = actions_of(journal, "W-1")
    assert action["versionTag"] == processed[0]["versionTag"]
    assert action["seq"] > processed[0]["seq"]
    report, outcomes = await check(kafka_broker, sim, topics, events)
    assert report.correct
    outcome = by_event(outcomes)[events[1].event_id]
    if outcome.get("delivery") == "embedded":
        # It rode in the write (taken in before the write's first request): the write's tag.
        assert (action["embedded"], outcome["status"]) == (True, "accepted")
    else:
        assert (outcome["status"], outcome["versionTag"]) == ("accepted", action["versionTag"])


@both_deliveries
async def test_write_write_action_uses_the_second_tag(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory, delivery: str
) -> None:
    """Two writes then an action: the action goes on the second write (its tag, or in it)."""
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="ww")
    events = [
        factory.upserted("WW-1", 1),
        factory.upserted("WW-1", 2),
        factory.action("WW-1", "ConfirmOrder"),
    ]
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, engage_sim, topics, engage_action_delivery=delivery)
    async with running(settings) as service:
        await wait_for(service, finished=3)
    report, outcomes = await check(kafka_broker, engage_sim, topics, events)
    assert report.correct
    assert report.actions_accepted == 1
    journal = await engage_sim.journal()
    (action,) = actions_of(journal, "WW-1")
    assert action["versionTag"] == processed_tags(journal, "WW-1")[-1]
    first = by_event(outcomes)[events[0].event_id]
    # Taken in together, the first write is superseded by the second and never sent.
    assert (first["status"], first["reason"]) in {("skipped", "coalesced"), ("accepted", None)}


@both_deliveries
async def test_revision_gated_action_from_another_topic_waits_for_its_write(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory, delivery: str
) -> None:
    """An action with minRevision 2 that arrives (on topic B) before revision 2 (on A) waits.

    It has no write of its own (it parked before revision 2 came): it goes to the action
    endpoint in both delivery modes.
    """
    topics = await make_topics(new_topic, inputs=2, partitions=2)
    factory = EventFactory(prefix="gate")
    first = factory.upserted("G-1", 1)
    gated = factory.action("G-1", "ConfirmShipment", min_revision=2)
    second = factory.upserted("G-1", 2)
    settings = consumer_settings(
        kafka_broker,
        engage_sim,
        topics,
        revision_wait_seconds=30.0,
        engage_action_delivery=delivery,
    )
    async with running(settings) as service:
        await produce(kafka_broker, topics.inputs[0], as_records([first]))
        await wait_for(service, finished=1)
        await produce(kafka_broker, topics.inputs[1], as_records([gated]))
        with pytest.raises(AssertionError):
            await wait_for(service, finished=2, wait_seconds=1.0)
        await produce(kafka_broker, topics.inputs[0], as_records([second]))
        await wait_for(service, finished=3)
    journal = await engage_sim.journal()
    (action,) = actions_of(journal, "G-1")
    assert action["versionTag"] == processed_tags(journal, "G-1")[-1]
    report, outcomes = await check(kafka_broker, engage_sim, topics, [first, second, gated])
    assert report.correct
    outcome = by_event(outcomes)[gated.event_id]
    assert (outcome["status"], outcome["delivery"]) == ("accepted", "separate")


async def test_stale_tag_is_rejected_and_the_order_relearns_its_tag(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """A write behind the consumer's back makes its tag stale: 404 → rejected; next action GETs."""
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="stale")
    created = factory.upserted("S-1", 1)
    first_action = factory.action("S-1", "ConfirmOrder")
    second_action = factory.action("S-1", "ConfirmShipment")
    # Reading every tag makes the book remember the lone write's tag, which then goes stale.
    settings = consumer_settings(kafka_broker, engage_sim, topics, engage_read_every_tag=True)
    async with running(settings) as service:
        await produce(kafka_broker, topics.inputs[0], as_records([created]))
        await wait_for(service, finished=1)
        # Someone else replaces the order: Engage's tag moves, the consumer's does not.
        await _replaced_by_someone_else(engage_sim, factory, "S-1")
        await produce(kafka_broker, topics.inputs[0], as_records([first_action]))
        await wait_for(service, finished=2)
        await produce(kafka_broker, topics.inputs[0], as_records([second_action]))
        await wait_for(service, finished=3)
    _report, outcomes = await check(
        kafka_broker, engage_sim, topics, [created, first_action, second_action]
    )
    outcome = by_event(outcomes)
    assert outcome[first_action.event_id]["status"] == "rejected"
    assert outcome[first_action.event_id]["httpStatus"] == 404
    # The rejection made the book forget the tag; the next action learned it with a GET.
    assert outcome[second_action.event_id]["status"] == "accepted"
    journal = await engage_sim.journal()
    (action,) = actions_of(journal, "S-1")
    assert action["action"] == "ConfirmShipment"


async def test_a_write_no_action_waits_for_skips_the_tag_read(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """No GET after a lone write; the action that comes later reads the tag current by then."""
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="lone")
    created = factory.upserted("L-1", 1)
    action = factory.action("L-1", "ConfirmOrder")
    async with running(consumer_settings(kafka_broker, engage_sim, topics)) as service:
        await produce(kafka_broker, topics.inputs[0], as_records([created]))
        await wait_for(service, finished=1)
        reads_after_write = _order_reads(await engage_sim.stats())
        # Someone else replaces the order: with no tag remembered, nothing can go stale.
        await _replaced_by_someone_else(engage_sim, factory, "L-1")
        await produce(kafka_broker, topics.inputs[0], as_records([action]))
        await wait_for(service, finished=2)
    assert reads_after_write == 0
    assert _order_reads(await engage_sim.stats()) == 1
    _report, outcomes = await check(kafka_broker, engage_sim, topics, [created, action])
    outcome = by_event(outcomes)
    assert (outcome[created.event_id]["status"], outcome[created.event_id]["versionTag"]) == (
        "accepted",
        None,
    )
    journal = await engage_sim.journal()
    (sent,) = actions_of(journal, "L-1")
    assert sent["versionTag"] == processed_tags(journal, "L-1")[-1]
    assert (outcome[action.event_id]["status"], outcome[action.event_id]["versionTag"]) == (
        "accepted",
        sent["versionTag"],
    )


async def test_writes_waiting_for_their_jobs_hold_no_call_place(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """With 3 call places and 3 s jobs, all 12 writes are out before the first job is done."""
    # Holding places, 3 writes would go out per job time; 3 s leaves a slow start-up room.
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.parse("fixed:3.0")))
    topics = await make_topics(new_topic, partitions=4)
    factory = EventFactory(prefix="place")
    events = [factory.upserted(f"P-{n}", 1) for n in range(12)]
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(
        kafka_broker, sim, topics, engage_max_in_flight=2, engage_max_polls_in_flight=1
    )
    async with running(settings) as service:
        await wait_for(service, finished=len(events))
    journal = await sim.journal()
    first_done = next(e["seq"] for e in journal if e["kind"] == "processed")
    writes_before = [e for e in journal if e["kind"] == "write" and e["seq"] < first_done]
    assert len(writes_before) == len(events)
    report, outcomes = await check(kafka_broker, sim, topics, events)
    assert report.correct
    assert {o["data"]["status"] for o in outcomes} == {"accepted"}


def _order_reads(stats: dict[str, Any]) -> int:
    """GETs of an order the simulator answered, from its counters."""
    return sum(stats["requests"].get("GET /api/v3/orders/{orderId}", {}).values())


async def _replaced_by_someone_else(
    sim: EngageSimulator, factory: EventFactory, order_id: str
) -> None:
    """Another writer PUTs the order; return once Engage processed it (its tag moved)."""
    writes = len(processed_tags(await sim.journal(), order_id)) + 1
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        answer = await client.put(
            f"/api/v3/orders/{order_id}",
            headers=engage_headers(sim),
            content=orjson.dumps(factory.order_body(order_id, 9)),
        )
        assert answer.status_code == 202
    for _ in range(100):
        if len(processed_tags(await sim.journal(), order_id)) >= writes:
            return
        await anyio.sleep(0.05)
    raise AssertionError(f"{order_id}: the other writer's write not processed after 5 s")


@both_deliveries
async def test_order_without_contact_is_rejected_with_422(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory, delivery: str
) -> None:
    """Engage's 422 (no contact) gives a `rejected` outcome that says why.

    Embedded, the action may ride in the write: the job says no contact, the write's 202 stays.
    """
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="noc")
    events = [
        factory.upserted("N-1", 1, contact=False),
        factory.lifecycle("confirmed", "N-1", revision=None),
    ]
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, engage_sim, topics, engage_action_delivery=delivery)
    async with running(settings) as service:
        await wait_for(service, finished=2)
    _report, outcomes = await check(kafka_broker, engage_sim, topics, events)
    outcome = by_event(outcomes)[events[1].event_id]
    status = 202 if outcome["delivery"] == "embedded" else 422
    assert (outcome["status"], outcome["httpStatus"], outcome["reason"]) == (
        "rejected",
        status,
        "no_contact",
    )
    assert outcome["action"] == "ConfirmOrder"
    assert actions_of(await engage_sim.journal(), "N-1") == []


@both_deliveries
async def test_429_storm_adapts_the_budget_and_loses_nothing(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    delivery: str,
) -> None:
    """Engage allows 25 requests/s, the consumer starts at 200/s: 429s, then all accepted."""
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("uniform:0.005,0.02"), rate_limit=25.0)
    )
    topics = await make_topics(new_topic, partitions=4)
    events = lifecycle_stream(25, seed=5)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(
        kafka_broker, sim, topics, engage_rate_limit=200.0, engage_action_delivery=delivery
    )
    async with running(settings) as service:
        await wait_for(service, finished=len(events), wait_seconds=120)
    report, outcomes = await check(kafka_broker, sim, topics, events)
    assert report.correct
    assert report.duplicate_actions == 0
    assert {o["data"]["status"] for o in outcomes} <= {"accepted", "skipped"}
    stats = await sim.stats()
    assert stats["rateLimited"] > 0


@both_deliveries
async def test_failed_job_fails_the_write_and_the_actions_behind_it(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory, delivery: str
) -> None:
    """A job that fails: the write is `failed`, the actions behind it `failed`/write_failed.

    Embedded: the first action may ride in the failing write; it fails with it, never resent.
    """
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="fail")
    events = [
        factory.upserted("F-1", 1),
        factory.action("F-1", "ConfirmOrder"),
        factory.lifecycle("shipped", "F-1", revision=None),
    ]
    await engage_sim.fail_next_job("F-1")
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, engage_sim, topics, engage_action_delivery=delivery)
    async with running(settings) as service:
        await wait_for(service, finished=3)
    _report, outcomes = await check(kafka_broker, engage_sim, topics, events)
    outcome = by_event(outcomes)
    assert (outcome[events[0].event_id]["status"], outcome[events[0].event_id]["reason"]) == (
        "failed",
        "job_failed",
    )
    for event in events[1:]:
        assert (outcome[event.event_id]["status"], outcome[event.event_id]["reason"]) == (
            "failed",
            "write_failed",
        )
    assert actions_of(await engage_sim.journal(), "F-1") == []


async def test_poison_records_are_dead_lettered_and_the_consumer_goes_on(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """Garbage between valid events: dead-lettered with reasons; the valid ones all succeed."""
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="poison")
    good = [factory.upserted("P-1", 1), factory.action("P-1", "ConfirmOrder")]
    poison: list[tuple[bytes | None, bytes | None]] = [
        (b"P-1", b"\x00\x01 not json"),
        (b"P-1", None),
        (b"P-1", orjson.dumps({"specversion": "1.0", "type": "order.upserted"})),
        (None, good[0].value),
    ]
    records = [(good[0].key, good[0].value), *poison, (good[1].key, good[1].value)]
    await produce(kafka_broker, topics.inputs[0], records)
    async with running(consumer_settings(kafka_broker, engage_sim, topics)) as service:
        await wait_for(service, finished=len(records))
    dead = await read_all(kafka_broker, topics.dead_letter, at_least=len(poison))
    assert len(dead) == len(poison)
    reasons = [dead_letter_view(list(r.headers))["x-dlq-reason"] for r in dead]
    assert reasons == ["undecodable", "empty", "schema", "missing_key"]
    assert [r.value for r in dead] == [value for _key, value in poison]
    report, outcomes = await check(kafka_broker, engage_sim, topics, good, extra_outcomes=4)
    assert report.correct
    assert report.actions_accepted == 1
    invalid = [o["data"] for o in outcomes if o["data"]["status"] == "invalid"]
    # Each names its order: from the key, or (for the keyless record) from the subject.
    assert sorted((o["orderId"], o["reason"]) for o in invalid) == [
        ("P-1", "empty"),
        ("P-1", "missing_key"),
        ("P-1", "schema"),
        ("P-1", "undecodable"),
    ]
