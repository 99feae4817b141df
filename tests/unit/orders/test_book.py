"""OrderBook, rule by rule: what goes out, with which tag, and how every op settles."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from consumer.orders import (
    Action,
    Effect,
    FetchTag,
    Knowledge,
    OrderBook,
    SendAction,
    SendWrite,
    Settle,
    State,
    Write,
)

ORDER = "order-1"


class Clock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_book(
    *, max_tracked: int = 100, revision_wait: float = 30.0
) -> tuple[OrderBook[str], Clock]:
    clock = Clock()
    return OrderBook(max_tracked=max_tracked, clock=clock, revision_wait=revision_wait), clock


def write(token: str, revision: int | None = None, *, deadline: float = 2000.0) -> Write[str]:
    return Write(token=token, kind="upsert", revision=revision, deadline=deadline)


def delete(token: str, revision: int | None = None) -> Write[str]:
    return Write(token=token, kind="delete", revision=revision, deadline=2000.0)


def action(token: str, min_revision: int | None = None, *, deadline: float = 2000.0) -> Action[str]:
    return Action(token=token, min_revision=min_revision, deadline=deadline)


def send_write(op: Write[str], exists: bool | None = None, order_id: str = ORDER) -> SendWrite[str]:
    return SendWrite(order_id=order_id, op=op, exists=exists)


def send_action(op: Action[str], tag: str, order_id: str = ORDER) -> SendAction[str]:
    return SendAction(order_id=order_id, op=op, tag=tag)


def settle(
    token: str, status: str, reason: str | None, tag: str | None = None, order_id: str = ORDER
) -> Settle[str]:
    return Settle(order_id=order_id, token=token, status=status, reason=reason, tag=tag)  # type: ignore[arg-type]


def accepted(
    book: OrderBook[str], token: str, tag: str | None, order_id: str = ORDER
) -> list[Effect[str]]:
    return book.write_done(order_id, token, tag=tag, status="accepted", reason=None)


def confirmed_book(tag: str = "T1", revision: int | None = None) -> tuple[OrderBook[str], Clock]:
    """A book whose order ORDER is confirmed with ``tag`` (and idle)."""
    book, clock = make_book()
    book.submit(ORDER, write("w0", revision))
    accepted(book, "w0", tag)
    assert book.snapshot(ORDER).state == State.CONFIRMED
    return book, clock


# -- writes and actions in stream order -----------------------------------------------------------


def test_action_waits_for_the_running_write_then_goes_with_its_new_tag() -> None:
    """An action queued behind a write in flight goes once the write confirms, with its tag."""
    book, _ = confirmed_book("T1")
    w1, a = write("w1"), action("a")
    assert book.submit(ORDER, w1) == [send_write(w1, exists=True)]
    assert book.submit(ORDER, a) == []
    assert accepted(book, "w1", "T2") == [
        settle("w1", "accepted", None, "T2"),
        send_action(a, "T2"),
    ]


def test_back_to_back_writes_coalesce_and_the_action_uses_the_last_tag() -> None:
    """Writes with no action between collapse to the last; the action goes with its tag."""
    book, _ = make_book()
    w1, w2, w3, a = write("w1"), write("w2"), write("w3"), action("a")
    assert book.submit(ORDER, w1) == [send_write(w1)]
    assert book.submit(ORDER, w2) == []
    assert book.submit(ORDER, w3) == []
    assert book.submit(ORDER, a) == []
    assert accepted(book, "w1", "T1") == [
        settle("w1", "accepted", None, "T1"),
        settle("w2", "skipped", "coalesced"),
        send_write(w3, exists=True),
    ]
    assert accepted(book, "w3", "T3") == [
        settle("w3", "accepted", None, "T3"),
        send_action(a, "T3"),
    ]


def test_a_write_waits_for_the_actions_in_flight_before_it() -> None:
    """A write behind running actions is held until the last of them finishes."""
    book, _ = confirmed_book("T1")
    a1, a2, w = action("a1"), action("a2"), write("w")
    book.submit(ORDER, a1)
    book.submit(ORDER, a2)
    assert book.submit(ORDER, w) == []
    assert book.action_done(ORDER, "a1", status="accepted", reason=None) == [
        settle("a1", "accepted", None, "T1")
    ]
    assert book.action_done(ORDER, "a2", status="accepted", reason=None) == [
        settle("a2", "accepted", None, "T1"),
        send_write(w, exists=True),
    ]


def test_consecutive_actions_go_out_together_on_one_tag() -> None:
    """Actions right behind each other are all sent at once, each with the confirmed tag."""
    book, _ = make_book()
    w, a1, a2, a3 = write("w"), action("a1"), action("a2"), action("a3")
    book.submit(ORDER, w)
    for op in (a1, a2, a3):
        book.submit(ORDER, op)
    assert accepted(book, "w", "T") == [
        settle("w", "accepted", None, "T"),
        send_action(a1, "T"),
        send_action(a2, "T"),
        send_action(a3, "T"),
    ]
    assert book.snapshot(ORDER).acting == ("a1", "a2", "a3")


def test_a_stale_write_is_skipped_without_io() -> None:
    """A write at or below the confirmed revision is skipped; actions behind it use the tag."""
    book, _ = confirmed_book("T5", revision=5)
    a = action("a")
    assert book.submit(ORDER, write("w4", 4)) == [settle("w4", "skipped", "stale")]
    assert book.submit(ORDER, write("w5", 5)) == [settle("w5", "skipped", "stale")]
    assert book.submit(ORDER, a) == [send_action(a, "T5")]


def test_an_older_revision_in_a_run_of_writes_is_stale_and_the_newest_goes() -> None:
    """In w(r5), w(r4): r4 is stale and r5 is sent, so the order is never rolled back."""
    book, _ = make_book()
    w1, w5, w4 = write("w1", 1), write("w5", 5), write("w4", 4)
    book.submit(ORDER, w1)
    book.submit(ORDER, w5)
    book.submit(ORDER, w4)
    assert accepted(book, "w1", "T1") == [
        settle("w1", "accepted", None, "T1"),
        settle("w4", "skipped", "stale"),
        send_write(w5, exists=True),
    ]


def test_a_revision_survives_a_write_without_one() -> None:
    """The highest confirmed revision still marks older writes stale after a revisionless one."""
    book, _ = confirmed_book("T5", revision=5)
    book.submit(ORDER, write("w"))
    accepted(book, "w", "T6")
    assert book.snapshot(ORDER).floor == 5
    assert book.submit(ORDER, write("w3", 3)) == [settle("w3", "skipped", "stale")]


# -- failures -------------------------------------------------------------------------------------


def test_a_failed_write_fails_the_actions_behind_it_which_never_go_out() -> None:
    """Definitive failure: queued and later actions get write_failed; the next write recovers."""
    book, _ = confirmed_book("T1")
    w, a1, a2 = write("w"), action("a1"), action("a2")
    book.submit(ORDER, w)
    book.submit(ORDER, a1)
    assert book.write_done(ORDER, "w", tag=None, status="rejected", reason="http_400") == [
        settle("w", "rejected", "http_400"),
        settle("a1", "failed", "write_failed"),
    ]
    assert book.submit(ORDER, a2) == [settle("a2", "failed", "write_failed")]
    w2, a3 = write("w2"), action("a3")
    # A definitive failure changed nothing in Engage: it still has the order.
    assert book.submit(ORDER, w2) == [send_write(w2, exists=True)]
    book.submit(ORDER, a3)
    assert accepted(book, "w2", "T2")[-1] == send_action(a3, "T2")


def test_an_ambiguous_write_failure_fails_later_actions_instead_of_fetching() -> None:
    """After a write that may have applied, actions fail rather than risk an older tag."""
    book, _ = confirmed_book("T1")
    w, a = write("w"), action("a")
    book.submit(ORDER, w)
    assert book.write_done(ORDER, "w", tag=None, status="unknown", reason="poll_timeout") == [
        settle("w", "unknown", "poll_timeout")
    ]
    assert book.submit(ORDER, a) == [settle("a", "failed", "write_failed")]
    w2 = write("w2")
    assert book.submit(ORDER, w2) == [send_write(w2, exists=None)]


def test_a_failed_write_fails_parked_actions_up_to_its_revision() -> None:
    """Gated actions waiting for the failed revision (or below) fail; higher ones keep waiting."""
    book, _ = make_book()
    assert book.submit(ORDER, action("g3", 3)) == [FetchTag(order_id=ORDER)]
    book.submit(ORDER, action("g4", 4))
    book.submit(ORDER, action("g5", 5))
    assert book.tag_learned(ORDER, None) == []
    assert book.snapshot(ORDER).parked == ("g3", "g4", "g5")
    w4 = write("w4", 4)
    assert book.submit(ORDER, w4) == [send_write(w4, exists=False)]
    assert book.write_done(ORDER, "w4", tag=None, status="failed", reason="job_failed") == [
        settle("w4", "failed", "job_failed"),
        settle("g3", "failed", "write_failed"),
        settle("g4", "failed", "write_failed"),
    ]
    assert book.snapshot(ORDER).parked == ("g5",)


# -- unknown orders: GET the tag ------------------------------------------------------------------


def test_an_action_for_an_unknown_order_fetches_the_tag_first() -> None:
    """In unknown, an action triggers one GET; the actions wait and go with the learned tag."""
    book, _ = make_book()
    a1, a2 = action("a1"), action("a2")
    assert book.submit(ORDER, a1) == [FetchTag(order_id=ORDER)]
    assert book.submit(ORDER, a2) == []
    assert book.tag_learned(ORDER, "TG") == [send_action(a1, "TG"), send_action(a2, "TG")]
    snap = book.snapshot(ORDER)
    assert (snap.state, snap.tag, snap.revision, snap.exists) == (State.CONFIRMED, "TG", None, True)


def test_a_404_on_the_get_rejects_actions_with_order_not_found() -> None:
    """GET 404: actions are rejected until a write creates the order (with POST first)."""
    book, _ = make_book()
    book.submit(ORDER, action("a1"))
    assert book.tag_learned(ORDER, None) == [settle("a1", "rejected", "order_not_found")]
    assert book.submit(ORDER, action("a2")) == [settle("a2", "rejected", "order_not_found")]
    w = write("w")
    assert book.submit(ORDER, w) == [send_write(w, exists=False)]


def test_actions_after_a_delete_are_rejected_with_order_deleted() -> None:
    """Once our delete went through, actions are rejected as order_deleted."""
    book, _ = confirmed_book("T1")
    book.submit(ORDER, delete("d"))
    book.submit(ORDER, action("a"))
    assert accepted(book, "d", None) == [
        settle("d", "accepted", None),
        settle("a", "rejected", "order_deleted"),
    ]
    assert book.snapshot(ORDER).exists is False


def test_a_fetch_error_fails_the_waiting_actions_and_the_next_action_tries_again() -> None:
    """GET error: the actions that waited fail with its reason; a later action GETs again."""
    book, _ = make_book()
    book.submit(ORDER, action("a1"))
    assert book.tag_learned(ORDER, None, error="tag_unavailable: 503") == [
        settle("a1", "failed", "tag_unavailable: 503")
    ]
    assert book.snapshot(ORDER).state == State.UNKNOWN
    assert book.submit(ORDER, action("a2")) == [FetchTag(order_id=ORDER)]


def test_a_stale_tag_makes_the_next_action_fetch_the_tag_again() -> None:
    """Engage 404'd a tag we believed current: the order becomes unknown and re-learns it."""
    book, _ = confirmed_book("T1")
    a1, a2 = action("a1"), action("a2")
    book.submit(ORDER, a1)
    assert book.action_done(ORDER, "a1", status="rejected", reason="http_404", stale_tag=True) == [
        settle("a1", "rejected", "http_404", "T1")
    ]
    assert book.snapshot(ORDER).state == State.UNKNOWN
    assert book.submit(ORDER, a2) == [FetchTag(order_id=ORDER)]
    assert book.tag_learned(ORDER, "T9") == [send_action(a2, "T9")]


