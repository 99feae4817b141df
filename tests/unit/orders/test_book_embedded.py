"""OrderBook with embedded delivery, and a write reconsidered just before it goes.

Embedded delivery: an action that directly depends on an upsert about to be sent rides in it,
and its outcome comes with the write's. ``reconsider``: a write chosen while its call waited for
a place takes in what queued behind it since (coalescing, a rider).
"""

from __future__ import annotations

from consumer.orders import Action, OrderBook, SendAction, SendWrite, Settle, State, Write

ORDER = "order-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_book(*, embed: bool = True, lanes: dict[str, str] | None = None) -> OrderBook[str]:
    lane = None if lanes is None else lanes.get
    return OrderBook(
        max_tracked=100,
        clock=Clock(),
        revision_wait=30.0,
        embed_actions=embed,
        lane=lane,
    )


def write(token: str, revision: int | None = None) -> Write[str]:
    return Write(token=token, kind="upsert", revision=revision, deadline=2000.0)


def action(token: str, min_revision: int | None = None, deadline: float = 2000.0) -> Action[str]:
    return Action(token=token, min_revision=min_revision, deadline=deadline)


def send_write(
    op: Write[str], *, exists: bool | None = None, embedded: Action[str] | None = None
) -> SendWrite[str]:
    return SendWrite(order_id=ORDER, op=op, exists=exists, embedded=embedded)


def settle(token: str, status: str, reason: str | None, tag: str | None = None) -> Settle[str]:
    return Settle(order_id=ORDER, token=token, status=status, reason=reason, tag=tag)  # type: ignore[arg-type]


def test_a_lifecycle_events_action_rides_in_its_own_write() -> None:
    """Submitted together, the snapshot write carries the action: no tag, no separate call."""
    book = make_book()
    w, a = write("w", 2), action("a")
    assert book.submit(ORDER, w, a) == [send_write(w, embedded=a)]
    snap = book.snapshot(ORDER)
    assert snap.writing == "w"
    assert snap.riding == "a"
    assert snap.queued == ()
    effects = book.write_done(
        ORDER, "w", tag=None, status="accepted", reason=None, rider_status="accepted"
    )
    assert effects == [settle("w", "accepted", None), settle("a", "accepted", None)]
    assert book.busy() == 0


def test_separate_delivery_sends_the_action_after_the_write_with_its_tag() -> None:
    book = make_book(embed=False)
    w, a = write("w"), action("a")
    assert book.submit(ORDER, w, a) == [send_write(w)]
    assert book.write_done(ORDER, "w", tag="T1", status="accepted", reason=None) == [
        settle("w", "accepted", None, "T1"),
        SendAction(order_id=ORDER, op=a, tag="T1"),
    ]


def test_only_the_first_action_rides_the_next_goes_with_the_writes_tag() -> None:
    book = make_book()
    w, a1, a2 = write("w"), action("a1"), action("a2")
    assert book.submit(ORDER, w, a1, a2) == [send_write(w, embedded=a1)]
    # a2 needs the write's tag: the book asks for it, as it does for any action behind a write.
    assert book.tag_needed(ORDER, "w")
    assert book.write_done(
        ORDER, "w", tag="T1", status="accepted", reason=None, rider_status="accepted"
    ) == [
        settle("w", "accepted", None, "T1"),
        settle("a1", "accepted", None, "T1"),
        SendAction(order_id=ORDER, op=a2, tag="T1"),
    ]


def test_a_rider_does_not_need_the_tag() -> None:
    book = make_book()
    book.submit(ORDER, write("w"), action("a"))
    assert not book.tag_needed(ORDER, "w")
    assert not book.waiting_behind(ORDER)


def test_coalesced_writes_the_action_rides_in_the_one_sent() -> None:
    """w1 in flight; w2, w3 and an action queue: w2 is skipped, the action rides in w3."""
    book = make_book()
    w1, w2, w3, a = write("w1", 1), write("w2", 2), write("w3", 3), action("a")
    assert book.submit(ORDER, w1) == [send_write(w1)]
    assert book.submit(ORDER, w2, w3, a) == []
    assert book.waiting_behind(ORDER)
    assert book.write_done(ORDER, "w1", tag=None, status="accepted", reason=None) == [
        settle("w1", "accepted", None),
        settle("w2", "skipped", "coalesced"),
        send_write(w3, exists=True, embedded=a),
    ]


def test_a_failed_job_fails_the_rider_with_write_failed_and_never_resends_it() -> None:
    book = make_book()
    book.submit(ORDER, write("w"), action("a"))
    effects = book.write_done(ORDER, "w", tag=None, status="failed", reason="job_failed")
    assert effects == [settle("w", "failed", "job_failed"), settle("a", "failed", "write_failed")]
    assert book.snapshot(ORDER).state == State.FAILED


def test_an_ambiguous_write_leaves_its_rider_unknown() -> None:
    book = make_book()
    book.submit(ORDER, write("w"), action("a"))
    effects = book.write_done(
        ORDER,
        "w",
        tag=None,
        status="unknown",
        reason="ambiguous",
        rider_status="unknown",
        rider_reason="ambiguous",
    )
    assert effects == [settle("w", "unknown", "ambiguous"), settle("a", "unknown", "ambiguous")]


