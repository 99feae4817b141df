"""`engage-consumer replay` against a real broker and the simulator over real HTTP.

The outage test is the one the issue asks for: Engage answers 503 for longer than the job and
event deadlines, so the consumer ends every event ``unknown`` (writes) or ``failed`` (actions:
``write_failed``); once Engage is back, ``replay --status failed`` republishes each failed event
(and the write each action needs), the running consumer handles the copies, and every one ends
``accepted``, in per-order order, with the right tags (``consumer.sandbox.audit`` against the
simulator's journal). A second replay sends nothing.

The dry-run and unknown-action tests write their outcome records themselves, so that each case
(superseded, already republished, unknown) is there without waiting for a consumer to make it.
"""

from __future__ import annotations

import io
import os
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest

from consumer.commands.replay import ReplayOptions, run_replay
from consumer.kafka import KafkaConnection
from consumer.outcomes import InputRef, Operation, Outcome, Status, encode_outcome
from consumer.replay import REPLAY_HEADER, Criteria
from consumer.results import RecordPosition, decode_outcome, latest_outcomes
from consumer.sandbox.audit import audit
from consumer.sandbox.engage import Faults
from consumer.sandbox.workload import EventFactory
from tests.integration.harness import (
    consumer_settings,
    make_topics,
    produce,
    read_all,
    read_outcomes,
    running,
    wait_for,
)

if TYPE_CHECKING:
    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker
    from consumer.sandbox.workload import GeneratedEvent
    from tests.fixtures.kafka import TopicFactory
    from tests.integration.harness import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.engage]


def order_stream(orders: int) -> list[GeneratedEvent]:
    """Each order: a write, an action on it, a shipment with a snapshot, a gated delivery.

    The first action has no write of its own (the replay must bring the write it needs); the
    delivery carries none either and waits for revision 2 (the shipment's snapshot).
    """
    factory = EventFactory(prefix="rp")
    per_order = [
        [
            factory.upserted(f"RP-{n}", 1, status="Created"),
            factory.action(f"RP-{n}", "ConfirmOrder"),
            factory.lifecycle("shipped", f"RP-{n}", revision=2, snapshot_status="Shipped"),
            factory.lifecycle("delivered", f"RP-{n}", revision=2),
        ]
        for n in range(orders)
    ]
    # Interleaved as order services publish: the first event of every order, then the second…
    return [events[step] for step in range(4) for events in per_order]


def options(topics: Topics, **criteria: Any) -> ReplayOptions:
    """The command's options for these topics; ``dry_run`` and ``yes`` may be in ``criteria``."""
    flags = {k: criteria.pop(k) for k in ("dry_run", "yes") if k in criteria}
    return ReplayOptions(
        results_topic=topics.results,
        dead_letter_topic=topics.dead_letter,
        criteria=Criteria(**criteria),
        **flags,
    )


async def replay(
    broker: KafkaBroker, replay_options: ReplayOptions, *, confirm: bool = False
) -> tuple[int, str, str]:
    """Run the command's core in this loop: (exit status, what it printed, its errors)."""
    out, err = io.StringIO(), io.StringIO()
    connection = KafkaConnection(bootstrap_servers=broker.bootstrap_servers)
    status = await run_replay(replay_options, connection, out, err, confirm=lambda _q: confirm)
    return status, out.getvalue(), err.getvalue()


async def copies_on(broker: KafkaBroker, topic: str, at_least: int) -> list[Any]:
    """The records of ``topic`` that carry a replay mark."""
    records = await read_all(broker, topic, at_least=at_least, wait_seconds=10)
    return [r for r in records if any(name == REPLAY_HEADER for name, _ in r.headers)]