def test_a_late_stale_tag_on_a_replaced_tag_changes_nothing() -> None:
    """A 404 for a tag already replaced by a GET does not send the order back to unknown."""
    book, _ = confirmed_book("T1")
    a1, a2, a3, a4 = action("a1"), action("a2"), action("a3"), action("a4")
    book.submit(ORDER, a1)
    book.submit(ORDER, a2)
    book.action_done(ORDER, "a1", status="rejected", reason="http_404", stale_tag=True)
    assert book.submit(ORDER, a3) == [FetchTag(order_id=ORDER)]
    assert book.tag_learned(ORDER, "T9") == [send_action(a3, "T9")]
    assert book.action_done(ORDER, "a2", status="rejected", reason="http_404", stale_tag=True) == [
        settle("a2", "rejected", "http_404", "T1")
    ]
    assert book.submit(ORDER, a4) == [send_action(a4, "T9")]


def test_a_write_confirmed_without_a_readable_tag_leaves_the_tag_to_a_get() -> None:
    """Accepted but no tag: the order exists, and the next action learns the tag by GET."""
    book, _ = make_book()
    book.submit(ORDER, write("w"))
    accepted(book, "w", None)
    assert (book.snapshot(ORDER).state, book.snapshot(ORDER).exists) == (State.UNKNOWN, True)
    assert book.submit(ORDER, action("a")) == [FetchTag(order_id=ORDER)]