def test_an_unreported_rider_of_an_accepted_write_is_unknown_not_accepted() -> None:
    book = make_book()
    book.submit(ORDER, write("w"), action("a"))
    effects = book.write_done(ORDER, "w", tag="T", status="accepted", reason=None)
    assert effects[1] == settle("a", "unknown", "unreported", "T")


def test_a_rejected_rider_leaves_the_write_accepted() -> None:
    """No contact: the order is stored, the action refused; the next action goes on."""
    book = make_book()
    book.submit(ORDER, write("w"), action("a"))
    effects = book.write_done(
        ORDER,
        "w",
        tag="T",
        status="accepted",
        reason=None,
        rider_status="rejected",
        rider_reason="no_contact",
    )
    assert effects == [
        settle("w", "accepted", None, "T"),
        settle("a", "rejected", "no_contact", "T"),
    ]
    assert book.snapshot(ORDER).state == State.CONFIRMED


def test_a_gated_action_rides_only_in_a_write_that_reaches_its_revision() -> None:
    book = make_book()
    w1, a = write("w1", 1), action("a", min_revision=2)
    assert book.submit(ORDER, w1, a) == [send_write(w1)]  # revision 1 does not reach 2
    book2 = make_book()
    w2, b = write("w2", 2), action("b", min_revision=2)
    assert book2.submit(ORDER, w2, b) == [send_write(w2, embedded=b)]


def test_a_delete_carries_no_action() -> None:
    book = make_book()
    d = Write(token="d", kind="delete", revision=None, deadline=2000.0)
    assert book.submit(ORDER, d, action("a")) == [send_write(d)]


def test_an_action_of_another_lane_does_not_ride() -> None:
    """An action from another partition stays a separate call: fences work per partition."""
    book = make_book(lanes={"w": "p0", "a": "p1"})
    w, a = write("w"), action("a")
    assert book.submit(ORDER, w, a) == [send_write(w)]


# -- reconsider: a write about to go takes in what queued behind it -------------------------------


def test_reconsider_lets_a_later_action_ride_in_the_write_about_to_go() -> None:
    """order.upserted then order.action, nothing between: the action rides after all."""
    book = make_book()
    w, a = write("w"), action("a")
    assert book.submit(ORDER, w) == [send_write(w)]
    assert book.submit(ORDER, a) == []
    assert book.reconsider(ORDER, "w") == [send_write(w, embedded=a)]
    assert book.snapshot(ORDER).riding == "a"


def test_reconsider_coalesces_writes_queued_since_into_the_newest() -> None:
    book = make_book(embed=False)
    w1, w2, w3 = write("w1", 1), write("w2", 2), write("w3", 3)
    book.submit(ORDER, w1)
    book.submit(ORDER, w2, w3)
    assert book.reconsider(ORDER, "w1") == [
        settle("w1", "skipped", "coalesced"),
        settle("w2", "skipped", "coalesced"),
        send_write(w3),
    ]
    # The result of the write given back is ignored; w3's is the one that counts.
    assert book.write_done(ORDER, "w1", tag="X", status="accepted", reason=None) == []
    assert book.write_done(ORDER, "w3", tag="T3", status="accepted", reason=None) == [
        settle("w3", "accepted", None, "T3")
    ]


def test_reconsider_with_nothing_new_changes_nothing() -> None:
    book = make_book()
    w, a = write("w"), action("a")
    book.submit(ORDER, w, a)
    assert book.reconsider(ORDER, "w") == []
    book.submit(ORDER, action("b"))  # a second action cannot ride: one rides already
    assert book.reconsider(ORDER, "w") == []
    assert book.reconsider(ORDER, "not-in-flight") == []


def test_reconsider_keeps_the_write_when_an_action_waits_between() -> None:
    """w1 in flight, then a separate action, then w2: w2 must not overtake the action."""
    book = make_book(embed=False)
    w1, a, w2 = write("w1"), action("a"), write("w2")
    book.submit(ORDER, w1)
    book.submit(ORDER, a, w2)
    assert book.reconsider(ORDER, "w1") == []


def test_reconsider_stays_within_the_lane() -> None:
    book = make_book(embed=False, lanes={"w1": "p0", "w2": "p1"})
    book.submit(ORDER, write("w1"))
    book.submit(ORDER, write("w2"))
    assert book.reconsider(ORDER, "w1") == []


def test_reconsider_does_not_let_an_unreached_gated_action_ride_or_be_overtaken() -> None:
    book = make_book()
    w1, gated, w2 = write("w1", 1), action("g", min_revision=5), write("w2", 2)
    book.submit(ORDER, w1, gated)
    book.submit(ORDER, w2)
    assert book.snapshot(ORDER).queued == ("g", "w2")
    assert book.reconsider(ORDER, "w1") == []


def test_reconsider_skips_a_stale_write_without_resending_the_chosen_one() -> None:
    """A write queued since that is already below the floor settles; the chosen one stays."""
    book = make_book(embed=False)
    book.submit(ORDER, write("w0", 5))
    book.write_done(ORDER, "w0", tag="T0", status="accepted", reason=None)
    book.submit(ORDER, write("w1", 6))
    book.submit(ORDER, write("old", 4), action("a"))
    # "old" is stale (4 <= floor 5) and skipped; w1 is the newest and stays the one to send.
    assert book.reconsider(ORDER, "w1") == [settle("old", "skipped", "stale")]
    assert book.snapshot(ORDER).writing == "w1"
