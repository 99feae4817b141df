"""What the order book remembers per order: a full record when busy, a compact value when idle.

Idle orders are most of the book (up to ``max_tracked``, e.g. a million), so their value is as
small as it can be: the bare tag string for a confirmed order without a revision, a ``(tag,
revision)`` pair when the revision is known, and a small frozen record for the rarer idle states
(failed, absent, unknown with some knowledge). An idle order that knows nothing is not kept at all.
Busy orders (bounded by the runner) get a full mutable ``Order``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeAlias

from consumer.orders.ops import Action, Knowledge, State, T, Write


@dataclass(frozen=True, kw_only=True, slots=True)
class Lapsed:
    """Stands in the queue where a write expired unsent.

    The actions that depend on that write must fail, not go with the tag of an older one.
    """

    revision: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class Parked(Generic[T]):
    """A revision-gated action waiting for its revision, with the time it started waiting."""

    action: Action[T]
    since: float


Queued: TypeAlias = Write[T] | Action[T] | Lapsed


class Order(Generic[T]):
    """The full, mutable record of a busy order.

    ``floor`` is the highest revision ever confirmed for the order (writes and deletes), kept
    across writes without a revision and across GETs; ``revision`` is the revision of the write
    behind ``tag`` when known.
    """

    __slots__ = (
        "acting",
        "before_write",
        "deleted",
        "exists",
        "failed_revision",
        "fetch_failed",
        "floor",
        "parked",
        "queue",
        "revision",
        "riding",
        "state",
        "tag",
        "write",
    )

    def __init__(self) -> None:
        self.state = State.UNKNOWN
        self.tag: str | None = None
        self.revision: int | None = None
        self.floor: int | None = None
        self.exists: bool | None = None
        # In ``absent``: did our delete make it so (True) or did a GET say 404 (False)?
        self.deleted = False
        # In ``failed``: the revision of the write that failed.
        self.failed_revision: int | None = None
        # A GET failed and no op arrived since: parked actions must not trigger another.
        self.fetch_failed = False
        self.queue: deque[Queued[T]] = deque()
        self.parked: list[Parked[T]] = []
        self.write: Write[T] | None = None
        # The state the order was in when that write was chosen (to choose again: reconsider).
        self.before_write = State.UNKNOWN
        # The action riding in that write (embedded delivery): in flight with it.
        self.riding: Action[T] | None = None
        # In-flight actions: token -> the tag they were sent with.
        self.acting: dict[T, str] = {}

    def become(
        self,
        state: State,
        *,
        exists: bool | None,
        tag: str | None = None,
        revision: int | None = None,
        deleted: bool = False,
        failed_revision: int | None = None,
    ) -> None:
        """Enter ``state``; every field that describes the state is set, none is left over."""
        self.state = state
        self.exists = exists
        self.tag = tag
        self.revision = revision
        self.deleted = deleted
        self.failed_revision = failed_revision

    def knowledge(self) -> Knowledge:
        """What this record knows about the order in Engage, as a value."""
        return Knowledge(
            state=self.state,
            tag=self.tag,
            revision=self.revision,
            floor=self.floor,
            exists=self.exists,
            deleted=self.deleted,
            failed_revision=self.failed_revision,
        )

    def is_idle(self) -> bool:
        """Nothing queued, parked or in flight (a GET in flight counts)."""
        return (
            not self.queue
            and not self.parked
            and self.write is None
            and not self.acting
            and self.state is not State.FETCHING
        )


#: What an idle order is kept as (see the module docstring); None: nothing worth keeping.
#: ``Knowledge`` serves the idle states the bare tag or the (tag, revision) pair cannot express.
Idle: TypeAlias = str | tuple[str, int] | Knowledge | None


def compact(order: Order[T]) -> Idle:
    """The smallest value that restores an idle ``order``; None when there is nothing to keep."""
    tag = order.tag
    if order.state is State.CONFIRMED and tag is not None:
        if order.revision is None and order.floor is None:
            return tag
        if order.revision is not None and order.revision == order.floor:
            return (tag, order.revision)
    if order.state is State.UNKNOWN and order.floor is None and order.exists is None:
        return None
    return order.knowledge()


def expand(value: Idle) -> Order[T]:
    """A full record from what ``compact`` kept (a fresh ``unknown`` one from None)."""
    order: Order[T] = Order()
    if value is None:
        return order
    if isinstance(value, str):
        order.become(State.CONFIRMED, exists=True, tag=value)
    elif isinstance(value, tuple):
        tag, revision = value
        order.become(State.CONFIRMED, exists=True, tag=tag, revision=revision)
        order.floor = revision
    else:
        assert isinstance(value, Knowledge)
        order.become(
            value.state,
            exists=value.exists,
            tag=value.tag,
            revision=value.revision,
            deleted=value.deleted,
            failed_revision=value.failed_revision,
        )
        order.floor = value.floor
    return order
