"""Step one of a replay: which events the outcome history chooses, and which it rules out."""

from __future__ import annotations

from datetime import timedelta

import orjson

from consumer.replay import Criteria
from consumer.results import RecordPosition
from tests.unit.replay.history import T0, History


def chosen(history: History, criteria: Criteria | None = None) -> list[tuple[str | None, str]]:
    """(event id, status/reason) of each candidate."""
    return [(c.event_id, f"{c.status}/{c.reason}") for c in history.select(criteria).candidates]


def excluded(history: History, criteria: Criteria | None = None) -> list[tuple[str | None, str]]:
    """(event id, kind) of each exclusion."""
    return [(e.candidate.event_id, e.kind) for e in history.select(criteria).excluded]


def test_failed_events_are_chosen_and_the_others_counted_as_unmatched() -> None:
    """By default the latest outcome must be ``failed``; the rest match no criteria."""
    h = History()
    f = h.factory
    h.handled(f.upserted("O-1", 1), "accepted")
    h.handled(f.upserted("O-2", 1), "failed", reason="deadline")
    h.handled(f.upserted("O-3", 1), "skipped", reason="coalesced")
    selection = h.select()
    assert [(c.order_id, c.status, c.reason) for c in selection.candidates] == [
        ("O-2", "failed", "deadline")
    ]
    assert (selection.excluded, selection.unmatched) == ([], 2)


def test_statuses_and_reasons_narrow_the_choice() -> None:
    """``--status`` and ``--reason`` both apply to the outcome that chooses an event."""
    h = History()
    f = h.factory
    h.handled(f.upserted("O-1", 1), "failed", reason="deadline")
    h.handled(f.upserted("O-2", 1), "failed", reason="job_timeout")
    h.handled(f.upserted("O-3", 1), "unknown", reason="deadline")
    h.handled(f.upserted("O-4", 1), "rejected", reason="invalid_order")
    criteria = Criteria(statuses=frozenset({"failed", "unknown"}), reasons=frozenset({"deadline"}))
    assert chosen(h, criteria) == [("h-1", "failed/deadline"), ("h-3", "unknown/deadline")]


def test_orders_positions_and_times_narrow_the_choice() -> None:
    """``--order``, ``--topic/--partition/--from-offset/--to-offset`` and the time window."""
    h = History()
    f = h.factory
    for n in range(6):
        h.handled(f.upserted(f"O-{n % 2}", n), "failed", reason="deadline", partition=n % 2)
    # Offsets per partition: O-0 at 0/0, 0/1, 0/2; O-1 at 1/0, 1/1, 1/2.
    by_offset = Criteria(topic="orders", partition=0, from_offset=1, to_offset=2)
    assert chosen(h, by_offset) == [("h-3", "failed/deadline"), ("h-5", "failed/deadline")]
    by_order = Criteria(orders=frozenset({"O-1"}))
    assert [e for e, _ in chosen(h, by_order)] == ["h-2", "h-4", "h-6"]
    # Outcomes are decided one second apart, the first at T0 + 2 s (its record at T0 + 1 s).
    by_time = Criteria(since=T0 + timedelta(seconds=4), until=T0 + timedelta(seconds=8))
    assert [e for e, _ in chosen(h, by_time)] == ["h-2", "h-3"]


def test_an_event_a_later_outcome_accepted_is_excluded_as_mended() -> None:
    """A failure a replay already mended (its copy was accepted) is not chosen again."""
    h = History()
    upsert = h.factory.upserted("O-1", 1)
    original = h.handled(upsert, "failed", reason="deadline")
    copy = h.publish(upsert)
    h.outcome(upsert, copy, "accepted")
    selection = h.select()
    assert selection.candidates == []
    (mended,) = selection.excluded
    assert (mended.kind, mended.candidate.position) == ("accepted_later", original)
    assert mended.detail == "accepted later (upsert at 2026-03-01T14:00:04Z, input orders/0/1)"


