"""The fence: no request goes to Engage for a partition this member may no longer own.

Ownership ends in two steps at a rebalance. Kafka calls the revocation hook while this member
still owns the partitions (the eager protocol hands them on only once every member has
returned from it), so the hook first *closes* them (``close``): no new work starts (a write,
or a retry of one), while requests that finish work under way (job polls, the tag read an
action waits for, the action itself) still go, so events nearly done are finished here and not
written again by the next owner. When the hook's bounded wait ends, the partitions are
*revoked* (``revoke``): every request not on the wire raises ``SendRefused``, and writes asleep
between job polls wake to find out. A request on the wire then finishes, and its outcome is
published; nothing after it goes out.

A member cut off from the group coordinator is told nothing: the coordinator drops it once
its session times out, and another member takes its partitions. So the member holds a
*lease*: valid for the session timeout (less a margin) after the last heartbeat the
coordinator answered was sent, i.e. it always ends before the coordinator's own timer can.
While the lease is out every request waits at the fence; when a heartbeat is answered again
the lease is renewed and they go on, and when the rejoin revokes the partitions they are
refused.

Pure bookkeeping on the event loop; the Kafka adapter reports heartbeats (``renew``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio

from consumer.errors import SendRefused

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from consumer.types import TP


class Fence:
    """Which partitions this member owns, and until when its group session surely holds.

    ``session_timeout`` is the group's; ``margin`` how long before it the lease ends (it must
    cover the time a heartbeat answer takes to come back, and then some).
    """

    def __init__(
        self,
        *,
        session_timeout: float,
        margin: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= margin < session_timeout:
            raise ValueError("need 0 <= margin < session_timeout")
        self._lease_length = session_timeout - margin
        self._clock = clock
        self._owned: set[TP] = set()
        #: owned partitions being revoked: only work under way may still send
        self._closing: set[TP] = set()
        self._lease_until = -1.0
        self._changed = anyio.Event()
        #: per owned partition: set when it closes (ends the wait of new work for a token)
        self._closed: dict[TP, anyio.Event] = {}
        #: per owned partition: set when it is revoked (wakes sleeping job polls)
        self._lost: dict[TP, anyio.Event] = {}

    # -- told by the rebalance hooks and the Kafka adapter ---------------------------------

    def grant(self, tps: Iterable[TP]) -> None:
        """Partitions were assigned: requests for them may go (the join renewed the session)."""
        for tp in tps:
            self._owned.add(tp)
            self._closing.discard(tp)
            self._closed[tp] = anyio.Event()
            self._lost[tp] = anyio.Event()
        self.renew(self._clock())

    def close(self, tps: Iterable[TP]) -> None:
        """A revocation began: no new work for ``tps``; work under way may finish."""
        for tp in tps:
            if tp in self._owned:
                self._closing.add(tp)
                self._closed[tp].set()
        self._notify()

    def revoke(self, tps: Iterable[TP]) -> None:
        """Partitions were revoked: refuse their requests not yet sent; wake their sleepers."""
        for tp in tps:
            self._owned.discard(tp)
            self._closing.discard(tp)
            for events in (self._closed, self._lost):
                event = events.pop(tp, None)
                if event is not None:
                    event.set()
        self._notify()

    def renew(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` (this clock) was answered: the session holds."""
        until = sent_at + self._lease_length
        if until > self._lease_until:
            expired = not self.lease_valid()
            self._lease_until = until
            if expired:
                self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    # -- asked before each request ----------------------------------------------------------

    def lease_valid(self) -> bool:
        """Whether the group session surely still holds (a metric and for the probes)."""
        return self._clock() < self._lease_until

    def owns(self, tp: TP) -> bool:
        """Whether ``tp`` is assigned here (the lease aside), closing or not."""
        return tp in self._owned

    def may_send(self, tp: TP, *, finishing: bool) -> bool:
        """Whether a request for ``tp`` may go now (``finishing``: it completes work under way)."""
        if tp not in self._owned or (tp in self._closing and not finishing):
            return False
        return self.lease_valid()

    async def clear(self, tp: TP, *, finishing: bool) -> None:
        """Return when a request for ``tp`` may go; raise ``SendRefused`` if it never may.

        Waits while the lease is out: the member may still own the partition, and it learns
        which when the coordinator answers again (renewed) or the rejoin revokes it.
        """
        while True:
            if tp not in self._owned:
                raise SendRefused(f"partition {tp[0]}-{tp[1]} is no longer this member's")
            if tp in self._closing and not finishing:
                raise SendRefused(f"partition {tp[0]}-{tp[1]} is being revoked: no new work")
            if self.lease_valid():
                return
            await self._changed.wait()

    def lost(self, tp: TP, *, finishing: bool = True) -> anyio.Event | None:
        """Set when a request for ``tp`` may no longer go (new work: already when it closes).

        None: ``tp`` is not owned now.
        """
        return (self._lost if finishing else self._closed).get(tp)

    def guard(self, tp: TP) -> FenceGuard:
        """The ``SendGuard`` of one call serving ``tp`` (the Engage client asks it per request)."""
        return FenceGuard(self, tp)


class FenceGuard:
    """Asks the fence, before each request of one call, whether its partition may still send."""

    __slots__ = ("_fence", "_tp")

    def __init__(self, fence: Fence, tp: TP) -> None:
        self._fence = fence
        self._tp = tp

    def ready(self, *, finishing: bool) -> bool:
        """Owned (not closing, unless it finishes work) and the lease holds: it goes at once."""
        return self._fence.may_send(self._tp, finishing=finishing)

    async def wait(self, *, finishing: bool) -> None:
        """Wait out a lapsed lease; ``SendRefused`` once the request may never go."""
        await self._fence.clear(self._tp, finishing=finishing)

    def lost(self, *, finishing: bool) -> anyio.Event | None:
        """Set once a request of this kind may no longer go (None: not owned now)."""
        return self._fence.lost(self._tp, finishing=finishing)