async def test_replay_after_an_outage_brings_every_failed_event_to_accepted_once(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """503s longer than the deadlines fail the run; replay mends all, in order, once."""
    topics = await make_topics(new_topic, partitions=2)
    events = order_stream(6)
    settings = consumer_settings(
        kafka_broker, engage_sim, topics, job_deadline_seconds=0.5, event_deadline_seconds=1.0
    )
    async with running(settings) as service:
        await engage_sim.set_faults(Faults(outage_seconds=120.0, outage_mode="error"))
        await produce(kafka_broker, topics.inputs[0], [(e.key, e.value) for e in events])
        await wait_for(service, finished=len(events))
        first = await read_outcomes(kafka_broker, topics, at_least=len(events))
        assert {(o["data"]["eventType"], o["data"]["status"]) for o in first} == {
            ("order.upserted", "unknown"),
            ("order.action", "failed"),
            ("order.shipped", "failed"),
            ("order.delivered", "failed"),
        }
        await engage_sim.set_faults(Faults())  # Engage is back

        status, listing, _err = await replay(kafka_broker, options(topics))
        assert status == 0
        assert listing.splitlines()[0] == "republishing 24 events of 6 orders"
        await wait_for(service, finished=2 * len(events))

        report_outcomes = await read_outcomes(kafka_broker, topics, at_least=2 * len(events))
        latest = _latest_statuses(report_outcomes)
        assert set(latest.values()) == {"accepted"}, latest
        report = audit(events=events, journal=await engage_sim.journal(), outcomes=report_outcomes)
        assert (report.wrong_tag, report.out_of_order, report.writes_out_of_order) == ([], [], [])
        assert (report.duplicate_actions, report.unexpected_actions) == (0, 0)
        assert report.actions_accepted == 3 * len(events) // 4
        copies = await copies_on(kafka_broker, topics.inputs[0], at_least=2 * len(events))
        _assert_per_order_order(copies)

        again_status, again, _err = await replay(kafka_broker, options(topics))
        assert (again_status, again.splitlines()[0]) == (0, "republishing 0 events of 0 orders")
        assert "excluded 18 events a later accepted outcome mended (accepted_later)" in again
    # Nothing more was published: the input topic holds the originals and one copy each.
    assert len(await copies_on(kafka_broker, topics.inputs[0], at_least=2 * len(events))) == 24


def _latest_statuses(outcomes: list[dict[str, Any]]) -> dict[str, str]:
    """Each outcome id's latest status (by results partition and offset)."""
    decoded = [
        decode_outcome(orjson.dumps(o), at=RecordPosition(topic="r", partition=0, offset=n))
        for n, o in enumerate(outcomes)
    ]
    return {r.id: r.status for r in latest_outcomes([r for r in decoded if r is not None])}


def _assert_per_order_order(copies: list[Any]) -> None:
    """The copies of each order went out in the order of their originals' offsets."""
    originals: dict[bytes, list[int]] = defaultdict(list)
    for record in sorted(copies, key=lambda r: (r.partition, r.offset)):
        (mark,) = [raw for name, raw in record.headers if name == REPLAY_HEADER]
        originals[record.key].append(RecordPosition.parse(mark.decode()).offset)
    assert originals
    assert {key: sorted(offsets) for key, offsets in originals.items()} == dict(originals)


def _outcome_record(
    event: GeneratedEvent,
    position: RecordPosition,
    status: Status,
    *,
    reason: str | None,
    minutes: int,
) -> tuple[bytes, bytes]:
    """The outcome the consumer would publish for ``event`` read at ``position``."""
    operation: Operation = "upsert" if event.event["type"] == "order.upserted" else "action"
    finished = datetime.now(UTC) - timedelta(minutes=60 - minutes)
    value = encode_outcome(
        Outcome(
            origin=InputRef(
                event_id=event.event_id,
                event_type=str(event.event["type"]),
                topic=position.topic,
                partition=position.partition,
                offset=position.offset,
                order_id=event.order_id,
            ),
            operation=operation,
            status=status,
            reason=reason,
            action="ConfirmOrder" if operation == "action" else None,
            received_at=finished - timedelta(seconds=1),
            finished_at=finished,
        )
    )
    return event.key, value


async def test_a_dry_run_lists_what_would_go_and_what_not_and_sends_nothing(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """Per order in stream order, the write an action needs, and each exclusion with why."""
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="dry")
    events = [
        factory.upserted("A", 1),  # 0: unknown, needed by 1
        factory.action("A", "ConfirmOrder"),  # 1: failed
        factory.upserted("B", 1),  # 2: failed, superseded by 3
        factory.upserted("B", 2),  # 3: accepted
        factory.upserted("C", 1),  # 4: failed, reason job_timeout: not asked for
    ]
    await produce(kafka_broker, topics.inputs[0], [(e.key, e.value) for e in events])
    at = [RecordPosition(topic=topics.inputs[0], partition=0, offset=n) for n in range(5)]
    verdicts: list[tuple[Status, str | None]] = [
        ("unknown", "deadline"),
        ("failed", "write_failed"),
        ("failed", "deadline"),
        ("accepted", None),
        ("failed", "job_timeout"),
    ]
    await produce(
        kafka_broker,
        topics.results,
        [
            _outcome_record(e, p, s, reason=r, minutes=n)
            for n, (e, p, (s, r)) in enumerate(zip(events, at, verdicts, strict=True))
        ],
    )
    ends_before = len(await read_all(kafka_broker, topics.inputs[0], at_least=5))
    status, listing, _err = await replay(
        kafka_broker, options(topics, reasons=frozenset({"deadline", "write_failed"}), dry_run=True)
    )
    topic = topics.inputs[0]
    assert status == 0
    lines = listing.splitlines()
    assert lines[0] == "would republish 2 events of 1 order"
    assert [line.split()[:5] for line in lines[2:4]] == [
        ["A", f"{topic}/0/0", "dry-1", "order.upserted", "unknown/deadline"],
        ["A", f"{topic}/0/1", "dry-2", "order.action", "failed/write_failed"],
    ]
    assert lines[2].endswith("(needed by dry-2)")
    assert lines[4] == "excluded 1 event"
    assert lines[6].split()[:6] == [
        "B",
        f"{topic}/0/2",
        "dry-3",
        "order.upserted",
        "failed/deadline",
        "superseded",
    ]
    detail = " ".join(line.strip() for line in lines[7:] if line.startswith("      "))
    assert detail.startswith(
        f"a later write of the order was accepted (dry-4, input {topic}/0/3, at "
    )
    assert detail.endswith(
        "replaying this one would put the older order back in Engage (--include-superseded "
        "to send it anyway)"
    )
    assert "dry-5" not in listing  # C failed for another reason than the ones asked for
    assert lines[-1] == "2 other events matched no criteria"  # dry-4 (accepted) and dry-5
    assert len(await read_all(kafka_broker, topics.inputs[0], at_least=5)) == ends_before


async def test_an_unknown_action_goes_only_when_included_and_confirmed(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """Engage may have run it: excluded by default, refused unconfirmed, sent with --yes."""
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="unk")
    events = [factory.upserted("U", 1), factory.action("U", "ConfirmOrder")]
    await produce(kafka_broker, topics.inputs[0], [(e.key, e.value) for e in events])
    at = [RecordPosition(topic=topics.inputs[0], partition=0, offset=n) for n in range(2)]
    await produce(
        kafka_broker,
        topics.results,
        [
            _outcome_record(events[0], at[0], "accepted", reason=None, minutes=0),
            _outcome_record(events[1], at[1], "unknown", reason="ambiguous", minutes=1),
        ],
    )
    unknown = frozenset({"unknown"})
    status, listing, _err = await replay(kafka_broker, options(topics, statuses=unknown))
    assert (status, listing.splitlines()[:2]) == (
        0,
        ["republishing 0 events of 0 orders", "excluded 1 event"],
    )
    assert "unknown_action" in listing

    included = options(topics, statuses=unknown, include_unknown=True)
    status, _listing, err = await replay(kafka_broker, included, confirm=False)
    assert (status, err) == (1, "nothing sent: the unknown actions were not confirmed\n")

    # The command line: standard input is not a terminal, so nobody can confirm.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ENGAGE_"))}
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "RESULTS_TOPIC": topics.results,
        "DEAD_LETTER_TOPIC": topics.dead_letter,
    }
    done = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "consumer.cli",
            "replay",
            "--status",
            "unknown",
            "--include-unknown",
        ],
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert "not asked: standard input is not a terminal (--yes)" in done.stderr.decode()
    assert await copies_on(kafka_broker, topics.inputs[0], at_least=2) == []

    status, listing, _err = await replay(
        kafka_broker, options(topics, statuses=unknown, include_unknown=True, yes=True)
    )
    assert status == 0
    assert "UNKNOWN ACTION: may run twice" in listing
    (copy,) = await copies_on(kafka_broker, topics.inputs[0], at_least=3)
    assert (copy.key, copy.value, list(copy.headers)) == (
        b"U",
        events[1].value,
        [(REPLAY_HEADER, f"{topics.inputs[0]}/0/1".encode())],
    )
