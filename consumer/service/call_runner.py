"""Carrying out one Engage call the order book asked for, and reporting its result back.

A write (create or replace, or a delete) is sent, its job polled (sleeping between polls
without holding a place), and its tag read only when an action waits for it; an action is sent
with the tag the book gave it, its intent made durable just before; a tag read learns the
order's current tag. Just before a write's first request the book may choose again
(``OrderBook.reconsider``): writes queued while it waited for a place coalesce into it, and
with embedded delivery an action that queued right behind rides in it. An action riding in a
write has its intent made durable before each request that carries it, and its outcome comes
from the write's answers. Every request first asks the fence whether its partition may still send:
a refused one ends the call, and its event is left to the partition's next owner.

Knows the book, the dispatcher's operations (``EngageCalls``), the intent log and the fence;
the pipeline hands it the calls and applies the effects it reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from consumer.engage import embedded_action
from consumer.errors import SendRefused
from consumer.logs import get_logger
from consumer.orders import SendAction, SendWrite
from consumer.service.dispatch import DispatchResult

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from consumer.engage import BeforeSend, SendGuard
    from consumer.orders import Call, Effect, FetchTag, OrderBook
    from consumer.service.calls import CallScheduler
    from consumer.service.fence import Fence
    from consumer.service.pending import OpRef, Pending
    from consumer.service.seams import EngageCalls, IntentLog
    from consumer.service.state_store import StateStore
    from consumer.types import TP

log = get_logger("pipeline")


class CallRunner:
    """Runs calls for the pipeline; ``apply`` carries out the effects each result brings.

    ``refused`` is told of a call the fence stopped (its partition was revoked): it is not
    reported to the book here, where the book's reaction (an ``unknown`` write fails the actions
    queued behind it) would settle events of the lost partition with outcomes of their own.
    """

    def __init__(
        self,
        *,
        book: OrderBook[OpRef],
        engage: EngageCalls,
        scheduler: CallScheduler[Call[OpRef]],
        apply: Callable[[Iterable[Effect[OpRef]]], None],
        refused: Callable[[Call[OpRef]], None],
        event_deadline: float,
        read_every_tag: bool,
        clock: Callable[[], float],
        embedded_actions: bool = False,
        intents: IntentLog | None = None,
        fence: Fence | None = None,
        state: StateStore | None = None,
    ) -> None:
        self._book = book
        self._engage = engage
        self._scheduler = scheduler
        self._apply = apply
        self._refused = refused
        self._event_deadline = event_deadline
        self._read_every_tag = read_every_tag
        self._embedded_actions = embedded_actions
        self._clock = clock
        self._intents = intents
        self._fence = fence
        self._state = state

    def _call_deadline(self) -> float:
        return self._clock() + self._event_deadline

    async def run(self, call: Call[OpRef]) -> None:
        """Carry out ``call`` and report its result to the book (its effects are applied)."""
        if isinstance(call, SendWrite):
            await self._run_write(call)
        elif isinstance(call, SendAction):
            await self._run_action(call)
        else:
            await self._run_fetch(call)

    def _guard(self, tp: TP) -> SendGuard | None:
        return self._fence.guard(tp) if self._fence is not None else None

    def _poll_waiter(self, tp: TP) -> Callable[[float], Awaitable[None]]:
        """Sleeps between the polls of one job, woken early if ``tp`` is revoked."""
        fence, scheduler = self._fence, self._scheduler

        async def wait(seconds: float) -> None:
            until = fence.lost(tp) if fence is not None else None
            await scheduler.wait_between_polls(seconds, until=until)

        return wait

    def _reconsidered(self, call: SendWrite[OpRef]) -> SendWrite[OpRef]:
        """The write to send now: the one chosen, or what the book chooses instead of it."""
        effects = self._book.reconsider(call.order_id, call.op.token)
        if not effects:
            return call
        chosen = call
        rest: list[Effect[OpRef]] = []
        for effect in effects:
            if isinstance(effect, SendWrite):  # the one write of this order to send now
                chosen = effect
            else:
                rest.append(effect)
        self._apply(rest)
        return chosen

    def _intent_for(self, pending: Pending) -> BeforeSend:
        """Records the intent of ``pending``'s action before each request that carries it.

        Just before the request goes out (its rate token spent, its in-flight place next): a
        crash after this point leaves an intent, and the next owner reports `unknown` rather
        than sending the action again. The same for an action of its own and one riding in a
        write.
        """
        intents = self._intents

        async def record_intent() -> None:
            if intents is not None and not await intents.record(pending.tp, pending.event.offset):
                raise SendRefused("the partition was revoked before the action was sent")
            pending.intended = True

        return record_intent

    async def _run_write(self, call: SendWrite[OpRef]) -> None:
        call = self._reconsidered(call)
        op = call.op
        ref = op.token
        deadline = self._call_deadline()
        tp = ref.pending.tp
        log.debug(
            "sending write",
            orderId=call.order_id,
            eventId=ref.pending.event.id,
            partition=ref.pending.tp[1],
            offset=ref.pending.event.offset,
            exists=call.exists,
        )
        wait = self._poll_waiter(tp)
        guard = self._guard(tp)
        try:
            if op.kind == "delete":
                result = await self._engage.delete(
                    call.order_id, deadline=deadline, wait=wait, guard=guard
                )
            else:
                assert ref.body is not None
                order_id = call.order_id
                tag_wanted = None
                if not self._read_every_tag:

                    def tag_wanted() -> bool:
                        return self._book.tag_needed(order_id, op.token)

                rider = call.embedded.token if call.embedded is not None else None
                embedded = None if rider is None else _embedded_body(rider)

                def patient() -> bool:
                    # Nothing waits for this write but outcomes: poll its job later, less.
                    return not self._book.waiting_behind(order_id)

                result = await self._engage.write(
                    order_id,
                    ref.body,
                    exists=call.exists,
                    deadline=deadline,
                    wait=wait,
                    tag_wanted=tag_wanted,
                    guard=guard,
                    embedded=embedded,
                    before_send=None if rider is None else self._intent_for(rider.pending),
                    patient=patient if self._embedded_actions else None,
                )
        except SendRefused:
            # The partition went to another member mid-write (between the write and a poll,
            # or before a retry): nothing more goes out, and its new owner redoes the event.
            self._refused(call)
            return
        ref.result = result
        rider_status = rider_reason = None
        if call.embedded is not None and result.rider is not None:
            rider_status, rider_reason = result.rider.status, result.rider.reason
            _ridden(call.embedded.token, result)
        if result.status == "accepted":
            effects = self._book.write_done(
                call.order_id,
                op.token,
                tag=result.version_tag,
                status="accepted",
                reason=None,
                rider_status=rider_status,
                rider_reason=rider_reason,
            )
        else:
            uncertain = result.tag_uncertain or result.status == "unknown"
            effects = self._book.write_done(
                call.order_id,
                op.token,
                tag=None,
                status="unknown" if uncertain else result.status,
                reason=result.reason,
                rider_status=rider_status,
                rider_reason=rider_reason,
            )
        if self._state is not None:
            # Published before the event's outcome: once its offset is committed, a new owner
            # of the partition finds what this write left.
            ref.pending.remembered.extend(
                (order_id, self._state.record(knowledge))
                for order_id, knowledge in self._book.take_changes().items()
            )
        self._apply(effects)

    async def _run_action(self, call: SendAction[OpRef]) -> None:
        op = call.op
        ref = op.token
        assert ref.action is not None
        pending = ref.pending
        log.debug(
            "sending action",
            orderId=call.order_id,
            eventId=pending.event.id,
            partition=pending.tp[1],
            offset=pending.event.offset,
            versionTag=call.tag,
        )

        pending.delivery = "separate"

        try:
            result = await self._engage.action(
                call.order_id,
                action=ref.action,
                version_tag=call.tag,
                language=ref.language,
                data=dict(ref.data) if ref.data is not None else None,
                deadline=self._call_deadline(),
                before_send=self._intent_for(pending),
                guard=self._guard(pending.tp),
            )
        except SendRefused:
            # Nothing was sent and the partition is going to its next owner, who answers this
            # event: it gets no outcome here (an outcome would commit an action never sent).
            self._refused(call)
            return
        ref.result = result
        stale = result.status == "rejected" and result.http_status == 404
        self._apply(
            self._book.action_done(
                call.order_id,
                op.token,
                status=result.status,
                reason=result.reason,
                stale_tag=stale,
            )
        )

    async def _run_fetch(self, call: FetchTag) -> None:
        result = await self._engage.read_tag(call.order_id, deadline=self._call_deadline())
        if result.status == "accepted":
            effects = self._book.tag_learned(call.order_id, result.version_tag)
        elif result.status == "rejected" and result.http_status == 404:
            effects = self._book.tag_learned(call.order_id, None)
        else:
            effects = self._book.tag_learned(
                call.order_id, None, error=f"tag_unavailable: {result.reason}"
            )
        self._apply(effects)

    # -- outcomes -----------------------------------------------------------------------------


def _embedded_body(rider: OpRef) -> dict[str, Any]:
    """The action object that rides in the write (``engage.embedded_action``)."""
    assert rider.action is not None
    return embedded_action(
        action=rider.action,
        language=rider.language,
        data=dict(rider.data) if rider.data is not None else None,
    )


def _ridden(rider: OpRef, write: DispatchResult) -> None:
    """Give a riding action its own result, so its outcome tells how it went."""
    assert write.rider is not None
    rider.pending.delivery = "embedded"
    rider.result = DispatchResult(
        operation="action",
        status=write.rider.status,
        http_status=write.http_status,
        version_tag=write.version_tag,
        # Its requests were the write's: counting them here too would count them twice.
        attempts=0,
        reason=write.rider.reason,
        detail=write.rider.detail,
        engage_ms=0.0,
        requests=0,
    )
