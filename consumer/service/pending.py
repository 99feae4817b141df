"""What the service carries for one input event between intake and its acknowledged outcome.

``Pending`` is one event in progress: its partition, deadline and the outcome fields as they are
learned. ``OpRef`` is the token the order book carries for one of the event's operations (the
book is generic over it, so the pipeline gets its own tokens back): which event it serves and
what to send.

Plain values: no I/O, and nothing of the consumer beyond the contract types they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime
    from typing import Any

    from consumer.events import OrderEvent
    from consumer.outcomes import Status
    from consumer.service.dispatch import DispatchResult
    from consumer.types import TP


@dataclass(slots=True, eq=False)
class Pending:
    """One input event between intake and its acknowledged outcome."""

    event: OrderEvent
    tp: TP
    received_at: datetime
    started: float
    deadline: float
    ops_left: int
    operation: Literal["upsert", "delete", "action"]
    action: str | None = None
    revision: int | None = None
    status: Status | None = None
    reason: str | None = None
    detail: str | None = None
    http_status: int | None = None
    version_tag: str | None = None
    attempts: int = 0
    engage_ms: float = 0.0
    #: its partition went to another member, who answers it: it gets no outcome here
    abandoned: bool = False
    #: the intent of its action was recorded (commit soon once it finished)
    intended: bool = False
    #: state-topic records (orderId, value) its writes left; published before its outcome
    remembered: list[tuple[str, bytes]] = field(default_factory=list)
    #: how its action reached Engage: on its own (``separate``) or in a write (``embedded``)
    delivery: Literal["separate", "embedded"] | None = None


@dataclass(slots=True, eq=False)
class OpRef:
    """The token the book carries for one operation: its event and what to send.

    Compared and hashed by identity (``eq=False``): each op is its own token.
    """

    pending: Pending
    role: Literal["write", "action"]
    body: Mapping[str, Any] | None = None
    action: str | None = None
    language: str | None = None
    data: Mapping[str, Any] | None = None
    result: DispatchResult | None = field(default=None, repr=False)


def op_partition(ref: OpRef) -> TP:
    """The partition of the event an op serves: the order book's lane for it."""
    return ref.pending.tp
