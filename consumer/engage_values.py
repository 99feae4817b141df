"""Values and seams of the Engage client: settings, results, and the Protocols others plug in.

The client (``consumer.engage``) takes a ``RequestGate`` (in-flight bounds and the rate budget,
from ``consumer.dispatch``), an optional ``RequestObserver`` (metrics) and, for its one composed
call, a ``StepRunner`` (the retry policy). ``OpenGate`` and ``run_once`` are the do-nothing
versions for a client used on its own. A ``Meter`` counts one operation's requests and time.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from consumer.config import Secret, Settings

_T = TypeVar("_T")

CallKind = Literal["call", "poll"]
WriteMethod = Literal["POST", "PUT", "DELETE"]


class RequestGate(Protocol):
    """What every request passes through before it is sent (bounds and rate budget)."""

    def slot(
        self,
        kind: CallKind,
        *,
        deadline: float | None,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> AbstractAsyncContextManager[None]:
        """Spend one rate token and hold one in-flight place of ``kind``; give up at ``deadline``.

        ``before_send`` runs once the token is spent and before the place is taken (so the
        place is held only while the request is on the wire); if it raises, nothing is sent.
        Raises ``EngageRetriable`` when the deadline passes before the request could be sent.
        """
        ...

    def throttled(self, retry_after: float | None) -> None:
        """Engage answered 429: shrink the budget and, with ``retry_after``, stop sending."""
        ...


class OpenGate:
    """A gate that never waits: for a client used on its own (tests, one-off tools)."""

    @asynccontextmanager
    async def slot(
        self,
        kind: CallKind,  # noqa: ARG002
        *,
        deadline: float | None,  # noqa: ARG002
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> AsyncIterator[None]:
        """Let the request through at once (after ``before_send``)."""
        if before_send is not None:
            await before_send()
        yield

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


@dataclass(kw_only=True, slots=True)
class Meter:
    """Counts the HTTP requests of one operation and the time spent waiting on Engage for them.

    Mutable on purpose: one operation's calls add to it, and it keeps its counts when a call
    raises, so a failed operation still reports what it cost.
    """

    requests: int = 0
    engage_seconds: float = 0.0
    attempts: int = 0

    @property
    def engage_ms(self) -> float:
        """Time inside Engage calls in milliseconds (excludes budget waits and back-off)."""
        return self.engage_seconds * 1000.0


@dataclass(frozen=True, kw_only=True, slots=True)
class EngageClientSettings:
    """How to reach Engage. Timeouts are explicit: Engage says a slow answer means load."""

    base_url: str
    api_key: Secret
    user_agent: str
    connect_timeout: float = 5.0
    # Long on purpose: cutting a slow answer short turns a write into a retry and an action
    # into an ``unknown`` outcome.
    read_timeout: float = 30.0
    write_timeout: float = 10.0
    pool_timeout: float = 10.0
    max_connections: int = 100
    max_keepalive: int = 20
    keepalive_expiry: float = 5.0
    # The first gap until recent jobs say how long they take (``consumer.polling``), and the
    # longest gap between two polls once a job runs past the typical time.
    poll_initial_delay: float = 0.2
    poll_max_delay: float = 2.0
    #: ``aiohttp`` (default: httpx's API on aiohttp's transport) or ``httpx`` (httpcore)
    http_transport: str = "aiohttp"

    @classmethod
    def from_settings(cls, settings: Settings) -> EngageClientSettings:
        """Derive the client settings from the service settings."""
        in_flight = settings.engage_max_in_flight + settings.engage_max_polls_in_flight
        return cls(
            base_url=settings.engage_base_url,
            api_key=settings.engage_api_key,
            user_agent=settings.engage_user_agent,
            connect_timeout=settings.engage_connect_timeout_seconds,
            read_timeout=settings.engage_read_timeout_seconds,
            # One connection per in-flight place: a request that holds a place never waits
            # for a connection, so the pool timeout only fires when something is really wrong.
            max_connections=in_flight,
            max_keepalive=min(in_flight, 32),
            http_transport=settings.engage_http_transport,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class JobRef:
    """The asynchronous job a write started; ``url`` is what to poll (same origin as Engage)."""

    url: str
    job_id: str | None
    method: WriteMethod
    http_status: int


@dataclass(frozen=True, kw_only=True, slots=True)
class JobResult:
    """How polling a job ended. ``timed_out`` is uncertain: the job may still finish later."""

    state: Literal["succeeded", "failed", "timed_out"]
    http_status: int | None
    reason: str | None
    polls: int


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderState:
    """An order as Engage stores it; ``version_tag`` is None if the body carried none."""

    order_id: str
    version_tag: str | None
    body: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionResult:
    """Engage accepted an action (202)."""

    http_status: int
    body: Any


@dataclass(frozen=True, kw_only=True, slots=True)
class WriteConfirmation:
    """What ``write_and_confirm`` learned: the job's end and, when it succeeded, the new tag.

    ``tag_read`` is False when the tag was not asked for (see ``tag_wanted``).
    """

    job: JobResult
    write_status: int
    version_tag: str | None
    tag_read: bool
    order_missing: bool
    requests: int
    engage_ms: float
    attempts: int
