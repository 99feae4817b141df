"""The rules of one order: the transition table, applied until the order has to wait.

Transition table. "Head" is the oldest unsent op of the order; nothing at the head moves in
``writing`` or ``fetching``. A gated action (``min_revision`` n) is *reached* when n <= floor.
``advance`` applies the rows after every input, until the order has to wait.

=========== ================================ ===================================== ==============
state       input                            effects                               next state
=========== ================================ ===================================== ==============
not writing head is an unsent op past its    Settle(failed, deadline); a write     same
or fetching deadline                         leaves a failed-write marker
            head is a write, actions in      none: it waits for them (their tag    same
            flight                           must stay current)
            head is writes w1..wk, no action Settle(skipped, stale) for each at or writing
            between them                     below floor or an earlier wi;
                                             Settle(skipped, coalesced) for the
                                             rest but the last; SendWrite(last,
                                             exists); embedded delivery: the
                                             action right behind an upsert (not
                                             gated, or gated and reached by it)
                                             rides in it
            head is a failed-write marker    parked n <= r: Settle(failed,         failed
            (revision r)                     write_failed)
            head is a gated action, not      parks; the ops behind it go on        same
            reached (state not failed)
confirmed   head is an action (ungated or    SendAction(tag) for it and for every  confirmed
            reached)                         action right behind it
unknown     head is an action (ungated or    FetchTag                              fetching
            reached)
unknown     queue empty, actions parked      FetchTag (not again after a failed    fetching
                                             GET until the next op arrives)
failed      head is an action                Settle(failed, write_failed); a gated same
                                             one above floor and the failed
                                             revision parks
absent      head is an action (ungated or    Settle(rejected, order_deleted or     absent
            reached)                         order_not_found)
confirmed,  parked action reached            moved to the head, before any write   same
unknown,
absent
confirmed   parked action, revision unknown, SendAction(tag)                       confirmed
(rev None)  parked >= revision_wait ago
any         tick: parked action past its     Settle(failed, revision_not_reached)  same
            deadline
writing     write_done (any), an action      Settle(rider's status, T) for the     (as below)
            riding in the write              rider, then as below
writing     write_done accepted, upsert, tag Settle(accepted, T); floor = max(     confirmed(T,r)
            T, revision r                    floor, r); parked reached go
writing     write_done accepted, upsert, no  Settle(accepted)                      unknown
            tag
writing     write_done accepted, delete r    Settle(accepted); floor = max(floor,  absent
                                             r)
writing     write_done rejected or failed    Settle(status); parked n <= r:        failed
            (definitive), write revision r   Settle(failed, write_failed)
writing     write_done unknown (may have     as definitive, and ``exists`` becomes failed
            taken effect)                    unknown
fetching    tag_learned(T)                   (head actions go)                     confirmed(T,
                                                                                   None)
fetching    tag_learned(None): 404           (head actions: order_not_found)       absent
fetching    tag_learned(error=e)             actions at the head up to the next    unknown
                                             write: Settle(failed, e)
any         action_done(status)              Settle(status, tag used)              same
confirmed   action_done(stale_tag) for the   Settle(status, tag used)              unknown
            current tag
idle        more than max_tracked orders,    forgotten                             unknown
            least recently used
=========== ================================ ===================================== ==============

Choices worth knowing, each made for safety:

- An *ambiguous* write failure (``unknown``) leads to ``failed`` like a definitive one: the actions
  after it in stream order, even those submitted later, get ``write_failed`` instead of reading
  the tag with a GET (a job still running in Engage would make that tag an older one). Only
  ``exists`` differs: it becomes unknown, so the next write may POST or PUT.
- The floor (highest confirmed revision) survives writes without a revision and GETs, so stale
  writes are still recognised and gated actions at or below it go at once. In a run of writes, one
  at or below an earlier write's revision is stale too: the newest revision is the one sent.
- While ``failed``, the failed revisions pile up: a gated action at or below any of them, or at or
  below the floor, fails (the order's newest write did not land); above all of them it parks.
- An op whose deadline passed is never sent, even between two ticks.
- ``drop`` keeps what is in flight (those ops still settle when the runner reports) and the
  marker of a write that expired unsent.
- What is forgotten is forgotten: after an eviction, or a restart or a rebalance without the
  knowledge restored (``OrderBook.restore``), an action learns the tag by GET, even if the
  order's last write had failed. ``max_tracked`` and the service's state topic make that rare.
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Generic

from consumer.orders.entries import Lapsed, Order, Parked, Queued
from consumer.orders.ops import (
    Action,
    Effect,
    FetchTag,
    SendAction,
    SendWrite,
    Settle,
    State,
    T,
    Write,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable


class OrderMachine(Generic[T]):
    """Applies the transition table to one order's record; the book keeps the records.

    ``revision_wait`` is how long a gated action waits when the confirmed revision is unknown
    (tag learned by GET) before it goes with that tag anyway. ``embed_actions``: an action that
    directly depends on an upsert about to be sent rides in it (Engage's embedded order action).
    ``lane`` names the stream a token came from (the service: its partition): an action rides in
    a write, and a write sent late takes the place of one, only within one lane, so whatever
    follows a partition (its fence, its revocation) follows the call as a whole.
    """

    def __init__(
        self,
        *,
        revision_wait: float,
        embed_actions: bool = False,
        lane: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._revision_wait = revision_wait
        self._embed_actions = embed_actions
        self._lane = lane

    def advance(self, order_id: str, order: Order[T], out: list[Effect[T]], now: float) -> None:
        """Apply the transition table until the order has to wait for a result or for time."""
        while order.state is not State.WRITING and order.state is not State.FETCHING:
            if order.parked and order.state is not State.FAILED:
                self._release(order_id, order, out, now)
            if not order.queue:
                if (
                    order.parked
                    and order.state is State.UNKNOWN
                    and not order.fetch_failed
                    and not math.isinf(self._revision_wait)
                ):
                    # Only a learned tag lets a parked action go (after revision_wait).
                    order.state = State.FETCHING
                    out.append(FetchTag(order_id=order_id))
                return
            if not self._step(order_id, order, out, now):
                return

    def _step(self, order_id: str, order: Order[T], out: list[Effect[T]], now: float) -> bool:
        """Handle the head of the queue; False when it has to wait."""
        queue = order.queue
        head = queue[0]
        if isinstance(head, Lapsed):
            # Even when a write follows, it may turn out stale and leave this one the latest.
            queue.popleft()
            self.fail_latest_write(order_id, order, head.revision, out)
            return True
        if head.deadline <= now:
            queue.popleft()
            out.append(_failed(order_id, head.token, "deadline"))
            if isinstance(head, Write):
                queue.appendleft(Lapsed(revision=head.revision))
            return True
        if isinstance(head, Write):
            if order.acting:
                return False  # rule 2: the actions before this write must finish on their tag
            self._send_writes(order_id, order, out, now)
            return True
        return self._step_action(order_id, order, head, out, now)

    def _step_action(
        self, order_id: str, order: Order[T], head: Action[T], out: list[Effect[T]], now: float
    ) -> bool:
        """Handle an action at the head; False when it has to wait for a GET."""
        queue = order.queue
        state = order.state
        if head.min_revision is not None and self._parks(order, head.min_revision):
            queue.popleft()
            order.parked.append(Parked(action=head, since=now))
        elif state is State.FAILED:
            queue.popleft()
            out.append(_failed(order_id, head.token, "write_failed"))
        elif state is State.CONFIRMED:
            queue.popleft()
            self._send_action(order_id, order, head, out)
        elif state is State.ABSENT:
            queue.popleft()
            reason = "order_deleted" if order.deleted else "order_not_found"
            out.append(
                Settle(order_id=order_id, token=head.token, status="rejected", reason=reason)
            )
        else:
            order.state = State.FETCHING
            out.append(FetchTag(order_id=order_id))
            return False
        return True

    def _send_writes(
        self, order_id: str, order: Order[T], out: list[Effect[T]], now: float
    ) -> None:
        """Take the run of writes at the head; skip the stale, coalesce the rest to the last."""
        queue = order.queue
        run: list[Write[T]] = []
        while queue:
            head = queue[0]
            if isinstance(head, Write):
                queue.popleft()
                if head.deadline <= now:
                    out.append(_failed(order_id, head.token, "deadline"))
                    queue.appendleft(Lapsed(revision=head.revision))
                else:
                    run.append(head)
            else:
                break
        # A write at or below a revision already confirmed, or already in this run, is older
        # than what Engage will hold: sending it would roll the order back.
        highest = order.floor
        survivors: list[Write[T]] = []
        for write in run:
            if write.revision is not None and highest is not None and write.revision <= highest:
                out.append(_skipped(order_id, write.token, "stale"))
            else:
                survivors.append(write)
                if write.revision is not None:
                    highest = write.revision
        if not survivors:
            return
        out.extend(_skipped(order_id, write.token, "coalesced") for write in survivors[:-1])
        last = survivors[-1]
        order.before_write = order.state
        order.state = State.WRITING
        order.write = last
        order.riding = self._rider(order, last, now)
        out.append(
            SendWrite(order_id=order_id, op=last, exists=order.exists, embedded=order.riding)
        )

    def _rider(self, order: Order[T], write: Write[T], now: float) -> Action[T] | None:
        """Take the action at the head if it can ride in ``write`` (embedded delivery).

        It can when it depends on exactly this write: it comes right after it in the stream
        (not gated), or its revision is reached by this write or was reached before. A gated
        action this write does not reach would park, and one past its deadline fails: neither
        rides. Only the first: Engage takes one embedded action per write (as we read it), and
        any action after it goes separately with the write's tag.
        """
        if not self._embed_actions or write.kind != "upsert" or not order.queue:
            return None
        head = order.queue[0]
        if not isinstance(head, Action) or head.deadline <= now:
            return None
        if not self._same_lane(write.token, head.token):
            return None
        wanted = head.min_revision
        if wanted is not None:
            by_write = write.revision is not None and wanted <= write.revision
            if not by_write and (order.floor is None or wanted > order.floor):
                return None
        order.queue.popleft()
        return head

    def _same_lane(self, first: T, second: T) -> bool:
        lane = self._lane
        return lane is None or lane(first) == lane(second)

    def reconsider(self, order_id: str, order: Order[T], out: list[Effect[T]], now: float) -> None:
        """The write in flight is about to start: let what queued behind it since join it.

        The write was chosen when it reached the head; until its first request goes out it can
        still give way. Later writes with no action between (coalescing, as if they had all
        been queued together) and, with embedded delivery, an action right behind it (riding)
        are taken in: the write goes back to the head of the queue, its rider behind it, the
        order back to the state it was in, and the writes are chosen again. Only ops of the
        write's own lane join it; when none can, nothing changes.
        """
        write = order.write
        if write is None or order.state is not State.WRITING or order.parked:
            # Parked actions: choosing again could release one on the old tag ahead of the
            # write; such an order keeps the write it chose.
            return
        if write.deadline <= now:
            # Chosen in time, it goes as chosen: choosing again would fail it while its call
            # is starting. Kept this way, choosing again always ends in a SendWrite.
            return
        lane_ok = True
        joining = False
        for op in order.queue:
            if isinstance(op, Lapsed):
                break
            lane_ok = lane_ok and self._same_lane(write.token, op.token)
            if isinstance(op, Write):
                joining = True
                continue
            # An action: it ends the run; it may ride if nothing rides yet.
            joining = joining or (self._embed_actions and order.riding is None)
            break
        if not joining or not lane_ok:
            return
        if order.riding is not None:
            order.queue.appendleft(order.riding)
        order.queue.appendleft(write)
        order.state = order.before_write
        order.write = order.riding = None
        self.advance(order_id, order, out, now)

    def _send_action(
        self, order_id: str, order: Order[T], action: Action[T], out: list[Effect[T]]
    ) -> None:
        assert order.tag is not None
        order.acting[action.token] = order.tag
        out.append(SendAction(order_id=order_id, op=action, tag=order.tag))

    def _parks(self, order: Order[T], min_revision: int) -> bool:
        """Whether a gated action at the head parks, instead of going on like any action."""
        floor = order.floor
        if floor is not None and min_revision <= floor:
            return False
        if order.state is State.FAILED:
            # Its revision may be the failed write's: it fails (as any action in failed) if so.
            failed = order.failed_revision
            return failed is None or min_revision > failed
        return True

    def _release(self, order_id: str, order: Order[T], out: list[Effect[T]], now: float) -> None:
        """Let parked actions whose revision arrived (or whose wait is over) go, in order."""
        floor = order.floor
        escape = order.state is State.CONFIRMED and order.revision is None
        keep: list[Parked[T]] = []
        reached: list[Action[T]] = []
        for parked in order.parked:
            action = parked.action
            assert action.min_revision is not None
            if floor is not None and action.min_revision <= floor:
                reached.append(action)
            elif escape and now - parked.since >= self._revision_wait and action.deadline > now:
                # Revision unknown (tag learned by GET): the write it waits for most likely
                # went through before a restart, and the current tag is the only one Engage takes.
                self._send_action(order_id, order, action, out)
            else:
                keep.append(parked)
        order.parked = keep
        # At the head, before any further write, so they go with the tag that satisfied them.
        order.queue.extendleft(reversed(reached))

    def fail_latest_write(
        self, order_id: str, order: Order[T], revision: int | None, out: list[Effect[T]]
    ) -> None:
        """The order's newest write failed: so do the actions that depend on it."""
        if order.state is State.FAILED and order.failed_revision is not None:
            # Failures pile up until a write lands: a gated action for any of them fails.
            failed = order.failed_revision
            revision = failed if revision is None else max(revision, failed)
        order.become(State.FAILED, exists=order.exists, failed_revision=revision)
        if revision is None or not order.parked:
            return
        keep: list[Parked[T]] = []
        for parked in order.parked:
            assert parked.action.min_revision is not None
            if parked.action.min_revision <= revision:
                out.append(_failed(order_id, parked.action.token, "write_failed"))
            else:
                keep.append(parked)
        order.parked = keep

    def fail_waiting_for_tag(
        self, order_id: str, order: Order[T], error: str, out: list[Effect[T]], now: float
    ) -> None:
        """A GET failed: the actions at the head (up to the next write) needed that tag."""
        queue = order.queue
        while queue and isinstance(head := queue[0], Action):
            queue.popleft()
            if head.min_revision is not None and self._parks(order, head.min_revision):
                order.parked.append(Parked(action=head, since=now))
            else:
                out.append(_failed(order_id, head.token, error))

    def expire(self, order_id: str, order: Order[T], out: list[Effect[T]], now: float) -> None:
        """Fail every unsent op past its deadline; a write leaves a marker for its dependants."""
        queue = order.queue
        if any(not isinstance(op, Lapsed) and op.deadline <= now for op in queue):
            kept: deque[Queued[T]] = deque()
            for op in queue:
                if isinstance(op, Lapsed) or op.deadline > now:
                    kept.append(op)
                    continue
                out.append(_failed(order_id, op.token, "deadline"))
                if isinstance(op, Write):
                    kept.append(Lapsed(revision=op.revision))
            order.queue = kept
        if any(p.action.deadline <= now for p in order.parked):
            keep: list[Parked[T]] = []
            for parked in order.parked:
                if parked.action.deadline <= now:
                    out.append(_failed(order_id, parked.action.token, "revision_not_reached"))
                else:
                    keep.append(parked)
            order.parked = keep


def _failed(order_id: str, token: T, reason: str) -> Settle[T]:
    return Settle(order_id=order_id, token=token, status="failed", reason=reason)


def _skipped(order_id: str, token: T, reason: str) -> Settle[T]:
    return Settle(order_id=order_id, token=token, status="skipped", reason=reason)
