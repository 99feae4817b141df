"""The Engage client's values: its settings, what its calls return, and the per-operation meter.

Plain values; imports nothing of the consumer but ``consumer.config.Secret`` (for the key) and,
for types only, ``wire.EmbeddedResult``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from consumer.config import Secret
    from consumer.engage.wire import EmbeddedResult

#: ``poll``: a job poll (its own in-flight bound); ``call``: everything else.
CallKind = Literal["call", "poll"]
WriteMethod = Literal["POST", "PUT", "DELETE"]


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
    #: the order-body field an embedded action rides in (``wire.embedded_action``)
    embedded_action_field: str = "orderAction"
    #: a job only its outcome waits for is first polled at this many typical job times
    outcome_poll_factor: float = 2.0


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
    #: the decoded body of the answer that ended it (where an embedded action is reported)
    body: Any = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EmbeddedReport:
    """What became of an action that rode in a write, as far as the write learned.

    ``carried``: the write Engage took (and whose job was polled) carried the action.
    ``maybe_sent``: an attempt that carried it may have reached Engage without an answer, so
    it was taken out of the attempts after it (sending it again could run it twice).
    ``refused``: Engage refused the write because of the action (its words); the write went
    again without it. ``result``: the job's word on it, when the job ended.
    """

    carried: bool
    maybe_sent: bool = False
    refused: str | None = None
    result: EmbeddedResult | None = None


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
    #: the action that rode in the write (None: none did)
    embedded: EmbeddedReport | None = None
