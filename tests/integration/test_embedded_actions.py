"""ENGAGE_ACTION_DELIVERY=embedded end to end: the action rides in the write it depends on.

Real broker, the simulator over HTTP (which runs an embedded action when its write's job
succeeds and reports it through the job), the service's own loops; a crash is a SIGKILL of
``engage-consumer run``. Each test checks the simulator's journal (the right write, once) and
the results topic.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import EventFactory
from tests.integration.harness import (
    ConsumerProcess,
    as_records,
    by_event,
    check,
    consumer_settings,
    journal_of,
    make_topics,
    produce,
    running,
    settings_env,
    wait_for,
)

if TYPE_CHECKING:
    from pathlib import Path

    from consumer.sandbox.audit import AuditReport
    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker
    from consumer.sandbox.workload import GeneratedEvent
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

ACTION_ROUTE = "POST /api/v3/orders/{orderId}/action"


async def run_embedded(
    kafka_broker: KafkaBroker,
    sim: EngageSimulator,
    new_topic: TopicFactory,
    events: list[GeneratedEvent],
) -> tuple[AuditReport, list[dict[str, Any]]]:
    """Produce ``events`` to one partition, run an embedded-delivery consumer until each has
    its outcome, and audit the run."""
    topics = await make_topics(new_topic, partitions=1)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, sim, topics, engage_action_delivery="embedded")
    async with running(settings) as service:
        await wait_for(service, finished=len(events))
    return await check(kafka_broker, sim, topics, events)


def action_calls(stats: dict[str, Any]) -> int:
    return sum(stats["requests"].get(ACTION_ROUTE, {}).values())


async def test_a_lifecycle_snapshot_and_its_action_go_as_one_write(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """Confirmed and shipped, each with a snapshot: two writes, no action call, no tag read."""
    factory = EventFactory(prefix="emb")
    events = [
        factory.lifecycle("confirmed", "E-1", revision=1, snapshot_status="Paid"),
        factory.lifecycle("shipped", "E-1", revision=2, snapshot_status="Shipped"),
    ]
    report, outcomes = await run_embedded(kafka_broker, engage_sim, new_topic, events)
    assert report.correct
    assert report.embedded_actions == 2
    journal = await engage_sim.journal()
    processed = journal_of(journal, "E-1", "processed")
    actions = journal_of(journal, "E-1", "action")
    assert [a["action"] for a in actions] == ["ConfirmOrder", "ConfirmShipment"]
    # Each on the tag of the write it came with, right after that write was processed.
    assert [a["versionTag"] for a in actions] == [p["versionTag"] for p in processed]
    assert all(a["embedded"] for a in actions)
    stats = await engage_sim.stats()
    assert action_calls(stats) == 0
    assert sum(stats["requests"].get("GET /api/v3/orders/{orderId}", {}).values()) == 0
    data = by_event(outcomes)
    for event in events:
        outcome = data[event.event_id]
        assert (outcome["status"], outcome["delivery"], outcome["reason"]) == (
            "accepted",
            "embedded",
            None,
        )


async def test_coalesced_writes_the_action_rides_in_the_one_sent(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """Three upserts then a snapshot with its action, taken in together: one write carries it."""
    factory = EventFactory(prefix="coal")
    events = [
        factory.upserted("C-1", 1),
        factory.upserted("C-1", 2),
        factory.upserted("C-1", 3),
        factory.lifecycle("confirmed", "C-1", revision=4, snapshot_status="Paid"),
        factory.action("C-1", "ReviewReminder"),
    ]
    report, outcomes = await run_embedded(kafka_broker, engage_sim, new_topic, events)
    assert report.correct
    journal = await engage_sim.journal()
    processed = journal_of(journal, "C-1", "processed")
    confirm, reminder = journal_of(journal, "C-1", "action")
    # ConfirmOrder rode in the write of revision 4, the last one Engage processed; the second
    # action went on its own with that write's tag.
    assert confirm["action"] == "ConfirmOrder"
    assert confirm["embedded"]
    assert confirm["versionTag"] == processed[-1]["versionTag"]
    assert (reminder["action"], reminder.get("embedded", False)) == ("ReviewReminder", False)
    assert reminder["versionTag"] == processed[-1]["versionTag"]
    data = by_event(outcomes)
    skipped = [data[e.event_id]["status"] for e in events[:3]]
    assert skipped.count("skipped") >= 2  # at least the two in the middle never went
    assert data[events[3].event_id]["delivery"] == "embedded"
    assert data[events[4].event_id]["delivery"] == "separate"


async def test_a_failed_job_fails_its_embedded_action_which_is_never_resent(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    factory = EventFactory(prefix="efail")
    events = [factory.lifecycle("confirmed", "EF-1", revision=1, snapshot_status="Paid")]
    await engage_sim.fail_next_job("EF-1")
    _report, outcomes = await run_embedded(kafka_broker, engage_sim, new_topic, events)
    outcome = by_event(outcomes)[events[0].event_id]
    assert (outcome["status"], outcome["reason"], outcome["delivery"]) == (
        "failed",
        "write_failed",
        "embedded",
    )
    assert journal_of(await engage_sim.journal(), "EF-1", "action") == []
    stats = await engage_sim.stats()
    assert action_calls(stats) == 0
    assert stats["embeddedActions"]["notRun"] == 1


async def test_no_contact_rejects_the_action_and_keeps_the_order(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """The job succeeds (the order is stored) and reports that the action found no contact."""
    factory = EventFactory(prefix="enoc")
    events = [
        factory.lifecycle("confirmed", "EN-1", revision=1, snapshot_status="Paid", contact=False)
    ]
    _report, outcomes = await run_embedded(kafka_broker, engage_sim, new_topic, events)
    outcome = by_event(outcomes)[events[0].event_id]
    assert (outcome["status"], outcome["reason"], outcome["delivery"]) == (
        "rejected",
        "no_contact",
        "embedded",
    )
    journal = await engage_sim.journal()
    assert len(journal_of(journal, "EN-1", "processed")) == 1
    assert journal_of(journal, "EN-1", "action") == []


async def test_a_crash_before_the_job_result_leaves_the_action_unknown_never_twice(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """SIGKILL while the write (with its action) waits for its 3 s job: the next owner says
    ``unknown`` for the action, writes the snapshot again without it, and Engage ran it once.
    """
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.parse("fixed:3.0")))
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="crash")
    events = [factory.lifecycle("confirmed", "K-1", revision=1, snapshot_status="Paid")]
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, sim, topics, engage_action_delivery="embedded")
    process = ConsumerProcess(settings_env(settings), str(tmp_path / "first.log"))
    try:
        with anyio.fail_after(60):
            while not journal_of(await sim.journal(), "K-1", "write"):
                await anyio.sleep(0.05)
        process.signal(signal.SIGKILL)
        await process.wait()
    finally:
        process.close()
    async with running(settings) as service:
        await wait_for(service, finished=1)
        with anyio.fail_after(30):
            # The first write's job ends on its own (3 s) and runs the action it carried.
            while not journal_of(await sim.journal(), "K-1", "action"):
                await anyio.sleep(0.1)
    report, outcomes = await check(kafka_broker, sim, topics, events)
    assert report.duplicate_actions == 0
    outcome = by_event(outcomes)[events[0].event_id]
    assert (outcome["status"], outcome["reason"]) == ("unknown", "interrupted")
    journal = await sim.journal()
    (action,) = journal_of(journal, "K-1", "action")
    assert action["embedded"]
    # The snapshot was written again (idempotent) without the action.
    assert len(journal_of(journal, "K-1", "write")) == 2
    assert action_calls(await sim.stats()) == 0
