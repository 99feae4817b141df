"""The call scheduler: Engage calls wait here for one of a bounded number of places.

A call the order book asked for (a write, an action, a tag read) is queued in the order it became
ready and started as its own task once a place is free. Calls wait here rather than inside the
dispatcher: a call's deadline starts when it starts, and a backlog costs a deque entry per call
instead of a task blocked on a limiter.

One place per request slot of the dispatcher's gate (in flight plus polls), so that a started
call rarely waits there with its deadline running: a larger bound let hundreds of calls wait in
the gate under a rate budget shrunk by 429s until their deadlines passed. A write waiting for
its job gives its place back between polls (``wait_between_polls``) and is served first when it
wants one again; holding it through the job capped writes at ~60/s with 1.5 s jobs.

Holding: while partitions are being revoked, calls of those partitions that have not started
stay here (``hold``); a call that never started cannot have reached Engage, so holding it back
is always safe. Running calls go on. A drain holds only calls that would start new work
(``hold_new_work``): an action whose write is confirmed still goes, so its event is finished
here instead of being written again by the next owner.

Knows nothing of Kafka, Engage or the book: the pipeline hands in how to run a call, which
partition it serves and whether it is still wanted. Imports nothing of the consumer but types.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable

    from anyio.abc import TaskGroup

    from consumer.types import TP

C = TypeVar("C")


class CallScheduler(Generic[C]):
    """Starts calls on at most ``places`` places, oldest first; holds those of held partitions.

    ``run`` carries out one call; ``partition_of`` names the partition a call serves (None: it
    serves an order, not one event, and is never held); ``withdrawn`` says whether a call is no
    longer wanted (its event was abandoned), and ``release`` is told of such a call instead of
    running it.
    """

    def __init__(
        self,
        *,
        places: int,
        task_group: TaskGroup,
        run: Callable[[C], Awaitable[None]],
        partition_of: Callable[[C], TP | None],
        withdrawn: Callable[[C], bool],
        release: Callable[[C], None],
        finishes: Callable[[C], bool] = lambda _call: False,
    ) -> None:
        if places < 1:
            raise ValueError(f"places must be at least 1, not {places}")
        self.places = places
        self._tasks = task_group
        self._run = run
        self._partition_of = partition_of
        self._withdrawn = withdrawn
        self._release = release
        self._finishes = finishes
        #: calls waiting for a place, in the order they became ready
        self.queued: deque[C] = deque()
        #: writes done sleeping between job polls, waiting for a place back (served first)
        self.waiting_to_poll: deque[anyio.Event] = deque()
        #: places taken: calls started, less the writes sleeping between polls
        self.places_taken = 0
        #: calls running, per partition of the event they serve (None: a tag read)
        self.running_per_partition: dict[TP | None, int] = {}
        #: calls that became ready while their partition was held
        self.held_calls: list[C] = []
        self.held_partitions: set[TP] = set()
        self.all_held = False
        #: draining: only calls that finish work under way start (``finishes``)
        self.only_finishing = False
        #: partitions being revoked: only their calls that finish work under way start
        self.closing_partitions: set[TP] = set()

    # -- starting ---------------------------------------------------------------------------

    def submit(self, call: C) -> None:
        """Queue a call and start what the free places allow (held calls wait)."""
        if self._is_held(call):
            self.held_calls.append(call)
            return
        self.queued.append(call)
        self._pump()

    def _pump(self) -> None:
        """Start queued calls while places are free; a write back for its next poll goes first."""
        while self.waiting_to_poll and self.places_taken < self.places:
            # Work already under way goes first: its deadlines are the oldest.
            self.places_taken += 1
            self.waiting_to_poll.popleft().set()
        while self.queued and self.places_taken < self.places:
            call = self.queued.popleft()
            if self._withdrawn(call):
                self._release(call)
                continue
            if self._is_held(call):
                self.held_calls.append(call)
                continue
            tp = self._partition_of(call)
            self.places_taken += 1
            self.running_per_partition[tp] = self.running_per_partition.get(tp, 0) + 1
            self._tasks.start_soon(self._run_in_place, call, tp)

    async def _run_in_place(self, call: C, tp: TP | None) -> None:
        try:
            await self._run(call)
        finally:
            self.running_per_partition[tp] -= 1
            self.places_taken -= 1
            self._pump()

    # -- a write between two job polls ------------------------------------------------------

    async def wait_between_polls(self, seconds: float, *, until: anyio.Event | None = None) -> None:
        """Sleep between two polls of a job without holding a place: nothing is sent meanwhile.

        ``until`` ends the sleep early when set (the partition was revoked: the next poll
        finds out at once that it may not go).
        """
        self.places_taken -= 1
        self._pump()
        try:
            if until is None:
                await anyio.sleep(seconds)
            else:
                with anyio.move_on_after(seconds):
                    await until.wait()
        finally:
            await self._take_place_back()

    async def _take_place_back(self) -> None:
        """Take a place back for the next poll, after the writes that asked before."""
        if self.places_taken < self.places and not self.waiting_to_poll:
            self.places_taken += 1
            return
        granted = anyio.Event()
        self.waiting_to_poll.append(granted)
        try:
            await granted.wait()
        finally:
            if not granted.is_set():
                # Cancelled while waiting: hold a place anyway, as the call's end gives one back.
                self.waiting_to_poll.remove(granted)
                self.places_taken += 1

    # -- holding ----------------------------------------------------------------------------

    def _is_held(self, call: C) -> bool:
        if self.all_held:
            return True
        tp = self._partition_of(call)
        if tp is not None and tp in self.held_partitions:
            return True
        closing = self.only_finishing or (tp is not None and tp in self.closing_partitions)
        return closing and not self._finishes(call)

    def hold(self, tps: set[TP] | None = None) -> None:
        """Start no new call (for ``tps``, or for every partition when None); running ones go on."""
        if tps is None:
            self.all_held = True
        else:
            self.held_partitions |= tps
        self._sort_queued()

    def hold_new_work(self, tps: set[TP] | None = None) -> None:
        """Start only calls that finish work under way (``finishes``), for ``tps`` or for all.

        The rule of a drain, and of partitions being revoked.
        """
        if tps is None:
            self.only_finishing = True
        else:
            self.closing_partitions |= tps
        self._sort_queued()

    def _sort_queued(self) -> None:
        queued, self.queued = self.queued, deque()
        for call in queued:
            (self.held_calls if self._is_held(call) else self.queued).append(call)

    def withdraw(self, tps: set[TP]) -> list[C]:
        """Take back every call not started for ``tps`` (held or queued); stop holding them.

        The caller releases them: their partitions are another member's now.
        """
        self.held_partitions -= tps
        self.closing_partitions -= tps
        taken: list[C] = []
        held, self.held_calls = self.held_calls, []
        for call in held:
            (taken if self._partition_of(call) in tps else self.held_calls).append(call)
        queued, self.queued = self.queued, deque()
        for call in queued:
            (taken if self._withdrawn(call) else self.queued).append(call)
        return taken

    def running(self, tps: Iterable[TP] | None = None) -> int:
        """Calls running now (serving ``tps``, or anything)."""
        if tps is None:
            return sum(self.running_per_partition.values())
        return sum(self.running_per_partition.get(tp, 0) for tp in tps)
