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

The rules (the transition table) are applied by ``consumer.orders.machine``; this module keeps
the orders: busy ones as full records, idle ones compactly in a bounded LRU. ``take_changes``
gives what settled writes taught it, and ``restore`` takes such knowledge from another replica
that owned the order before, so a new owner need not learn the tag and revision again.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Generic

from consumer.orders.entries import Idle, Lapsed, Order, compact, expand
from consumer.orders.machine import OrderMachine
from consumer.orders.ops import (
    Action,
    Effect,
    Knowledge,
    Op,
    OrderSnapshot,
    ResultStatus,
    SendWrite,
    Settle,
    State,
    T,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable


# -- the book -------------------------------------------------------------------------------------


class OrderBook(Generic[T]):
    """One state machine per order id, with a bounded memory of idle orders.

    ``max_tracked`` bounds busy plus idle orders; beyond it the least recently used idle orders
    are forgotten (busy ones never: the runner bounds those by pausing Kafka). ``revision_wait``
    is how long a gated action waits when the confirmed revision is unknown (tag learned by GET)
    before it goes with that tag anyway. ``embed_actions``: an action that directly depends on
    an upsert about to be sent rides in it (Engage's embedded order action; ``SendWrite.embedded``).
    ``lane(token)`` names the stream an op came from (the service: its partition); an action
    rides in a write, and ``reconsider`` joins later writes to one, only within a lane.
    """

    def __init__(
        self,
        *,
        max_tracked: int,
        clock: Callable[[], float],
        revision_wait: float,
        record_changes: bool = False,
        embed_actions: bool = False,
        lane: Callable[[T], Hashable] | None = None,
    ) -> None:
        if max_tracked < 0:
            raise ValueError(f"max_tracked must be >= 0, not {max_tracked}")
        # Written as "not >=" so that NaN, for which every comparison is False, is refused too.
        if not revision_wait >= 0:
            raise ValueError(f"revision_wait must be >= 0, not {revision_wait}")
        self._max_tracked = max_tracked
        self._clock = clock
        self._machine: OrderMachine[T] = OrderMachine(
            revision_wait=revision_wait, embed_actions=embed_actions, lane=lane
        )
        # Busy orders as full records; idle ones compactly, oldest first (the LRU order).
        self._busy: dict[str, Order[T]] = {}
        self._idle: OrderedDict[str, Idle] = OrderedDict()
        # What settled writes taught the book, for ``take_changes`` (only when asked to keep it).
        self._record_changes = record_changes
        self._changes: dict[str, Knowledge] = {}

    # -- inputs -----------------------------------------------------------------------------------

    def submit(self, order_id: str, *ops: Op[T]) -> list[Effect[T]]:
        """Queue ``ops`` behind the order's earlier ops and return what can happen now.

        The ops of one event go in one call (a lifecycle event's write and action), so the
        machine sees them together: with embedded delivery the action rides in that write.

        Raises:
            ValueError: an op's deadline is NaN (it could never be compared, so never expire).
        """
        for op in ops:
            if op.deadline != op.deadline:
                raise ValueError(f"the deadline of {op.token!r} is NaN")
        order = self._busy.get(order_id)
        if order is None:
            order = expand(self._idle.pop(order_id, None))
            self._busy[order_id] = order
        order.queue.extend(ops)
        # A new op is a fresh reason to try a GET again after a failed one.
        order.fetch_failed = False
        out: list[Effect[T]] = []
        self._machine.advance(order_id, order, out, self._clock())
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
        rider_status: ResultStatus | None = None,
        rider_reason: str | None = None,
    ) -> list[Effect[T]]:
        """Report the end of a write and return what can happen now.

        ``accepted``: ``tag`` is the new versionTag (None for a delete, or when it could not be
        read). ``rejected``/``failed``: definitive, nothing changed. ``unknown``: the write may
        have taken effect. A result for a write the book does not have in flight (e.g. after
        ``drop``) is ignored. ``rider_status``/``rider_reason``: how the action that rode in
        the write ended (embedded delivery); without them it takes what the write's status
        implies (never ``accepted`` unless the runner says so).
        """
        order = self._busy.get(order_id)
        if order is None or order.write is None or order.write.token != token:
            return []
        write, rider = order.write, order.riding
        order.write = order.riding = None
        out: list[Effect[T]] = [
            Settle(order_id=order_id, token=token, status=status, reason=reason, tag=tag)
        ]
        if rider is not None:
            out.append(
                _rider_settled(
                    order_id,
                    rider.token,
                    write_status=status,
                    write_reason=reason,
                    status=rider_status,
                    reason=rider_reason,
                    tag=tag,
                )
            )
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
            self._machine.fail_latest_write(order_id, order, write.revision, out)
        if self._record_changes:
            # Before the next write starts: what this one left is what a new owner needs.
            self._changes[order_id] = order.knowledge()
        self._machine.advance(order_id, order, out, self._clock())
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
        self._machine.advance(order_id, order, out, self._clock())
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
            self._machine.fail_waiting_for_tag(order_id, order, error, out, now)
        elif tag is None:
            order.become(State.ABSENT, exists=False)
        else:
            order.become(State.CONFIRMED, exists=True, tag=tag)
        self._machine.advance(order_id, order, out, now)
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
                self._machine.expire(order_id, order, out, now)
                self._machine.advance(order_id, order, out, now)
                self._settle_down(order_id, order)
        return out

    # -- queries ----------------------------------------------------------------------------------

    def tracked(self) -> int:
        """How many orders the book remembers (busy and idle)."""
        return len(self._busy) + len(self._idle)

    def busy(self) -> int:
        """How many orders have ops queued, parked or in flight."""
        return len(self._busy)

    def reconsider(self, order_id: str, token: T) -> list[Effect[T]]:
        """The write ``token`` (in flight, not sent yet) is about to go: let later ops join it.

        While a write waits for a call place, the events behind it keep coming. Just before its
        first request the runner asks here: writes queued since (with no action between) are
        coalesced with it, and with embedded delivery the action right behind rides in it. The
        effects then hold ``Settle(skipped, coalesced)`` for what gave way and the
        ``SendWrite`` to send instead: the same write with a rider, or a newer write (its
        ``op.token`` differs). No ``SendWrite`` among them: send the write as it was chosen.
        """
        order = self._busy.get(order_id)
        if order is None or order.write is None or order.write.token != token:
            return []
        riding = order.riding
        out: list[Effect[T]] = []
        self._machine.reconsider(order_id, order, out, self._clock())
        # Chosen again as it was: that SendWrite is the call already starting, not a new one.
        return [
            effect
            for effect in out
            if not (
                isinstance(effect, SendWrite)
                and effect.op.token == token
                and effect.embedded is riding
            )
        ]

    def waiting_behind(self, order_id: str) -> bool:
        """Whether anything of the order waits for its write in flight to end (queued, parked).

        Nothing waiting: the write's job is polled only to learn its outcome (and its rider's),
        so it can be polled later and less often.
        """
        order = self._busy.get(order_id)
        return order is not None and bool(order.queue or order.parked)

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

    def take_changes(self) -> dict[str, Knowledge]:
        """What settled writes taught the book since the last call, per order (latest only).

        Empty unless the book was made with ``record_changes``. The knowledge is as the write
        left it, before anything queued behind it moved on: it is what another replica that
        takes the order over should ``restore``.
        """
        changes, self._changes = self._changes, {}
        return changes

    def restore(self, order_id: str, knowledge: Knowledge) -> bool:
        """Remember what another replica knew of an order; False when this book is busy with it.

        For a new owner of a partition: the order's confirmed tag and revision, its floor, a
        failed write, are known again without a GET, so gated actions go at once. A busy
        order's own results are newer than anything restored, so it is left alone.
        """
        if order_id in self._busy:
            return False
        order: Order[T] = expand(knowledge)
        value = compact(order)
        self._idle.pop(order_id, None)
        if value is not None:
            self._idle[order_id] = value
            self._trim()
        return True

    def gated(self) -> int:
        """How many revision-gated actions are parked, waiting for their revision (a metric)."""
        return sum(len(order.parked) for order in self._busy.values())

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
            riding=None if order.riding is None else order.riding.token,
        )

    def _settle_down(self, order_id: str, order: Order[T]) -> None:
        """File an order with nothing left to do as idle, then keep within ``max_tracked``."""
        if order.is_idle():
            del self._busy[order_id]
            value = compact(order)
            if value is not None:
                self._idle[order_id] = value
        self._trim()

    def _trim(self) -> None:
        """Forget the least recently used idle orders beyond ``max_tracked``."""
        excess = len(self._busy) + len(self._idle) - self._max_tracked
        while excess > 0 and self._idle:
            self._idle.popitem(last=False)
            excess -= 1


def _rider_settled(
    order_id: str,
    token: T,
    *,
    write_status: ResultStatus,
    write_reason: str | None,
    status: ResultStatus | None,
    reason: str | None,
    tag: str | None,
) -> Settle[T]:
    """The outcome of an action that rode in a write, from the runner or the write's own."""
    if status is None:
        # Unreported: the write's failure is the action's; a write that may have taken effect
        # (for the write's reason), or one accepted without word of its action, leaves the
        # action's fate unknown.
        if write_status in ("rejected", "failed"):
            status, reason = "failed", "write_failed"
        else:
            status, reason = "unknown", write_reason or "unreported"
    return Settle(order_id=order_id, token=token, status=status, reason=reason, tag=tag)
