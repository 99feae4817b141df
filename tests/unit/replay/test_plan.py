"""Step two of a replay: with the records in hand, what goes where, in which order, and what not."""

from __future__ import annotations

import orjson

from consumer.replay import Criteria, Plan
from consumer.results import RecordPosition
from tests.unit.replay.history import FakeRecord, History


def sent(plan: Plan) -> list[tuple[str, str | None, str]]:
    """(order, event id, original position) of each replay, in the order they go."""
    return [
        (r.candidate.order_id, r.candidate.event_id, str(r.candidate.position))
        for r in plan.replays
    ]


def left_out(plan: Plan) -> list[tuple[str | None, str]]:
    """(event id, kind) of each exclusion."""
    return [(e.candidate.event_id, e.kind) for e in plan.excluded]


def test_a_copy_keeps_key_value_headers_and_partition_and_names_its_original() -> None:
    """The copy goes to the original's topic and partition with ``x-replay-of`` added."""
    h = History()
    upsert = h.factory.upserted("O-1", 1)
    position = h.publish(upsert, partition=2, headers=(("traceparent", b"00-abc"),))
    h.outcome(upsert, position, "failed", reason="deadline")
    (replay,) = h.plan().replays
    assert (replay.topic, replay.partition, replay.key, replay.value, replay.headers) == (
        "orders",
        2,
        b"O-1",
        upsert.value,
        [("traceparent", b"00-abc"), ("x-replay-of", b"orders/2/0")],
    )
    assert (replay.from_dead_letter, replay.writes) == (False, True)


def test_to_topic_sends_every_copy_there_on_the_same_partition_number() -> None:
    """``--to-topic``: one topic for all, the partition number kept (co-partitioning)."""
    h = History()
    h.handled(h.factory.upserted("O-1", 1), "failed", reason="deadline", partition=1)
    (replay,) = h.plan(to_topic="orders.retry").replays
    assert (replay.topic, replay.partition) == ("orders.retry", 1)


def test_each_orders_events_go_in_their_original_offset_order() -> None:
    """Outcomes finish in any order; the copies of one order go in stream order."""
    h = History()
    f = h.factory
    events = [
        (f.upserted("A", 1), 0),
        (f.upserted("B", 1), 1),
        (f.action("A", "ConfirmOrder"), 0),
        (f.upserted("A", 2), 0),
        (f.action("B", "ConfirmOrder"), 1),
    ]
    positions = [h.publish(event, partition=partition) for event, partition in events]
    # The outcomes arrive backwards (the later ones finished first), so B, received first
    # by the outcomes' account, goes first; within each order the offsets decide.
    for (event, _partition), position in reversed(list(zip(events, positions, strict=True))):
        reason = "deadline" if event.event["type"] == "order.upserted" else "write_failed"
        h.outcome(event, position, "failed", reason=reason)
    assert sent(h.plan()) == [
        ("B", "h-2", "orders/1/0"),
        ("B", "h-5", "orders/1/1"),
        ("A", "h-1", "orders/0/0"),
        ("A", "h-3", "orders/0/1"),
        ("A", "h-4", "orders/0/2"),
    ]


def test_a_copy_that_failed_again_goes_at_the_place_of_its_original() -> None:
    """The latest outcome names the copy, but the event keeps its first place in the stream."""
    h = History()
    f = h.factory
    upsert, action = f.upserted("A", 1), f.action("A", "ConfirmOrder")
    first = h.publish(upsert)
    h.publish(action)
    h.outcome(upsert, first, "failed", reason="deadline")
    copy = h.publish(upsert, headers=(("x-replay-of", str(first).encode()),))
    h.outcome(upsert, copy, "failed", reason="deadline")
    h.outcome(action, RecordPosition(topic="orders", partition=0, offset=1), "failed")
    plan = h.plan(copies={first: copy})
    assert sent(plan) == [("A", "h-1", "orders/0/2"), ("A", "h-2", "orders/0/1")]
    # The copy of the copy names the copy: the chain of marks leads back to the first.
    assert plan.replays[0].headers == [("x-replay-of", b"orders/0/2")]


def test_what_an_earlier_replay_republished_is_not_sent_again() -> None:
    """A mark on the target topic for a position: excluded until the copy's outcome comes."""
    h = History()
    position = h.handled(h.factory.upserted("A", 1), "failed", reason="deadline")
    copy = RecordPosition(topic="orders", partition=0, offset=7)
    plan = h.plan(copies={position: copy})
    assert (plan.replays, [(e.kind, e.detail) for e in plan.excluded]) == (
        [],
        [
            (
                "already_replayed",
                "an earlier replay republished it as orders/0/7; its outcome decides",
            )
        ],
    )


def test_a_write_a_later_accepted_write_supersedes_is_left_out_unless_included() -> None:
    """Replaying an old write would roll the order back in Engage: excluded, saying why."""
    h = History()
    f = h.factory
    h.handled(f.upserted("A", 1), "failed", reason="deadline")
    h.handled(f.upserted("A", 2), "accepted")
    plan = h.plan()
    assert (sent(plan), [(e.kind, e.detail) for e in plan.excluded]) == (
        [],
        [
            (
                "superseded",
                (
                    "a later write of the order was accepted (h-2, input orders/0/1, at "
                    "2026-03-01T14:00:04Z): replaying this one would put the older order back in "
                    "Engage (--include-superseded to send it anyway)"
                ),
            )
        ],
    )
    assert sent(h.plan(Criteria(include_superseded=True))) == [("A", "h-1", "orders/0/0")]


