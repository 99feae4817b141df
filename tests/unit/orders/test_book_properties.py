"""OrderBook against a reference model of Engage, under random streams and random interleavings.

A driver submits random writes and actions for a few orders and delivers random results for
whatever the book sends (successes with fresh tags, definitive and ambiguous write failures, action
results and stale tags, GETs that find, 404 or fail), while the clock moves. Every effect is
checked the moment it comes out:

(a) a SendAction carries exactly Engage's current tag, and that tag comes from the last write
    before the action in stream order (stale-skipped writes are transparent), or for a gated
    action from a state of revision >= min_revision (or after ``revision_wait`` with an unknown
    revision, the documented escape);
(b) at most one write in flight per order, never with an action or a GET of that order in flight;
(c) writes go in stream order, each after every write and ungated action before it settled;
(d) every op gets exactly one Settle, with a reason that holds in the model, once the driver has
    delivered every result and ticked past every deadline;
(e) no action goes out after a failure of the write it depends on.

Evictions (small ``max_tracked``) are part of the game: after one, the model forgets what the
book forgot.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.orders import (
    Action,
    Effect,
    FetchTag,
    OrderBook,
    ResultStatus,
    SendAction,
    SendWrite,
    Settle,
    Write,
)

EXAMPLES = int(os.environ.get("ORDERS_PROPERTY_EXAMPLES", "500"))
FETCH_ERROR = "tag_unavailable: boom"
WRITE_OUTCOMES = ("ok", "ok", "ok", "ok_no_tag", "rejected", "failed", "unknown_applied", "unknown")
ACTION_OUTCOMES = ("accepted", "accepted", "accepted", "rejected", "stale", "unknown")
FETCH_OUTCOMES = ("answer", "answer", "answer", "error")
REVISIONS = st.one_of(st.none(), st.integers(1, 5))
DEADLINES = st.sampled_from((0.5, 2.0, 6.0, 30.0, 200.0))
CHOICES = st.sampled_from(
    ("write", "action", "action", "result", "result", "tick", "sleep", "write", "drop")
)
STEPS = st.sampled_from((0.0, 0.5, 1.0, 2.5, 7.0, 40.0))

Fate = Literal["pending", "sent", "accepted", "stale", "coalesced", "failed", "dropped"]


@dataclass
class Rec:
    """One submitted op as the model sees it."""

    order_id: str
    op: Write[int] | Action[int]
    index: int
    submitted_at: float
    fate: Fate = "pending"
    #: For a write that took effect in Engage: the tag Engage gave it (None for a delete).
    model_tag: str | None = None
    sent_tag: str | None = None
    reported: tuple[str, str | None] | None = None
    settle: Settle[int] | None = None


def done(rec: Rec) -> bool:
    """Whether the op no longer holds anything up: settled, or taken back by ``drop``."""
    return rec.settle is not None or rec.fate == "dropped"


@dataclass
class EngageOrder:
    """Engage's side of one order: what a GET would return."""

    exists: bool
    tag: str | None
    max_revision: int | None = None


