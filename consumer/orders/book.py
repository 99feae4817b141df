"""The per-order state machine: which write or action of each order goes to Engage next, and how.

Pure: no I/O, no asyncio, no wall clock (a ``clock`` is injected). The runner turns each event into
ops (``Write``, ``Action``) and submits them per order in stream order; every public method of
``OrderBook`` returns the effects the runner must carry out (``SendWrite``, ``SendAction``,
``FetchTag``, ``Settle``), and the runner reports each result back (``write_done``,
``action_done``, ``tag_learned``). Every op gets exactly one ``Settle``: the runner turns Settles
into outcome records in one place.

Engage accepts an action only with the versionTag of the order's latest processed write, so:
writes of an order go one at a time in stream order and wait for the actions queued before them;
an action goes only in ``confirmed`` and carries the confirmed tag; an action behind a failed
write fails and never goes out with an older tag. ``revision`` (the producer's own version) makes
this exact across topics: a write at or below the highest confirmed revision (the *floor*) is
skipped, and an action with ``min_revision`` n parks until a confirmed write reaches n.

States: ``unknown`` (nothing known: start, eviction, a lost tag), ``fetching`` (GET in flight),
``writing`` (a write in flight, job polling included), ``confirmed(tag, revision)``, ``failed``
(the order's latest write failed: every action up to its next write fails), ``absent`` (Engage
has no such order: GET said 404, or our delete went through).

Transition table. "Head" is the oldest unsent op of the order; nothing at the head moves in
``writing`` or ``fetching``. A gated action (``min_revision`` n) is *reached* when n <= floor.
``_advance`` applies the rows after every input, until the order has to wait.

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
                                             exists)
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
- What is forgotten is forgotten: after an eviction or a restart an action learns the tag by
  GET, even if the order's last write had failed. ``max_tracked`` makes that rare.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Generic

from consumer.orders.entries import Idle, Lapsed, Order, Parked, Queued, compact, expand
from consumer.orders.ops import (
    Action,
    Effect,
    FetchTag,
    Op,
    OrderSnapshot,
    ResultStatus,
    SendAction,
    SendWrite,
    Settle,
    State,
    T,
    Write,
)

if TYPE_CHECKING:
    from collections.abc import Callable


# -- the book -------------------------------------------------------------------------------------


class OrderBook(Generic[T]):
    """One state machine per order id, with a bounded memory of idle orders.

    ``max_tracked`` bounds busy plus idle orders; beyond it the least recently used idle orders
    are forgotten (busy ones never: the runner bounds those by pausing Kafka). ``revision_wait``
    is how long a gated action waits when the confirmed revision is unknown (tag learned by GET)
    before it goes with that tag anyway.
    """

    def __init__(
        self, *, max_tracked: int, clock: Callable[[], float], revision_wait: float
    ) -> None:
        if max_tracked < 0:
            raise ValueError(f"max_tracked must be >= 0, not {max_tracked}")
        # Written as "not >=" so that NaN, for which every comparison is False, is refused too.
        if not revision_wait >= 0:
            raise ValueError(f"revision_wait must be >= 0, not {revision_wait}")
        self._max_tracked = max_tracked
        self._clock = clock
        self._revision_wait = revision_wait
        # Busy orders as full records; idle ones compactly, oldest first (the LRU order).
        self._busy: dict[str, Order[T]] = {}
        self._idle: OrderedDict[str, Idle] = OrderedDict()

    # -- inputs -----------------------------------------------------------------------------------

    def submit(self, order_id: str, op: Op[T]) -> list[Effect[T]]:
        """Queue ``op`` behind the order's earlier ops and return what can happen now.

        Raises:
            ValueError: the op's deadline is NaN (it could never be compared, so never expire).
        """
        if op.deadline != op.deadline:
            raise ValueError(f"the deadline of {op.token!r} is NaN")
        order = self._busy.get(order_id)
        if order is None:
            order = expand(self._idle.pop(order_id, None))
            self._busy[order_id] = order
        order.queue.append(op)
        # A new op is a fresh reason to try a GET again after a failed one.
        order.fetch_failed = False
        out: list[Effect[T]] = []
        self._advance(order_id, order, out, self._clock())
        self._settle_down(order_id, order)
        return out

    def write_done(
        self,
        order_id: str,
        token: T,
        *,
        tag: str | None,
        status: ResultStatus,
        reason: str | None,
    ) -> list[Effect[T]]:
        """Report the end of a write and return what can happen now.

        ``accepted``: ``tag`` is the new versionTag (None for a delete, or when it could not be
        read). ``rejected``/``failed``: definitive, nothing changed. ``unknown``: the write may
        have taken effect. A result for a write the book does not have in flight (e.g. after
        ``drop``) is ignored.
        """
        order = self._busy.get(order_id)
        if order is None or order.write is None or order.write.token != token:
            return []
        write = order.write
        order.write = None
        out: list[Effect[T]] = [
            Settle(order_id=order_id, token=token, status=status, reason=reason, tag=tag)
        ]
        if status == "accepted":
            if write.revision is not None and (order.floor is None or write.revision > order.floor):
                order.floor = write.revision
            if write.kind == "delete":
                order.become(State.ABSENT, exists=False, revision=write.revision, deleted=True)
            elif tag is None:
                # Done, but the tag could not be read: the next action learns it with a GET.
                order.become(State.UNKNOWN, exists=True)
            else:
                order.become(State.CONFIRMED, exists=True, tag=tag, revision=write.revision)
        else:
            if status == "unknown":
                order.exists = None
            self._fail_latest_write(order_id, order, write.revision, out)
        self._advance(order_id, order, out, self._clock())
        self._settle_down(order_id, order)
        return out

    def action_done(
        self,
        order_id: str,
        token: T,
        *,
        status: ResultStatus,
        reason: str | None,
        stale_tag: bool = False,
    ) -> list[Effect[T]]:
        """Report the end of an action; ``stale_tag``: Engage 404'd the tag we believed current."""
        order = self._busy.get(order_id)
        if order is None or token not in order.acting:
            return []
        tag = order.acting.pop(token)
        out: list[Effect[T]] = [
            Settle(order_id=order_id, token=token, status=status, reason=reason, tag=tag)
        ]
        # Only the tag we still hold can go stale: a late 404 on one replaced since means nothing.
        if stale_tag and order.state is State.CONFIRMED and order.tag == tag:
            order.become(State.UNKNOWN, exists=None)
        self._advance(order_id, order, out, self._clock())
        self._settle_down(order_id, order)
        return out

    def tag_learned(
        self, order_id: str, tag: str | None, *, error: str | None = None
    ) -> list[Effect[T]]:
        """Report a GET: the current ``tag``, None when Engage has no such order, or ``error``."""
        order = self._busy.get(order_id)
        if order is None or order.state is not State.FETCHING:
            return []
        out: list[Effect[T]] = []
        now = self._clock()
        if error is not None:
            order.become(State.UNKNOWN, exists=order.exists)
            order.fetch_failed = True
            self._fail_waiting_for_tag(order_id, order, error, out, now)
        elif tag is None:
            order.become(State.ABSENT, exists=False)
        else:
            order.become(State.CONFIRMED, exists=True, tag=tag)
        self._advance(order_id, order, out, now)
        self._settle_down(order_id, order)
        return out

    def tick(self) -> list[Effect[T]]:
        """Fail unsent ops whose deadline passed; release parked actions whose wait is over.

        Costs one pass over the busy orders: call it about once a second.
        """
        now = self._clock()
        out: list[Effect[T]] = []
        for order_id, order in list(self._busy.items()):
            if order.queue or order.parked:
                self._expire(order_id, order, out, now)
                self._advance(order_id, order, out, now)
                self._settle_down(order_id, order)
        return out

    # -- queries ----------------------------------------------------------------------------------

    def tracked(self) -> int:
        """How many orders the book remembers (busy and idle)."""
        return len(self._busy) + len(self._idle)

    def busy(self) -> int:
        """How many orders have ops queued, parked or in flight."""
        return len(self._busy)

    def tag_needed(self, order_id: str, token: T) -> bool:
        """Whether an action waits for the tag the write ``token`` (in flight) will produce.

        Asked when its job is done, to spare the GET of a tag nobody will use: an action right
        behind the write, or a parked one (it may be reached by this write's revision), needs
        it; a write or nothing at the head means the tag would only be remembered. When the tag
        is not read the order becomes ``unknown``, so an action arriving later reads the tag
        then: never more requests than reading it now, and the tag it reads is current.
        """
        order = self._busy.get(order_id)
        if order is None or order.write is None or order.write.token != token:
            return False
        if order.parked:
            return True
        return bool(order.queue) and isinstance(order.queue[0], Action)

    def oldest_gated_age(self) -> float:
        """Seconds the oldest parked (revision-gated) action has waited; 0.0 when none waits."""
        oldest = min((o.parked[0].since for o in self._busy.values() if o.parked), default=None)
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._busy or order_id in self._idle

    def forget_idle(self) -> int:
        """Forget every idle order (they become ``unknown``); return how many were forgotten.

        For partition revocation: another consumer may write these orders next, so a tag
        remembered here could go stale without this book ever hearing of it.
        """
        count = len(self._idle)
        self._idle.clear()
        return count

    def drop(self, order_id: str) -> list[Op[T]]:
        """Take back the order's unsent ops, unsettled: parked gated actions, then the queue.

        The queued ops come in stream order. For partition revocation: the runner resubmits the
        ones it keeps. Ops in flight stay: their results are still reported and settled, and ops
        submitted later queue behind them, as does the memory of a write that expired unsent.
        With nothing in flight the order is forgotten (``unknown``).
        """
        self._idle.pop(order_id, None)
        order = self._busy.get(order_id)
        if order is None:
            return []
        # A gated action parks only at the head, so it came before everything still queued (its
        # place among other gated actions does not matter: each waits for its own revision).
        ops: list[Op[T]] = [p.action for p in order.parked]
        ops.extend(op for op in order.queue if not isinstance(op, Lapsed))
        order.parked.clear()
        order.queue = deque(op for op in order.queue if isinstance(op, Lapsed))
        if order.is_idle():
            del self._busy[order_id]
        return ops

    def snapshot(self, order_id: str) -> OrderSnapshot[T]:
        """What the book knows about ``order_id`` right now."""
        order = self._busy.get(order_id)
        tracked = order is not None or order_id in self._idle
        if order is None:
            order = expand(self._idle.get(order_id))
        return OrderSnapshot(
            order_id=order_id,
            tracked=tracked,
            state=order.state,
            tag=order.tag,
            revision=order.revision,
            floor=order.floor,
            exists=order.exists,
            queued=tuple(op.token for op in order.queue if not isinstance(op, Lapsed)),
            parked=tuple(p.action.token for p in order.parked),
            writing=None if order.write is None else order.write.token,
            acting=tuple(order.acting),
        )

    # -- the machine ------------------------------------------------------------------------------

    def _advance(self, order_id: str, order: Order[T], out: list[Effect[T]], now: float) -> None:
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
            self._fail_latest_write(order_id, order, head.revision, out)
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
        order.state = State.WRITING
        order.write = last
        out.append(SendWrite(order_id=order_id, op=last, exists=order.exists))

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

    def _fail_latest_write(
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

    def _fail_waiting_for_tag(
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

    def _expire(self, order_id: str, order: Order[T], out: list[Effect[T]], now: float) -> None:
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

    def _settle_down(self, order_id: str, order: Order[T]) -> None:
        """File an order with nothing left to do as idle, then keep within ``max_tracked``."""
        if order.is_idle():
            del self._busy[order_id]
            value = compact(order)
            if value is not None:
                self._idle[order_id] = value
        excess = len(self._busy) + len(self._idle) - self._max_tracked
        while excess > 0 and self._idle:
            self._idle.popitem(last=False)
            excess -= 1


def _failed(order_id: str, token: T, reason: str) -> Settle[T]:
    return Settle(order_id=order_id, token=token, status="failed", reason=reason)


def _skipped(order_id: str, token: T, reason: str) -> Settle[T]:
    return Settle(order_id=order_id, token=token, status="skipped", reason=reason)