# -- revision gating ------------------------------------------------------------------------------


def test_only_a_write_an_action_waits_for_needs_its_tag_read() -> None:
    """An action right behind or a parked one needs the tag; a write behind or nothing does not."""
    book, _ = make_book()
    book.submit(ORDER, write("w1"))
    assert not book.tag_needed(ORDER, "w1")  # nothing behind it
    assert not book.tag_needed(ORDER, "other")  # not the write in flight
    assert not book.tag_needed("elsewhere", "w1")
    book.submit(ORDER, write("w2"))
    book.submit(ORDER, action("a1"))
    assert not book.tag_needed(ORDER, "w1")  # w2 goes next; a1 needs w2's tag
    accepted(book, "w1", None)
    assert book.snapshot(ORDER).writing == "w2"
    assert book.tag_needed(ORDER, "w2")

    parked, _ = make_book()
    parked.submit(ORDER, action("g1", min_revision=3))
    parked.submit(ORDER, write("w3", 3))
    parked.tag_learned(ORDER, None)  # the order is new: the GET the parked action caused 404s
    assert parked.snapshot(ORDER).parked == ("g1",)
    assert parked.snapshot(ORDER).writing == "w3"
    assert parked.tag_needed(ORDER, "w3")


def test_a_write_accepted_without_its_tag_read_makes_the_next_action_fetch_it() -> None:
    """Skipping the GET costs nothing later: the action that comes reads the then-current tag."""
    book, _ = make_book()
    book.submit(ORDER, write("w1", 5))
    assert accepted(book, "w1", None) == [settle("w1", "accepted", None)]
    assert book.snapshot(ORDER).floor == 5
    assert book.submit(ORDER, action("a1")) == [FetchTag(order_id=ORDER)]
    assert book.tag_learned(ORDER, "T9") == [send_action(action("a1"), "T9")]
    # A gated action at or below the floor goes with that tag; above it parks.
    assert book.submit(ORDER, action("g5", min_revision=5)) == [send_action(action("g5", 5), "T9")]


