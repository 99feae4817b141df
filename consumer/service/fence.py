"""The fence: no request goes to Engage for a partition this member may no longer own.

Ownership ends two ways. A revocation says so (the rebalance hook); ``revoke`` then makes every
request of those partitions that has not gone out raise ``SendRefused``, and wakes the writes
sleeping between job polls so they find out at once instead of at their next poll. A member cut
off from the group coordinator is not told anything: the coordinator drops it once its session
times out, and another member takes its partitions. So the member holds a *lease*: it is valid
for the session timeout (less a margin) after the last heartbeat the coordinator answered was
sent, i.e. it always ends before the coordinator's own timer can. While the lease is out, every
request waits at the fence; when a heartbeat is answered again the lease is renewed and they go
on, and when the rejoin revokes the partitions they are refused.

A request already on the wire when ownership ended finishes, and its outcome is published:
only what comes after it is held back.

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
        self._lease_until = -1.0
        self._changed = anyio.Event()
        #: per owned partition: set when it is revoked (wakes sleeping job polls)
        self._lost: dict[TP, anyio.Event] = {}

    # -- told by the rebalance hooks and the Kafka adapter ---------------------------------

    def grant(self, tps: Iterable[TP]) -> None:
        """Partitions were assigned: requests for them may go (the join renewed the session)."""
        for tp in tps:
            self._owned.add(tp)
            self._lost[tp] = anyio.Event()
        self.renew(self._clock())

    def revoke(self, tps: Iterable[TP]) -> None:
        """Partitions were revoked: refuse their requests not yet sent; wake their sleepers."""
        for tp in tps:
            self._owned.discard(tp)
            lost = self._lost.pop(tp, None)
            if lost is not None:
                lost.set()
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
        """Whether ``tp`` is assigned here (the lease aside)."""
        return tp in self._owned

    async def clear(self, tp: TP) -> None:
        """Return when a request for ``tp`` may go; raise ``SendRefused`` if it never may.

        Waits while the lease is out: the member may still own the partition, and it learns
        which when the coordinator answers again (renewed) or the rejoin revokes it.
        """
        while True:
            if tp not in self._owned:
                raise SendRefused(f"partition {tp[0]}-{tp[1]} is no longer this member's")
            remaining = self._lease_until - self._clock()
            if remaining > 0:
                return
            await self._changed.wait()

    def lost(self, tp: TP) -> anyio.Event | None:
        """An event set when ``tp`` is revoked (None: not owned now)."""
        return self._lost.get(tp)

    def guard(self, tp: TP) -> FenceGuard:
        """The ``SendGuard`` of one call serving ``tp`` (the Engage client asks it per request)."""
        return FenceGuard(self, tp)


class FenceGuard:
    """Asks the fence, before each request of one call, whether its partition may still send."""

    __slots__ = ("_fence", "_tp")

    def __init__(self, fence: Fence, tp: TP) -> None:
        self._fence = fence
        self._tp = tp

    def ready(self) -> bool:
        """Owned and the lease holds: the request goes at once."""
        return self._fence.owns(self._tp) and self._fence.lease_valid()

    async def wait(self) -> None:
        """Wait out a lapsed lease; ``SendRefused`` once the partition is revoked."""
        await self._fence.clear(self._tp)
