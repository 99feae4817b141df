"""Committing offsets, and making an action's intent durable before the action is sent.

``Committer.commit_now`` commits every partition whose committable position or metadata moved
(``consumer.offsets`` computes both: the lowest unfinished offset, the finished offsets above it
and the intents). In transactional mode it writes the staged outcome records and those offsets
in one Kafka transaction instead. A plain commit that fails returns False and is retried by the
next call; a failed transaction raises ``TransactionFailed`` and stops the service, because the
tracker already counts its batch as finished.

``IntentLog`` is the crash-safety of actions: ``record(tp, offset)`` returns only once a commit
that carries the offset's intent succeeded, so a consumer that takes the partition over after a
crash knows the action may have been sent and does not send it again. Commits are shared: every
intent recorded while a commit is in flight rides on the next one, so a burst of actions costs
one commit round trip, not one each. Its loop is also the "commit soon" loop of transactional
mode (a staged outcome wakes it) and of finished intended actions (``released``).

Kafka itself is behind two small Protocols (``OffsetCommitter``, ``TransactionCommitter``;
``consumer.kafka`` implements them), so this module imports no Kafka client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import anyio

from consumer.errors import CommitFailed
from consumer.logs import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from consumer.metrics import Metrics
    from consumer.offsets import OffsetTracker
    from consumer.types import TP, Positions

log = get_logger("commits")


class OffsetCommitter(Protocol):
    """Commits positions for the consumer group (``consumer.kafka.GroupOffsets``)."""

    async def commit(self, positions: Mapping[TP, tuple[int, str]]) -> None:
        """Commit, or raise ``CommitFailed`` (nothing is known to be committed then)."""
        ...


class TransactionCommitter(Protocol):
    """Writes staged records and offsets in one transaction (``kafka.TransactionalSink``)."""

    def take(self) -> list[tuple[TP, int] | None]:
        """Close the batch of staged records; per record, the input offset it finishes."""
        ...

    async def commit(self, *, positions: Mapping[TP, tuple[int, str]], group_id: str) -> None:
        """Write the closed batch and ``positions`` in one transaction (``TransactionFailed``)."""
        ...


class Committer:
    """Commits what the offset tracker says is committable, one commit at a time."""

    def __init__(
        self,
        *,
        tracker: OffsetTracker,
        metrics: Metrics,
        group_id: str,
        offsets: OffsetCommitter,
        transactions: TransactionCommitter | None = None,
    ) -> None:
        self._tracker = tracker
        self._metrics = metrics
        self._group_id = group_id
        self._offsets = offsets
        self._transactions = transactions
        self._lock = anyio.Lock()
        #: commits Kafka accepted
        self.commits = 0

    async def commit_now(self) -> bool:
        """Commit every partition whose position or metadata moved; False if the commit failed.

        A failed commit is retried by the next call. Raises ``TransactionFailed`` when a
        transaction failed (the service must restart from committed state).
        """
        async with self._lock:
            if self._transactions is not None:
                return await self._commit_transaction(self._transactions)
            positions = self._tracker.to_commit()
            if not positions:
                return True
            try:
                await self._offsets.commit(positions)
            except CommitFailed as exc:
                log.warning("commit failed; will retry", error=str(exc))
                return False
            self._committed(positions)
            return True

    async def _commit_transaction(self, transactions: TransactionCommitter) -> bool:
        """Write the staged outcomes and the offsets they finish in one Kafka transaction."""
        staged = transactions.take()
        for finishes in staged:
            if finishes is not None:
                self._tracker.finished(*finishes)
        positions = self._tracker.to_commit()
        if not staged and not positions:
            return True
        # A failure raises TransactionFailed, which stops the service: the tracker already
        # counts this batch as finished, so carrying on could skip its offsets.
        await transactions.commit(positions=positions, group_id=self._group_id)
        self._committed(positions)
        return True

    def _committed(self, positions: Positions) -> None:
        log.debug(
            "committed",
            positions={f"{t}-{p}": [o, m] for (t, p), (o, m) in sorted(positions.items())},
        )
        self._tracker.mark_committed(positions)
        self._metrics.offsets_committed(positions)
        self.commits += 1


class IntentLog:
    """Makes "this action is about to be sent" durable before it is; the "commit soon" loop.

    ``owns(tp)`` says whether a partition is still this member's: an intent for one that is not
    is refused (``record`` returns False) and the action is not sent.
    """

    def __init__(
        self,
        *,
        committer: Committer,
        tracker: OffsetTracker,
        owns: Callable[[TP], bool],
        retry_delay: float = 0.05,
    ) -> None:
        self._committer = committer
        self._tracker = tracker
        self._owns = owns
        self._retry_delay = retry_delay
        # A waiter bumps _recorded and wakes the loop, which commits and publishes the highest
        # sequence number that a successful commit covered.
        self._recorded = 0
        self._durable = 0
        self._wakeup = anyio.Event()
        self._durable_changed = anyio.Event()

    async def record(self, tp: TP, offset: int) -> bool:
        """Return once a commit carries the intent for ``offset``; False if ``tp`` is not ours."""
        if not self._tracker.intend(tp, offset):
            return False
        self._recorded += 1
        mine = self._recorded
        self._wakeup.set()
        while self._durable < mine:
            if not self._owns(tp):
                return False
            await self._durable_changed.wait()
        return self._owns(tp)

    def released(self) -> None:
        """An intended action finished: commit without waiting, so its intent leaves soon."""
        self._wakeup.set()

    def wake(self) -> None:
        """Something is waiting to be committed (a staged transactional record)."""
        # Read the attribute at call time: the loop replaces the event after each wait.
        self._wakeup.set()

    def partitions_revoked(self) -> None:
        """Wake every waiter, so that those of revoked partitions give up (they must not send)."""
        self._notify()

    def _notify(self) -> None:
        changed, self._durable_changed = self._durable_changed, anyio.Event()
        changed.set()

    async def run(self) -> None:
        """Commit whenever woken; a failed commit is tried again after a growing delay.

        The delay starts at ``retry_delay`` and doubles up to a second: a group that is
        rebalancing refuses every commit until this member rejoins, and retrying every few
        milliseconds meanwhile only floods the coordinator and the log.
        """
        delay = self._retry_delay
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            covered = self._recorded
            if await self._committer.commit_now():
                self._durable = covered
                delay = self._retry_delay
            else:
                await anyio.sleep(delay)
                delay = min(delay * 2, 1.0)
                self._wakeup.set()
            self._notify()