def test_an_earlier_accepted_write_supersedes_nothing() -> None:
    """Only a write after it in the stream counts; a delete is a write too."""
    h = History()
    f = h.factory
    h.handled(f.upserted("A", 1), "accepted")
    h.handled(f.deleted("A", 2), "failed", reason="deadline")
    assert sent(h.plan()) == [("A", "h-2", "orders/0/1")]


def test_across_topics_the_higher_revision_is_the_later_write() -> None:
    """Two topics have no common offsets: the revisions say which write is newer."""
    h = History()
    f = h.factory
    h.handled(f.upserted("A", 5), "accepted", topic="orders.b")
    h.handled(f.upserted("A", 4), "failed", reason="deadline", topic="orders.a")
    h.handled(f.upserted("A", 6), "failed", reason="deadline", topic="orders.a")
    plan = h.plan()
    assert (sent(plan), left_out(plan)) == (
        [("A", "h-3", "orders.a/0/1")],
        [("h-2", "superseded")],
    )


def test_a_record_gone_from_its_topic_is_left_out_unless_a_dead_letter_copy_has_it() -> None:
    """Retention took it: excluded; an invalid one's full dead-letter copy goes instead."""
    h = History()
    lost = h.handled(h.factory.upserted("A", 1), "failed", reason="deadline")
    value = orjson.dumps({"specversion": "1.0", "id": "bad-1", "subject": "B"})
    refused = h.dead_letter(b"B", value, order_id="B")
    criteria = Criteria(statuses=frozenset({"failed", "invalid"}))
    plan = h.plan(criteria, gone=frozenset({lost, refused}))
    assert [(e.kind, e.detail) for e in plan.excluded] == [("record_gone", "deleted by retention")]
    (replay,) = plan.replays
    assert (replay.from_dead_letter, replay.key, replay.value, replay.headers) == (
        True,
        b"B",
        value,
        [("x-replay-of", b"orders/0/1")],
    )


def test_a_truncated_dead_letter_copy_cannot_stand_in() -> None:
    """A reduced copy (``x-dlq-truncated``) is not the record: excluded as gone."""
    h = History()
    refused = h.dead_letter(b"B", b"{}", order_id="B")
    letter = h.dead_letters[0]
    h.dead_letters[0] = type(letter)(
        **{**{k: getattr(letter, k) for k in letter.__dataclass_fields__}, "truncated": True}
    )
    plan = h.plan(Criteria(statuses=frozenset({"invalid"})), gone=frozenset({refused}))
    assert [(e.kind, e.detail) for e in plan.excluded] == [
        ("record_gone", "deleted by retention (its dead-letter copy is truncated)")
    ]


def test_a_position_holding_another_event_is_left_out() -> None:
    """The topic was recreated: the offset holds an event the outcome does not name."""
    h = History()
    position = h.handled(h.factory.upserted("A", 1), "failed", reason="deadline")
    stranger = h.factory.upserted("Z", 1)
    h.records[position] = FakeRecord(
        topic="orders", partition=0, offset=0, timestamp=0, key=b"Z", value=stranger.value
    )
    plan = h.plan()
    assert [(e.kind, e.detail) for e in plan.excluded] == [
        (
            "other_record",
            "the record at orders/0/0 is event 'h-2', not 'h-1' (was the topic recreated?)",
        )
    ]


def test_the_write_an_action_needs_goes_first_and_is_dropped_when_a_snapshot_covers_it() -> None:
    """A lifecycle event with a snapshot needs no earlier write; one without does."""
    h = History()
    f = h.factory
    h.handled(f.upserted("A", 1), "unknown", reason="deadline")
    h.handled(f.lifecycle("shipped", "A", revision=2, snapshot_status="Shipped"), "failed")
    h.handled(f.upserted("B", 1), "unknown", reason="deadline")
    h.handled(f.lifecycle("shipped", "B", revision=1), "failed", reason="write_failed")
    plan = h.plan()
    assert sent(plan) == [
        ("A", "h-2", "orders/0/1"),
        ("B", "h-3", "orders/0/2"),
        ("B", "h-4", "orders/0/3"),
    ]
    assert [r.candidate.needed_by for r in plan.replays] == [(), ("h-4",), ()]


def test_unknown_actions_are_the_ones_that_need_a_confirmation() -> None:
    """``Plan.unknown_actions`` lists the replays that may run an action twice."""
    h = History()
    f = h.factory
    h.handled(f.upserted("A", 1), "failed", reason="deadline")
    h.handled(f.action("B", "ConfirmOrder"), "unknown", reason="ambiguous")
    criteria = Criteria(statuses=frozenset({"failed", "unknown"}), include_unknown=True)
    plan = h.plan(criteria)
    assert [r.candidate.event_id for r in plan.unknown_actions] == ["h-2"]
    assert len(plan.replays) == 2


def test_an_accepted_lifecycle_event_supersedes_only_if_its_record_carries_a_snapshot() -> None:
    """Its one outcome is its action's: the record says whether it wrote the order too."""
    h = History()
    f = h.factory
    h.handled(f.upserted("A", 1), "skipped", reason="coalesced")
    h.handled(f.lifecycle("confirmed", "A", revision=2, snapshot_status="Paid"), "accepted")
    h.handled(f.upserted("B", 1), "skipped", reason="coalesced")
    h.handled(f.lifecycle("confirmed", "B", revision=1), "accepted")
    criteria = Criteria(statuses=frozenset({"skipped"}))
    selection = h.select(criteria)
    assert sorted(str(p) for p in selection.to_peek) == ["orders/0/1", "orders/0/3"]
    plan = h.plan(criteria)
    assert (sent(plan), left_out(plan)) == ([("B", "h-3", "orders/0/2")], [("h-1", "superseded")])