def test_a_gated_action_before_its_write_goes_right_after_that_write() -> None:
    """An action for revision 3 that arrives before the write r3 parks, then goes with its tag
    before any further write is sent.
    """
    book, _ = confirmed_book("T2", revision=2)
    g, w3, w4 = action("g", 3), write("w3", 3), write("w4", 4)
    assert book.submit(ORDER, g) == []
    assert book.snapshot(ORDER).parked == ("g",)
    assert book.submit(ORDER, w3) == [send_write(w3, exists=True)]
    assert book.submit(ORDER, w4) == []
    assert accepted(book, "w3", "T3") == [
        settle("w3", "accepted", None, "T3"),
        send_action(g, "T3"),
    ]
    assert book.action_done(ORDER, "g", status="accepted", reason=None)[-1] == send_write(
        w4, exists=True
    )


def test_a_gated_action_already_reached_goes_at_once_with_the_current_tag() -> None:
    """min_revision at or below the confirmed revision: sent like any action."""
    book, _ = confirmed_book("T5", revision=5)
    g = action("g", 4)
    assert book.submit(ORDER, g) == [send_action(g, "T5")]


def test_a_gated_action_behind_a_running_write_waits_for_it() -> None:
    """A reached gated action queued behind a write in flight goes with the new tag."""
    book, _ = confirmed_book("T5", revision=5)
    w, g = write("w6", 6), action("g", 5)
    book.submit(ORDER, w)
    assert book.submit(ORDER, g) == []
    assert accepted(book, "w6", "T6")[-1] == send_action(g, "T6")