@dataclass
class Driver:
    """Runs the book, plays Engage and the runner, and checks every effect."""

    order_ids: tuple[str, ...]
    max_tracked: int
    revision_wait: float
    preexisting: tuple[bool, ...]
    now: float = 0.0
    book: OrderBook[int] = field(init=False)
    engage: dict[str, EngageOrder] = field(default_factory=dict)
    streams: dict[str, list[Rec]] = field(default_factory=dict)
    epoch: dict[str, int] = field(default_factory=dict)
    recs: dict[int, Rec] = field(default_factory=dict)
    writing: dict[str, Rec] = field(default_factory=dict)
    acting: dict[int, Rec] = field(default_factory=dict)
    fetching: set[str] = field(default_factory=set)
    #: What the book must know, from results it was told in the current epoch: the highest
    #: confirmed revision, and the revision of the write behind the tag (None after a GET).
    known_floor: dict[str, int | None] = field(default_factory=dict)
    #: GETs the book may still ask for: one per op, stale tag and write result.
    fetch_budget: dict[str, int] = field(default_factory=dict)
    #: Writes coalesced into the write the book is about to send.
    coalesced: dict[str, list[Rec]] = field(default_factory=dict)
    known_revision: dict[str, int | None] = field(default_factory=dict)
    next_token: int = 0
    next_tag: int = 0

    def __post_init__(self) -> None:
        self.book = OrderBook(
            max_tracked=self.max_tracked, clock=lambda: self.now, revision_wait=self.revision_wait
        )
        for order_id, exists in zip(self.order_ids, self.preexisting, strict=True):
            self.engage[order_id] = EngageOrder(
                exists=exists, tag=f"init-{order_id}" if exists else None
            )
            self.streams[order_id] = []
            self.epoch[order_id] = 0
            self.known_floor[order_id] = None
            self.known_revision[order_id] = None
            self.fetch_budget[order_id] = 0

    # -- inputs -----------------------------------------------------------------------------------

    def submit(self, order_id: str, op_kind: str, revision: int | None, ttl: float) -> None:
        token = self.next_token
        self.next_token += 1
        op: Write[int] | Action[int]
        if op_kind == "action":
            op = Action(token=token, min_revision=revision, deadline=self.now + ttl)
        else:
            kind: Literal["upsert", "delete"] = "delete" if op_kind == "delete" else "upsert"
            op = Write(token=token, kind=kind, revision=revision, deadline=self.now + ttl)
        self.submit_op(order_id, op)

    def submit_op(self, order_id: str, op: Write[int] | Action[int]) -> None:
        stream = self.streams[order_id]
        rec = Rec(order_id=order_id, op=op, index=len(stream), submitted_at=self.now)
        stream.append(rec)
        self.recs[op.token] = rec
        self.fetch_budget[order_id] += 1
        self.apply(self.book.submit(order_id, op))

    def drop(self, order_id: str, keep: list[bool]) -> None:
        """Revocation: take back the unsent ops, then resubmit some, as the pipeline does."""
        ops = self.book.drop(order_id)
        unsent = [r for r in self.streams[order_id] if r.fate == "pending" and r.settle is None]
        assert {op.token for op in ops} == {r.op.token for r in unsent}, "drop lost or added ops"
        ordered = [op.token for op in ops if isinstance(op, Write) or op.min_revision is None]
        expected = [
            r.op.token for r in unsent if isinstance(r.op, Write) or r.op.min_revision is None
        ]
        assert ordered == expected, "drop changed the stream order"
        for r in unsent:
            r.fate = "dropped"
        self.check_book()
        for op, again in zip(ops, keep, strict=False):
            if again:
                self.submit_op(order_id, op)

    def finish_write(self, order_id: str, outcome: str) -> None:
        rec = self.writing.pop(order_id)
        assert isinstance(rec.op, Write)
        engage = self.engage[order_id]
        applied = outcome in {"ok", "ok_no_tag", "unknown_applied"}
        if applied:
            if rec.op.revision is not None:
                engage.max_revision = max(engage.max_revision or 0, rec.op.revision)
            if rec.op.kind == "delete":
                engage.exists, engage.tag = False, None
            else:
                self.next_tag += 1
                engage.exists, engage.tag = True, f"t{self.next_tag}"
            rec.model_tag = engage.tag
        status: ResultStatus
        revision = rec.op.revision
        if outcome in {"ok", "ok_no_tag"}:
            status, reason, tag = "accepted", None, engage.tag if outcome == "ok" else None
            rec.fate = "accepted"
            if revision is not None:
                self.known_floor[order_id] = max(self.known_floor[order_id] or 0, revision)
            self.known_revision[order_id] = revision if outcome == "ok" else None
        else:
            status = "unknown" if outcome.startswith("unknown") else outcome  # type: ignore[assignment]
            reason, tag = f"write {outcome}", None
            rec.fate = "failed"
        rec.reported = (status, reason)
        self.fetch_budget[order_id] += 1
        self.apply(
            self.book.write_done(order_id, rec.op.token, tag=tag, status=status, reason=reason)
        )
        if rec.fate == "failed" and revision is not None:
            # (e) for gated actions: those waiting for this revision fail with it, at once.
            for token in self.book.snapshot(order_id).parked:
                parked = self.recs[token]
                assert isinstance(parked.op, Action)
                assert parked.op.min_revision is not None
                assert parked.op.min_revision > revision, "parked action outlived its failed write"

    def finish_action(self, token: int, outcome: str) -> None:
        rec = self.acting.pop(token)
        status: ResultStatus = "rejected" if outcome == "stale" else outcome  # type: ignore[assignment]
        reason = f"action {outcome}"
        rec.reported = (status, reason)
        if outcome == "stale":
            self.fetch_budget[rec.order_id] += 1
        self.apply(
            self.book.action_done(
                rec.order_id, token, status=status, reason=reason, stale_tag=outcome == "stale"
            )
        )

    def finish_fetch(self, order_id: str, outcome: str) -> None:
        self.fetching.remove(order_id)
        if outcome == "error":
            self.apply(self.book.tag_learned(order_id, None, error=FETCH_ERROR))
        else:
            engage = self.engage[order_id]
            self.known_revision[order_id] = None
            self.apply(self.book.tag_learned(order_id, engage.tag if engage.exists else None))

    def tick(self, seconds: float) -> None:
        self.now += seconds
        self.apply(self.book.tick())

    # -- checks -----------------------------------------------------------------------------------

    def apply(self, effects: list[Effect[int]]) -> None:
        for effect in effects:
            if isinstance(effect, SendWrite):
                self.on_send_write(effect)
            elif isinstance(effect, SendAction):
                self.on_send_action(effect)
            elif isinstance(effect, FetchTag):
                self.on_fetch(effect)
            else:
                self.on_settle(effect)
        self.check_book()

    def on_send_write(self, effect: SendWrite[int]) -> None:
        rec = self.recs[effect.op.token]
        order_id = effect.order_id
        assert rec.order_id == order_id
        assert rec.fate == "pending", f"{rec} sent twice or after its settle"
        assert rec.op.deadline > self.now, "write sent after its deadline"
        # (b) one write at a time, never beside an action or a GET of the same order.
        assert order_id not in self.writing, "two writes in flight"
        assert not self.actions_in_flight(order_id), "write sent while an action is in flight"
        assert order_id not in self.fetching, "write sent while a GET is in flight"
        # (c) stream order: everything before it that had to finish has finished.
        for before in self.streams[order_id][: rec.index]:
            if isinstance(before.op, Write) or before.op.min_revision is None:
                assert done(before), f"write {rec.index} overtook {before}"
        # Never roll the order back: not at or below a confirmed revision, nor below one that
        # was coalesced into this write.
        revision = effect.op.revision
        coalesced = self.coalesced.pop(order_id, [])
        if revision is not None:
            floor = self.known_floor[order_id]
            assert floor is None or revision > floor, (
                f"stale write r{revision} sent (floor {floor})"
            )
            for before in coalesced:
                assert isinstance(before.op, Write)
                older = before.op.revision
                assert older is None or older < revision, "coalesced into an older revision"
        engage = self.engage[order_id]
        if effect.exists is not None:
            assert effect.exists == engage.exists, "exists hint contradicts Engage"
        rec.fate = "sent"
        self.writing[order_id] = rec

    def on_send_action(self, effect: SendAction[int]) -> None:
        rec = self.recs[effect.op.token]
        order_id = effect.order_id
        assert rec.order_id == order_id
        assert isinstance(rec.op, Action)
        assert rec.fate == "pending", f"{rec} sent twice or after its settle"
        assert rec.op.deadline > self.now, "action sent after its deadline"
        assert order_id not in self.writing, "action sent while a write is in flight"
        assert order_id not in self.fetching, "action sent while a GET is in flight"
        # (a) the tag Engage holds now, which is the only one it accepts.
        engage = self.engage[order_id]
        assert engage.exists, "action sent for an order Engage does not have"
        assert effect.tag == engage.tag, f"action sent with {effect.tag}, Engage has {engage.tag}"
        n = rec.op.min_revision
        if n is None:
            # (a), (c), (e): the write it depends on finished and gave exactly this tag.
            for before in self.streams[order_id][: rec.index]:
                if isinstance(before.op, Write):
                    assert done(before), "action overtook a write before it"
            dep = self.dependency(rec)
            if dep is not None:
                assert dep.fate == "accepted", f"action sent although its write is {dep.fate}"
                assert isinstance(dep.op, Write)
                assert dep.op.kind == "upsert"
                assert effect.tag == dep.model_tag, "action sent with another write's tag"
        else:
            reached = engage.max_revision is not None and engage.max_revision >= n
            if not reached:
                # Only the escape: the revision behind the tag is unknown and it waited long enough.
                assert self.now - rec.submitted_at >= self.revision_wait, "gated action too early"
                assert self.known_revision[order_id] is None, "escape with a known revision"
        rec.fate = "sent"
        rec.sent_tag = effect.tag
        self.acting[rec.op.token] = rec

    def on_fetch(self, effect: FetchTag) -> None:
        # No GET loop on a broken Engage: every GET needs a new reason (an op, a result).
        self.fetch_budget[effect.order_id] -= 1
        assert self.fetch_budget[effect.order_id] >= 0, "GET without a new reason"
        assert effect.order_id not in self.fetching, "two GETs in flight"
        assert effect.order_id not in self.writing, "GET while a write is in flight"
        self.fetching.add(effect.order_id)

    def on_settle(self, effect: Settle[int]) -> None:
        rec = self.recs[effect.token]
        assert rec.order_id == effect.order_id
        assert rec.settle is None, f"second Settle for {rec}: {effect}"
        assert rec.fate != "dropped", f"Settle for an op taken back by drop: {effect}"
        rec.settle = effect
        if rec.fate == "sent" or rec.reported is not None:
            assert rec.reported is not None, "a sent op settled before its result came"
            assert rec.reported == (effect.status, effect.reason), "Settle changed the result"
            if isinstance(rec.op, Action):
                assert effect.tag == rec.sent_tag
            return
        assert rec.fate == "pending"
        self.check_reason(rec, effect)

    def check_reason(self, rec: Rec, effect: Settle[int]) -> None:
        """(d): a Settle without I/O says something true about the model."""
        op, reason = rec.op, effect.reason
        stream = self.streams[rec.order_id]
        if isinstance(op, Write):
            if reason == "deadline":
                assert effect.status == "failed"
                assert op.deadline <= self.now
                rec.fate = "failed"
            elif reason == "coalesced":
                # Coalesced into a later write with nothing between that still needed its tag.
                assert effect.status == "skipped"
                later = stream[rec.index + 1 :]
                nxt = next(
                    (
                        i
                        for i, b in enumerate(later)
                        if isinstance(b.op, Write) and b.fate != "dropped"
                    ),
                    None,
                )
                assert nxt is not None, "coalesced into nothing"
                assert all(done(b) for b in later[:nxt]), "coalesced across an action"
                rec.fate = "coalesced"
                self.coalesced.setdefault(rec.order_id, []).append(rec)
            elif reason == "stale":
                assert effect.status == "skipped"
                assert op.revision is not None
                assert any(
                    isinstance(b.op, Write)
                    and b.fate != "dropped"
                    and b.op.revision is not None
                    and b.op.revision >= op.revision
                    for b in stream[self.epoch[rec.order_id] : rec.index]
                ), "stale without a newer revision before it"
                rec.fate = "stale"
            else:
                raise AssertionError(f"unexpected write Settle {effect}")
            return
        rec.fate = "failed"
        engage = self.engage[rec.order_id]
        if reason == "deadline":
            assert effect.status == "failed"
            assert op.deadline <= self.now
        elif reason == "revision_not_reached":
            assert effect.status == "failed"
            assert op.min_revision is not None
            assert op.deadline <= self.now
            floor = self.known_floor[rec.order_id]
            assert floor is None or floor < op.min_revision, "revision was reached"
        elif reason == "write_failed":
            assert effect.status == "failed"
            if op.min_revision is None:
                dep = self.dependency(rec)
                assert dep is not None, "write_failed without a write before it"
                assert dep.fate == "failed", f"write_failed but its write is {dep.fate}"
            else:
                assert any(
                    isinstance(b.op, Write) and b.fate == "failed"
                    for b in stream[self.epoch[rec.order_id] :]
                ), "gated write_failed without a failed write"
        elif reason in {"order_not_found", "order_deleted"}:
            assert effect.status == "rejected"
            assert not engage.exists, f"{reason} but Engage has the order"
        elif reason == FETCH_ERROR:
            assert effect.status == "failed"
        else:
            raise AssertionError(f"unexpected action Settle {effect}")

    def dependency(self, rec: Rec) -> Rec | None:
        """The write an ungated action depends on: the last one before it, not stale nor taken
        back by ``drop``.
        """
        stream = self.streams[rec.order_id]
        for before in reversed(stream[self.epoch[rec.order_id] : rec.index]):
            if isinstance(before.op, Write) and before.fate not in {"stale", "dropped"}:
                return before
        return None

    def actions_in_flight(self, order_id: str) -> bool:
        return any(r.order_id == order_id for r in self.acting.values())

    def check_book(self) -> None:
        book = self.book
        assert book.busy() <= book.tracked()
        assert book.tracked() <= self.max_tracked or book.tracked() == book.busy()
        for order_id in self.order_ids:
            if order_id not in book:
                # Evicted or never kept: the book knows nothing, neither does the model.
                self.epoch[order_id] = len(self.streams[order_id])
                self.known_floor[order_id] = None
                self.known_revision[order_id] = None
            snap = book.snapshot(order_id)
            in_flight = self.writing.get(order_id)
            assert snap.writing == (None if in_flight is None else in_flight.op.token)
            assert set(snap.acting) == {t for t, r in self.acting.items() if r.order_id == order_id}
            assert (snap.state == "fetching") == (order_id in self.fetching)

    # -- the end ----------------------------------------------------------------------------------

    def pending_io(self) -> list[tuple[str, object]]:
        items: list[tuple[str, object]] = [("write", o) for o in sorted(self.writing)]
        items += [("action", t) for t in sorted(self.acting)]
        items += [("fetch", o) for o in sorted(self.fetching)]
        return items

    def finish(self, data: st.DataObject) -> None:
        """(d): deliver every result, tick past every deadline; then every op has one Settle."""
        for _ in range(500):
            items = self.pending_io()
            if items:
                self.deliver(data, items)
            elif self.book.busy():
                self.tick(250.0 + (0 if math.isinf(self.revision_wait) else self.revision_wait))
            else:
                break
        assert not self.pending_io()
        assert self.book.busy() == 0, "book still busy after everything was delivered"
        unsettled = [r for r in self.recs.values() if r.settle is None and r.fate != "dropped"]
        assert not unsettled, f"ops never settled: {unsettled}"

    def deliver(self, data: st.DataObject, items: list[tuple[str, object]]) -> None:
        kind, key = data.draw(st.sampled_from(items))
        if kind == "write":
            assert isinstance(key, str)
            self.finish_write(key, data.draw(st.sampled_from(WRITE_OUTCOMES)))
        elif kind == "action":
            assert isinstance(key, int)
            self.finish_action(key, data.draw(st.sampled_from(ACTION_OUTCOMES)))
        else:
            assert isinstance(key, str)
            self.finish_fetch(key, data.draw(st.sampled_from(FETCH_OUTCOMES)))


