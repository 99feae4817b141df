"""What every Engage request waits for before it is sent: the key, a rate token, a place.

``CallGate`` holds the ``CredentialsGate`` (every request waits there while Engage refuses the
API key, and one at a time probes it), the dispatcher's two in-flight bounds — one
``CapacityLimiter`` for writes, actions and reads, a separate smaller one for job polls — and
the API key's ``RateBudget``. Nothing else is waited for: no lock around any call, so orders
stay independent.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio

from consumer.credentials import CredentialsGate
from consumer.errors import EngageRetriable, SendRefused

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from consumer.credentials import Pass
    from consumer.engage import BeforeSend, CallKind, SendGuard
    from consumer.ratebudget import RateBudget


class CallGate:
    """In-flight bounds plus the rate budget: what every request waits for, and nothing else."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        max_polls_in_flight: int,
        budget: RateBudget,
        credentials: CredentialsGate | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.budget = budget
        #: whether Engage accepts the API key (its deadline clock is this gate's clock)
        self.credentials = credentials or CredentialsGate()
        self._calls = anyio.CapacityLimiter(max_in_flight)
        self._polls = anyio.CapacityLimiter(max_polls_in_flight)
        self._clock = clock or self.credentials.deadline_clock

    @property
    def in_flight(self) -> int:
        """Writes, actions and reads holding a place now (a metric)."""
        return int(self._calls.borrowed_tokens)

    @property
    def polls_in_flight(self) -> int:
        """Job polls holding a place now (a metric)."""
        return int(self._polls.borrowed_tokens)

    @asynccontextmanager
    async def slot(
        self,
        kind: CallKind,
        *,
        deadline: float | None,
        before_send: BeforeSend | None = None,
        guard: SendGuard | None = None,
        finishing: bool = False,
    ) -> AsyncIterator[Pass]:
        """Spend one rate token and hold a place of ``kind``; give up when ``deadline`` passes.

        First of all, the API key: while Engage refuses it the request waits (its deadline
        does not run meanwhile: the gate's clock stands still) unless it is the one probe let
        through. The pass it yields must be told Engage's answer.

        The token comes first; ``guard`` (the fence: may this partition still send?) and
        ``before_send`` (an action's intent commit, a Kafka round trip) run before the place
        is taken: a place is held only while its request is on the wire, so the in-flight
        bound is all Engage's (bench: holding it through the intent commit cost 20 % of
        actions/s at 16 in flight).
        """
        limiter = self._polls if kind == "poll" else self._calls
        # A fresh borrower per request: one task may run several operations over its life, and
        # the limiter must count requests, not tasks.
        borrower = object()
        admitted = self.credentials.admit_nowait() or await self.credentials.admit()
        try:
            async with self._place(
                limiter,
                borrower,
                deadline=deadline,
                before_send=before_send,
                guard=guard,
                finishing=finishing,
            ):
                yield admitted
        finally:
            admitted.close()

    @asynccontextmanager
    async def _place(
        self,
        limiter: anyio.CapacityLimiter,
        borrower: object,
        *,
        deadline: float | None,
        before_send: BeforeSend | None,
        guard: SendGuard | None,
        finishing: bool,
    ) -> AsyncIterator[None]:
        """The token, the guard, ``before_send`` and the place (see ``slot``)."""
        if deadline is not None and deadline <= self._clock():
            raise EngageRetriable("deadline passed before the request could be sent")
        # The common case, a token and a place free and nothing to wait for, takes both
        # without a cancel scope or a checkpoint: at 1,500 requests/s those were a tenth of
        # the consumer's CPU.
        token = self.budget.take_nowait()
        quick = (
            token and before_send is None and (guard is None or guard.ready(finishing=finishing))
        )
        if not (quick and _take_place_nowait(limiter, borrower)):
            await self._wait_for_place(
                limiter,
                borrower,
                token=token,
                deadline=deadline,
                guard=guard,
                before=before_send,
                finishing=finishing,
            )
        try:
            yield
        finally:
            limiter.release_on_behalf_of(borrower)

    async def _wait_for_place(
        self,
        limiter: anyio.CapacityLimiter,
        borrower: object,
        *,
        token: bool,
        deadline: float | None,
        guard: SendGuard | None,
        before: BeforeSend | None,
        finishing: bool,
    ) -> None:
        """The slow path of ``slot``: token, guard, ``before``, place, all within the deadline."""
        acquired = False
        timeout = float("inf") if deadline is None else max(deadline - self._clock(), 0.0)
        try:
            with anyio.move_on_after(timeout):
                if not token:
                    await self._token(guard, finishing=finishing)
                if guard is not None and not guard.ready(finishing=finishing):
                    await guard.wait(finishing=finishing)
                if before is not None:
                    await before()
                if not _take_place_nowait(limiter, borrower):
                    await limiter.acquire_on_behalf_of(borrower)
                acquired = True
        except BaseException:
            if acquired:
                limiter.release_on_behalf_of(borrower)
            raise
        if not acquired:
            raise EngageRetriable("deadline passed before the request could be sent")

    async def _token(self, guard: SendGuard | None, *, finishing: bool) -> None:
        """Wait for a rate token; a guard that loses its partition meanwhile ends the wait.

        Under a binding budget a call may queue for its token for seconds; one of a revoked
        partition must not hold the rebalance that long for a request it will never send.
        """
        lost = guard.lost(finishing=finishing) if guard is not None else None
        if lost is None:
            await self.budget.acquire(finishing=finishing)
            return
        async with anyio.create_task_group() as race:

            async def give_up_when_lost() -> None:
                await lost.wait()
                race.cancel_scope.cancel()

            race.start_soon(give_up_when_lost)
            await self.budget.acquire(finishing=finishing)
            race.cancel_scope.cancel()
        if lost.is_set():
            raise SendRefused("the partition was revoked while the request waited for the budget")

    def throttled(self, retry_after: float | None) -> None:
        """Engage answered 429: tell the budget."""
        self.budget.throttled(retry_after)


def _take_place_nowait(limiter: anyio.CapacityLimiter, borrower: object) -> bool:
    """Take a place if one is free and nobody queues for one (the limiter stays fair)."""
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)
    except anyio.WouldBlock:
        return False
    return True