def test_a_gated_action_with_a_learned_tag_goes_after_revision_wait() -> None:
    """Revision unknown (tag learned by GET): a gated action goes after revision_wait."""
    book, clock = make_book(revision_wait=30.0)
    g = action("g", 7)
    assert book.submit(ORDER, g) == [FetchTag(order_id=ORDER)]
    assert book.tag_learned(ORDER, "TG") == []
    clock.now += 29.0
    assert book.tick() == []
    assert book.oldest_gated_age() == 29.0
    clock.now += 1.0
    assert book.tick() == [send_action(g, "TG")]
    assert book.oldest_gated_age() == 0.0


def test_a_gated_action_below_a_known_revision_fails_at_its_deadline() -> None:
    """Confirmed revision known and lower: the action waits, then revision_not_reached."""
    book, clock = confirmed_book("T2", revision=2)
    book.submit(ORDER, action("g", 3, deadline=clock.now + 10))
    clock.now += 60.0
    assert book.tick() == [settle("g", "failed", "revision_not_reached")]
    assert book.busy() == 0


def test_a_parked_action_does_not_block_the_ops_behind_it() -> None:
    """Ungated actions and writes behind a parked action go on."""
    book, _ = confirmed_book("T1", revision=1)
    g, a, w = action("g", 9), action("a"), write("w2", 2)
    book.submit(ORDER, g)
    assert book.submit(ORDER, a) == [send_action(a, "T1")]
    book.action_done(ORDER, "a", status="accepted", reason=None)
    assert book.submit(ORDER, w) == [send_write(w, exists=True)]


# -- deadlines ------------------------------------------------------------------------------------


def test_unsent_ops_fail_at_their_deadline_and_in_flight_ones_do_not() -> None:
    """tick fails queued ops past their deadline; the write in flight is left to the runner."""
    book, clock = make_book()
    w = write("w", deadline=clock.now + 5)
    book.submit(ORDER, w)
    book.submit(ORDER, action("a", deadline=clock.now + 5))
    clock.now += 6
    assert book.tick() == [settle("a", "failed", "deadline")]
    assert book.snapshot(ORDER).writing == "w"


def test_an_expired_write_fails_the_actions_that_depend_on_it_even_later_ones() -> None:
    """A write that expired unsent fails the actions behind it, and those that come later."""
    book, clock = confirmed_book("T1")
    book.submit(ORDER, write("w1"))
    book.submit(ORDER, write("w2", deadline=clock.now + 5))
    book.submit(ORDER, action("a1"))
    clock.now += 6
    assert book.tick() == [settle("w2", "failed", "deadline")]
    assert accepted(book, "w1", "T2") == [
        settle("w1", "accepted", None, "T2"),
        settle("a1", "failed", "write_failed"),
    ]
    assert book.submit(ORDER, action("a2")) == [settle("a2", "failed", "write_failed")]


def test_an_op_past_its_deadline_is_never_sent_even_before_a_tick() -> None:
    """When its turn comes after its deadline, an op fails instead of going out."""
    book, clock = confirmed_book("T1")
    book.submit(ORDER, write("w1"))
    book.submit(ORDER, action("a", deadline=clock.now + 5))
    clock.now += 6
    assert accepted(book, "w1", "T2") == [
        settle("w1", "accepted", None, "T2"),
        settle("a", "failed", "deadline"),
    ]


# -- memory and bookkeeping -----------------------------------------------------------------------


def test_eviction_forgets_the_least_recently_used_idle_orders_only() -> None:
    """Beyond max_tracked, idle orders go oldest-use first; busy orders are never evicted."""
    book, _ = make_book(max_tracked=2)
    for order_id in ("a", "b"):
        book.submit(order_id, write(f"w-{order_id}"))
        accepted(book, f"w-{order_id}", f"T-{order_id}", order_id)
    book.submit("a", action("use-a"))  # a is now busy, then the most recently used
    book.action_done("a", "use-a", status="accepted", reason=None)
    book.submit("c", write("w-c"))  # c is busy: b, the least recently used idle order, goes
    assert ("a" in book, "b" in book, "c" in book) == (True, False, True)
    book.submit("d", write("w-d"))  # nothing idle left but a
    assert ("a" in book, "c" in book, "d" in book) == (False, True, True)
    assert (book.tracked(), book.busy()) == (2, 2)
    book.submit("e", write("w-e"))  # all busy: the bound waits for them
    assert (book.tracked(), book.busy()) == (3, 3)
    accepted(book, "w-c", "T-c", "c")  # c turns idle and, being over the bound, goes at once
    assert ("c" in book, book.tracked()) == (False, 2)
    assert book.submit("b", action("ab")) == [FetchTag(order_id="b")]