def play(data: st.DataObject, *, orders: int, steps: int) -> Driver:
    """Run one random scenario to the end and return the driver (for extra assertions)."""
    order_ids = tuple(f"o{i}" for i in range(orders))
    driver = Driver(
        order_ids=order_ids,
        max_tracked=data.draw(st.integers(0, orders + 1), label="max_tracked"),
        revision_wait=data.draw(st.sampled_from((0.0, 3.0, 20.0, math.inf)), label="revision_wait"),
        preexisting=data.draw(st.tuples(*[st.booleans()] * orders), label="preexisting"),
    )
    for _ in range(steps):
        items = driver.pending_io()
        choice = data.draw(CHOICES)
        if choice == "result" and items:
            driver.deliver(data, items)
        elif choice == "tick":
            driver.tick(data.draw(STEPS))
        elif choice == "sleep":
            # Time passes without a tick: results and ops meet deadlines the book has not seen.
            driver.now += data.draw(STEPS)
        elif choice == "drop":
            if data.draw(st.booleans()):
                driver.drop(
                    data.draw(st.sampled_from(order_ids)),
                    data.draw(st.lists(st.booleans(), max_size=8)),
                )
            else:
                driver.book.forget_idle()
                driver.check_book()
        else:
            order_id = data.draw(st.sampled_from(order_ids))
            kind = (
                "action"
                if choice == "action"
                else data.draw(st.sampled_from(("upsert", "upsert", "delete")))
            )
            driver.submit(order_id, kind, data.draw(REVISIONS), data.draw(DEADLINES))
    driver.finish(data)
    return driver


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_streams_never_send_a_wrong_tag_and_settle_every_op(data: st.DataObject) -> None:
    """Random ops and results on a few orders keep (a)-(e) at every step and settle every op."""
    play(
        data,
        orders=data.draw(st.integers(1, 3), label="orders"),
        steps=data.draw(st.integers(1, 60)),
    )


@settings(
    max_examples=max(EXAMPLES // 5, 20), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data())
def test_one_busy_order_keeps_the_invariants_over_long_streams(data: st.DataObject) -> None:
    """A single order under a long stream (deep queues, many parked actions) keeps (a)-(e)."""
    play(data, orders=1, steps=data.draw(st.integers(60, 200)))