def test_an_event_whose_action_engage_accepted_is_never_chosen() -> None:
    """Even an ``unknown`` after an accepted action (a restart) cannot send it twice."""
    h = History()
    action = h.factory.action("O-1", "ConfirmOrder")
    position = h.handled(action, "accepted")
    h.outcome(action, position, "unknown", reason="interrupted")
    criteria = Criteria(statuses=frozenset({"unknown"}), include_unknown=True)
    assert excluded(h, criteria) == [("h-1", "action_accepted")]


def test_an_unknown_action_is_left_out_unless_included() -> None:
    """Engage may have run it: without ``include_unknown`` it is excluded, saying why."""
    h = History()
    h.handled(h.factory.action("O-1", "ConfirmOrder"), "unknown", reason="ambiguous")
    criteria = Criteria(statuses=frozenset({"unknown"}))
    selection = h.select(criteria)
    assert [(e.kind, e.detail) for e in selection.excluded] == [
        (
            "unknown_action",
            (
                "its action's outcome is unknown: Engage may have run it "
                "(--include-unknown, then confirm, to send it again)"
            ),
        )
    ]
    included = h.select(Criteria(statuses=frozenset({"unknown"}), include_unknown=True))
    assert [c.unknown_action for c in included.candidates] == [True]


def test_an_unknown_write_goes_without_any_confirmation() -> None:
    """A write is idempotent: an ``unknown`` one is chosen like a failed one when asked for."""
    h = History()
    h.handled(h.factory.upserted("O-1", 1), "unknown", reason="deadline")
    selection = h.select(Criteria(statuses=frozenset({"unknown"})))
    assert [(c.event_id, c.unknown_action) for c in selection.candidates] == [("h-1", False)]


def test_an_action_brings_along_the_write_it_depends_on_when_that_did_not_land() -> None:
    """Replaying the action alone would fail it again (write_failed): its write comes too."""
    h = History()
    f = h.factory
    h.handled(f.upserted("O-1", 1), "accepted")
    h.handled(f.upserted("O-1", 2), "unknown", reason="deadline")
    h.handled(f.action("O-1", "ConfirmOrder"), "failed", reason="write_failed")
    h.handled(f.action("O-1", "ReviewReminder"), "failed", reason="write_failed")
    selection = h.select()
    assert [(c.event_id, c.needed_by) for c in selection.candidates] == [
        ("h-3", ()),
        ("h-4", ()),
        ("h-2", ("h-3", "h-4")),
    ]


def test_a_write_that_landed_is_not_brought_along() -> None:
    """An action that failed on its own (deadline) behind an accepted write goes alone."""
    h = History()
    f = h.factory
    h.handled(f.upserted("O-1", 1), "accepted")
    h.handled(f.action("O-1", "ConfirmOrder"), "failed", reason="deadline")
    assert chosen(h) == [("h-2", "failed/deadline")]


def test_dead_letters_are_chosen_as_invalid_with_their_copy() -> None:
    """``invalid`` also chooses dead letters: one with an outcome is one event with it."""
    h = History()
    value = orjson.dumps({"specversion": "1.0", "id": "bad-1", "subject": "O-9"})
    position = h.dead_letter(b"O-9", value, order_id="O-9")
    h.dead_letter(None, b"\xff", reason="undecodable", order_id=None)
    h.outcome(h.factory.upserted("O-9", 1), position, "invalid", reason="schema", operation=None)
    selection = h.select(Criteria(statuses=frozenset({"invalid"})))
    assert [
        (c.order_id, str(c.position), c.reason, c.dead_letter is not None)
        for c in selection.candidates
    ] == [
        ("O-9", "orders/0/0", "schema", True),
        ("@orders/0/1", "orders/0/1", "undecodable", True),
    ]
    assert selection.candidates[0].position == RecordPosition(topic="orders", partition=0, offset=0)