def test_an_idle_order_keeps_what_it_knew() -> None:
    """Idle orders restore their state: tag, revision, floor, failure, absence."""
    book, _ = confirmed_book("T3", revision=3)
    assert book.busy() == 0
    snap = book.snapshot(ORDER)
    assert (snap.tracked, snap.state, snap.tag, snap.revision, snap.floor) == (
        True,
        State.CONFIRMED,
        "T3",
        3,
        3,
    )
    book.submit(ORDER, write("w"))
    book.write_done(ORDER, "w", tag=None, status="failed", reason="x")
    assert book.busy() == 0
    assert book.submit(ORDER, action("a")) == [settle("a", "failed", "write_failed")]
    untracked = book.snapshot("nobody")
    assert (untracked.tracked, untracked.state) == (False, State.UNKNOWN)


def test_drop_returns_unsent_ops_and_in_flight_ones_still_settle() -> None:
    """drop hands back parked and queued ops in stream order; the write in flight settles."""
    book, _ = confirmed_book("T1", revision=1)
    g, w, a = action("g", 5), write("w2", 2), action("a")
    book.submit(ORDER, g)
    book.submit(ORDER, w)
    w3 = write("w3", 3)
    book.submit(ORDER, a)
    book.submit(ORDER, w3)
    assert book.drop(ORDER) == [g, a, w3]
    assert book.snapshot(ORDER).queued == ()
    assert accepted(book, "w2", "T2") == [settle("w2", "accepted", None, "T2")]
    assert book.busy() == 0
    assert book.drop(ORDER) == []
    assert ORDER not in book


def test_forget_idle_drops_every_idle_order_and_keeps_busy_ones() -> None:
    """After a revocation the idle orders' tags may go stale elsewhere: all are forgotten."""
    book, _ = confirmed_book("T1")
    book.submit("busy", write("wb"))
    assert book.forget_idle() == 1
    assert (ORDER in book, "busy" in book, book.tracked()) == (False, True, 1)
    assert book.submit(ORDER, action("a")) == [FetchTag(order_id=ORDER)]


def test_results_the_book_does_not_expect_are_ignored() -> None:
    """Late or unknown results (e.g. after drop) change nothing."""
    book, _ = confirmed_book("T1")
    assert book.write_done(ORDER, "nope", tag="X", status="accepted", reason=None) == []
    assert book.action_done(ORDER, "nope", status="accepted", reason=None) == []
    assert book.tag_learned(ORDER, "X") == []
    book.submit(ORDER, write("w"))
    assert book.tag_learned(ORDER, "X") == []  # no GET in flight: a write is
    assert book.snapshot(ORDER).state == State.WRITING
    assert book.write_done("other", "nope", tag="X", status="accepted", reason=None) == []
    assert book.snapshot(ORDER).tag == "T1"


def test_settings_are_checked() -> None:
    """Negative bounds are refused."""
    with pytest.raises(ValueError, match="max_tracked"):
        OrderBook(max_tracked=-1, clock=Clock(), revision_wait=0)
    with pytest.raises(ValueError, match="revision_wait"):
        OrderBook(max_tracked=1, clock=Clock(), revision_wait=-1)


IDLE_ORDERS = 100_000


