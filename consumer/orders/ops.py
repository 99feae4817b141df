"""The values the order book trades in: the states, ops in, effects out, and a snapshot.

Ops are small on purpose: the runner keeps the payloads (order body, action name and data) in
its own ``token`` and the book only sees what ordering and gating need. Every value is generic
over that token's type (``T``), so the runner gets its own tokens back without a cast.

Pure values: imports nothing of the consumer.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Literal, TypeAlias, TypeVar

#: The runner's handle for one op: hashable, unique among the order's live ops.
T = TypeVar("T", bound=Hashable)


class State(StrEnum):
    """The states of one order (see the transition table in ``consumer.orders.book``)."""

    UNKNOWN = "unknown"
    FETCHING = "fetching"
    WRITING = "writing"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    ABSENT = "absent"


#: What the runner reports for an op it sent. ``unknown`` means the call may have taken effect.
ResultStatus: TypeAlias = Literal["accepted", "rejected", "failed", "unknown"]
#: What a Settle says: the runner's status for sent ops, or the book's own verdict.
SettleStatus: TypeAlias = Literal["accepted", "rejected", "failed", "skipped", "unknown"]


# -- ops (inputs) ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Write(Generic[T]):
    """Store or delete the order: ``order.upserted``, ``order.deleted``, a lifecycle snapshot.

    ``token`` is the runner's handle (hashable; unique among the order's live ops); the payload
    stays with the runner. ``deadline`` is an absolute clock time after which an unsent op fails.
    """

    token: T
    kind: Literal["upsert", "delete"]
    revision: int | None = None
    deadline: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Action(Generic[T]):
    """Post an action: ``order.action`` or the action part of a lifecycle event.

    With ``min_revision`` n the action waits for a confirmed write with revision >= n instead of
    depending on the write before it in the stream.
    """

    token: T
    min_revision: int | None = None
    deadline: float


Op: TypeAlias = Write[T] | Action[T]


# -- effects (outputs) ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class SendWrite(Generic[T]):
    """Write the order. ``exists``: Engage has it (True), has not (False), or unknown (None).

    ``embedded``: the action that rides in this write (embedded delivery): Engage runs it when
    the write's job succeeds, on exactly this write, so it needs no tag. Its result comes with
    the write's (``OrderBook.write_done``).
    """

    order_id: str
    op: Write[T]
    exists: bool | None
    embedded: Action[T] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SendAction(Generic[T]):
    """Post the action with ``tag``, the versionTag of the order's latest processed write."""

    order_id: str
    op: Action[T]
    tag: str


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchTag:
    """GET the order to learn its current versionTag; report with ``tag_learned``."""

    order_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Settle(Generic[T]):
    """The op is finished: the runner records its outcome. ``tag`` is the tag used or learned."""

    order_id: str
    token: T
    status: SettleStatus
    reason: str | None
    tag: str | None = None


Effect: TypeAlias = SendWrite[T] | SendAction[T] | FetchTag | Settle[T]
#: The effects that are calls to Engage (what the runner schedules).
Call: TypeAlias = SendWrite[T] | SendAction[T] | FetchTag


@dataclass(frozen=True, kw_only=True, slots=True)
class Knowledge:
    """What the book knows of one order in Engage, without anything queued or in flight.

    The state (``confirmed``, ``unknown``, ``absent``, ``failed``), the tag and the revision
    of the write behind it, the floor (the highest revision ever confirmed), whether Engage has
    the order, whether our own delete made it absent, and the revision of a failed write.
    It is what an idle order is kept as, and what another replica restores (``restore``).
    """

    state: State
    tag: str | None
    revision: int | None
    floor: int | None
    exists: bool | None
    deleted: bool = False
    failed_revision: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderSnapshot(Generic[T]):
    """What the book knows about one order, for inspection and tests (tokens, not ops)."""

    order_id: str
    tracked: bool
    state: State
    tag: str | None
    revision: int | None
    floor: int | None
    exists: bool | None
    queued: tuple[T, ...]
    parked: tuple[T, ...]
    writing: T | None
    acting: tuple[T, ...]
    #: the action riding in the write in flight (embedded delivery)
    riding: T | None = None
