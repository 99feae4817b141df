"""The values the order book trades in: ops in, effects out, and a snapshot for tests.

Ops are small on purpose: the runner keeps the payloads (order body, action name and data) keyed
by ``token`` and the book only sees what ordering and gating need.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

if TYPE_CHECKING:
    from consumer.orders_records import State

#: What the runner reports for an op it sent. ``unknown`` means the call may have taken effect.
ResultStatus: TypeAlias = Literal["accepted", "rejected", "failed", "unknown"]
#: What a Settle says: the runner's status for sent ops, or the book's own verdict.
SettleStatus: TypeAlias = Literal["accepted", "rejected", "failed", "skipped", "unknown"]


# -- ops (inputs) ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Write:
    """Store or delete the order: ``order.upserted``, ``order.deleted``, a lifecycle snapshot.

    ``token`` is the runner's handle (hashable; unique among the order's live ops); the payload
    stays with the runner. ``deadline`` is an absolute clock time after which an unsent op fails.
    """

    token: object
    kind: Literal["upsert", "delete"]
    revision: int | None = None
    deadline: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Action:
    """Post an action: ``order.action`` or the action part of a lifecycle event.

    With ``min_revision`` n the action waits for a confirmed write with revision >= n instead of
    depending on the write before it in the stream.
    """

    token: object
    min_revision: int | None = None
    deadline: float


Op: TypeAlias = Write | Action


# -- effects (outputs) ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SendWrite:
    """Write the order. ``exists``: Engage has it (True), has not (False), or unknown (None)."""

    order_id: str
    op: Write
    exists: bool | None


@dataclass(frozen=True, kw_only=True, slots=True)
class SendAction:
    """Post the action with ``tag``, the versionTag of the order's latest processed write."""

    order_id: str
    op: Action
    tag: str


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchTag:
    """GET the order to learn its current versionTag; report with ``tag_learned``."""

    order_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Settle:
    """The op is finished: the runner records its outcome. ``tag`` is the tag used or learned."""

    order_id: str
    token: object
    status: SettleStatus
    reason: str | None
    tag: str | None = None


Effect: TypeAlias = SendWrite | SendAction | FetchTag | Settle


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderSnapshot:
    """What the book knows about one order, for tests and debugging (tokens, not ops)."""

    order_id: str
    tracked: bool
    state: State
    tag: str | None
    revision: int | None
    floor: int | None
    exists: bool | None
    queued: tuple[object, ...]
    parked: tuple[object, ...]
    writing: object | None
    acting: tuple[object, ...]