def test_idle_orders_cost_under_400_bytes_each() -> None:
    """100k idle confirmed orders (ids, tags and revisions included) take < 400 bytes each."""
    book, _ = make_book(max_tracked=IDLE_ORDERS)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(IDLE_ORDERS):
            # Realistic sizes: a 17-character order id, a 36-character (GUID-like) versionTag.
            order_id = f"ORD-2026-{i:08d}"
            book.submit(
                order_id, Write(token=order_id, kind="upsert", revision=i + 1000, deadline=1e9)
            )
            book.write_done(
                order_id,
                order_id,
                tag=f"{i:08x}-0000-4000-8000-000000000000",
                status="accepted",
                reason=None,
            )
        gc.collect()
        per_order = (tracemalloc.get_traced_memory()[0] - before) / IDLE_ORDERS
    finally:
        tracemalloc.stop()
    assert (book.tracked(), book.busy()) == (IDLE_ORDERS, 0)
    print(f"idle order: {per_order:.0f} bytes")
    assert per_order < 400


# -- knowledge another replica takes over ---------------------------------------------------


def recording_book() -> tuple[OrderBook[str], Clock]:
    clock = Clock()
    book: OrderBook[str] = OrderBook(
        max_tracked=100, clock=clock, revision_wait=30.0, record_changes=True
    )
    return book, clock


def test_a_settled_write_leaves_its_knowledge_before_the_next_write_starts() -> None:
    """Confirmed(T1, 3) is what w1 left, even though w2 is already on its way."""
    book, _ = recording_book()
    book.submit(ORDER, write("w1", 3))
    book.submit(ORDER, action("a1"))
    book.submit(ORDER, write("w2", 4))
    accepted(book, "w1", "T1")
    book.action_done(ORDER, "a1", status="accepted", reason=None)
    assert book.snapshot(ORDER).writing == "w2"
    assert book.take_changes() == {
        ORDER: Knowledge(state=State.CONFIRMED, tag="T1", revision=3, floor=3, exists=True)
    }
    assert book.take_changes() == {}


def test_a_failed_write_is_knowledge_too() -> None:
    """Actions behind a failed write fail; a new owner must know the write failed."""
    book, _ = recording_book()
    book.submit(ORDER, write("w1", 2))
    book.write_done(ORDER, "w1", tag=None, status="failed", reason="job_failed")
    assert book.take_changes() == {
        ORDER: Knowledge(
            state=State.FAILED, tag=None, revision=None, floor=None, exists=None, failed_revision=2
        )
    }


def test_no_changes_are_kept_unless_asked_for() -> None:
    """A book made without record_changes keeps nothing for take_changes."""
    book, _ = make_book()
    book.submit(ORDER, write("w1", 1))
    accepted(book, "w1", "T1")
    assert book.take_changes() == {}


def test_a_restored_order_sends_its_gated_action_at_once_with_the_restored_tag() -> None:
    """The new owner knows revision 3 and tag T1: an action gated on 3 goes, before w2, no GET."""
    book, _ = make_book()
    known = Knowledge(state=State.CONFIRMED, tag="T1", revision=3, floor=3, exists=True)
    assert book.restore(ORDER, known) is True
    effects = book.submit(ORDER, action("a1", min_revision=3))
    effects += book.submit(ORDER, write("w2", 4))
    assert effects == [send_action(action("a1", min_revision=3), "T1")]
    assert book.snapshot(ORDER).tracked


def test_without_the_knowledge_the_same_action_waits_for_a_tag() -> None:
    """Knowing nothing, the gated action parks and the order asks for its tag."""
    book, _ = make_book()
    effects = book.submit(ORDER, action("a1", min_revision=3))
    assert effects == [FetchTag(order_id=ORDER)]


def test_a_busy_order_is_not_overwritten_by_a_restore() -> None:
    """What the book is doing with an order is newer than anything another replica knew."""
    book, _ = make_book()
    book.submit(ORDER, write("w1", 5))
    stale = Knowledge(state=State.CONFIRMED, tag="OLD", revision=2, floor=2, exists=True)
    assert book.restore(ORDER, stale) is False
    accepted(book, "w1", "T5")
    assert (book.snapshot(ORDER).tag, book.snapshot(ORDER).floor) == ("T5", 5)


def test_restored_orders_stay_within_max_tracked() -> None:
    """Restoring more orders than the book may track keeps the most recently restored."""
    book, _ = make_book(max_tracked=2)
    for n in range(3):
        known = Knowledge(
            state=State.CONFIRMED, tag=f"T{n}", revision=None, floor=None, exists=True
        )
        book.restore(f"o{n}", known)
    assert (book.tracked(), "o0" in book, "o2" in book) == (2, False, True)
