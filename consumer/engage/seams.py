"""The seams of the Engage client: the Protocols other parts plug into it, and do-nothing versions.

The client (``consumer.engage.client``) takes a ``RequestGate`` (in-flight bounds and the rate
budget; the service's is ``consumer.service.gate.CallGate``), an optional ``RequestObserver``
(metrics) and, for its one composed call, a ``StepRunner`` (the retry policy). ``OpenGate`` and
``run_once`` are the do-nothing versions for a client used on its own (tests, one-off tools).

Imports nothing of the consumer outside this folder.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Protocol, TypeAlias, TypeVar

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    import anyio

    from consumer.engage.types import CallKind

_T = TypeVar("_T")

#: Runs just before a request goes out (its rate token spent, its place not yet taken); if it
#: raises, the request is not sent. The service records an action's intent with it.
BeforeSend: TypeAlias = "Callable[[], Awaitable[None]]"


class SendGuard(Protocol):
    """Asked before each request of an operation whether it may go (the service's fence).

    ``ready`` answers at once, so the common case costs no checkpoint; when it says no, the
    gate awaits ``wait``, which returns once the request may go or raises ``SendRefused``
    (nothing is sent).
    """

    def ready(self, *, finishing: bool) -> bool:
        """Whether the request may go now (``finishing``: it completes work under way)."""
        ...

    async def wait(self, *, finishing: bool) -> None:
        """Return when the request may go; raise ``SendRefused`` when it never may."""
        ...

    def lost(self, *, finishing: bool) -> anyio.Event | None:
        """Set once the request never may go: waiting for anything else (a rate token) ends."""
        ...


class RequestPass(Protocol):
    """A request's way through the gate, told how Engage answered (the service watches 401/403)."""

    def answered(self, status: int) -> None:
        """Engage answered the request with HTTP ``status``."""
        ...


class RequestGate(Protocol):
    """What every request passes through before it is sent (bounds and rate budget)."""

    def slot(
        self,
        kind: CallKind,
        *,
        deadline: float | None,
        before_send: BeforeSend | None = None,
        guard: SendGuard | None = None,
        finishing: bool = False,
    ) -> AbstractAsyncContextManager[RequestPass]:
        """Spend one rate token and hold one in-flight place of ``kind``; give up at ``deadline``.

        The pass it yields is told Engage's answer (``answered``) before the slot is left.

        ``guard`` and then ``before_send`` run once the token is spent and before the place is
        taken (so the place is held only while the request is on the wire); if either raises,
        nothing is sent. ``finishing``: the request completes work under way (a job poll, a
        tag read, an action) and may go ahead of new writes. Raises ``EngageRetriable`` when
        the deadline passes before the request could be sent.
        """
        ...

    def throttled(self, retry_after: float | None) -> None:
        """Engage answered 429: shrink the budget and, with ``retry_after``, stop sending."""
        ...


class _NoticeNothing:
    def answered(self, status: int) -> None:
        """Nobody watches the answers of a lone client."""


class OpenGate:
    """A gate that never waits: for a client used on its own (tests, one-off tools)."""

    @asynccontextmanager
    async def slot(
        self,
        kind: CallKind,  # noqa: ARG002
        *,
        deadline: float | None,  # noqa: ARG002
        before_send: BeforeSend | None = None,
        guard: SendGuard | None = None,
        finishing: bool = False,
    ) -> AsyncIterator[RequestPass]:
        """Let the request through at once (after ``guard`` and ``before_send``)."""
        if guard is not None and not guard.ready(finishing=finishing):
            await guard.wait(finishing=finishing)
        if before_send is not None:
            await before_send()
        yield _NoticeNothing()

    def throttled(self, retry_after: float | None) -> None:
        """Ignore throttling: a lone client leaves back-off to its caller."""


class RequestObserver(Protocol):
    """Told about every request sent (the metrics).

    ``status`` is the HTTP status, or the transport error's class name when no answer came.
    """

    def request_done(
        self, *, method: str, kind: CallKind, url: str, status: str, seconds: float
    ) -> None:
        """One request ended after ``seconds`` on the wire."""
        ...


class StepRunner(Protocol):
    """Runs one step of a composed call, retrying it as the caller's policy says."""

    async def __call__(self, step: Callable[[], Awaitable[_T]], /) -> _T:
        """Run ``step`` until it returns or the policy gives up (then re-raise its error)."""
        ...


async def run_once(step: Callable[[], Awaitable[_T]], /) -> _T:
    """The ``StepRunner`` that does not retry."""
    return await step()
