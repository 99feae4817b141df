"""The committer and the intent log against fakes of their two Kafka seams (no broker).

What they guarantee: a commit carries exactly the positions (and metadata) that moved; a failed
commit is retried and marks nothing; an action's intent is durable before ``record`` returns;
intents recorded while a commit is on the wire share the next one; a revoked partition's intent
is refused; in transactional mode the staged records' offsets commit with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import pytest

from consumer.errors import CommitFailed, TransactionFailed
from consumer.metrics import Metrics
from consumer.offsets import OffsetTracker, decode_metadata
from consumer.service.commits import Committer, IntentLog

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from consumer.types import TP

TP0: TP = ("orders", 0)
TP1: TP = ("orders", 1)


@dataclass
class FakeOffsets:
    """The group's offset commits: kept in a list; can fail or wait when told to."""

    commits: list[dict[TP, tuple[int, str]]] = field(default_factory=list)
    failures: int = 0
    gate: anyio.Event | None = None
    #: set while a commit waits at the gate
    waiting: anyio.Event = field(default_factory=anyio.Event)

    async def commit(self, positions: Mapping[TP, tuple[int, str]]) -> None:
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise CommitFailed("coordinator not available")
        self.commits.append(dict(positions))


@dataclass
class FakeTransactions:
    """Staged outcome records (each the input offset it finishes, or None) and transactions."""

    staged: list[tuple[TP, int] | None] = field(default_factory=list)
    taken: list[tuple[TP, int] | None] = field(default_factory=list)
    transactions: list[tuple[int, dict[TP, tuple[int, str]]]] = field(default_factory=list)
    fail: bool = False

    def take(self) -> list[tuple[TP, int] | None]:
        self.taken, self.staged = self.taken + self.staged, []
        return list(self.taken)

    async def commit(self, *, positions: Mapping[TP, tuple[int, str]], group_id: str) -> None:
        assert group_id == "group"
        if self.fail:
            raise TransactionFailed("fenced")
        self.transactions.append((len(self.taken), dict(positions)))
        self.taken = []


def tracker_with(*offsets: tuple[TP, int]) -> OffsetTracker:
    tracker = OffsetTracker()
    for tp, offset in offsets:
        tracker.assign(tp)
        tracker.received(tp, offset)
    return tracker


def committer(
    tracker: OffsetTracker,
    offsets: FakeOffsets | None = None,
    transactions: FakeTransactions | None = None,
) -> Committer:
    return Committer(
        tracker=tracker,
        metrics=Metrics(process=False),
        group_id="group",
        offsets=offsets or FakeOffsets(),
        transactions=transactions,
    )


@pytest.fixture
async def running_log() -> AsyncIterator[tuple[IntentLog, FakeOffsets, OffsetTracker, set[TP]]]:
    """An intent log with its loop running, over two owned partitions with ten records each."""
    tracker = tracker_with(*((tp, n) for tp in (TP0, TP1) for n in range(10)))
    offsets = FakeOffsets()
    owned = {TP0, TP1}
    log = IntentLog(
        committer=committer(tracker, offsets),
        tracker=tracker,
        owns=owned.__contains__,
        retry_delay=0.01,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(log.run)
        yield log, offsets, tracker, owned
        tg.cancel_scope.cancel()


def intents_of(position: tuple[int, str]) -> set[int]:
    offset, metadata = position
    return decode_metadata(offset, metadata)[1]


# -- Committer ------------------------------------------------------------------------------


async def test_only_moved_positions_are_committed_and_each_once() -> None:
    """Finished offsets move the position; a second commit with nothing new sends nothing."""
    tracker = tracker_with((TP0, 0), (TP0, 1), (TP1, 0))
    offsets = FakeOffsets()
    commits = committer(tracker, offsets)
    tracker.finished(TP0, 0)
    tracker.finished(TP1, 0)
    assert await commits.commit_now() is True
    assert await commits.commit_now() is True
    assert offsets.commits == [{TP0: (1, "ec1:"), TP1: (1, "ec1:")}]
    assert commits.commits == 1


async def test_finished_offsets_above_a_gap_travel_in_the_metadata() -> None:
    """Offset 0 unfinished, 1 and 2 finished: the position stays at 0, the metadata names 1-2."""
    tracker = tracker_with((TP0, 0), (TP0, 1), (TP0, 2))
    offsets = FakeOffsets()
    tracker.finished(TP0, 1)
    tracker.finished(TP0, 2)
    assert await committer(tracker, offsets).commit_now() is True
    ((position,),) = [list(c.values()) for c in offsets.commits]
    assert position[0] == 0
    assert decode_metadata(*position) == ({1, 2}, set())


async def test_a_failed_commit_marks_nothing_and_the_next_one_sends_it_again() -> None:
    """Kafka refused: False, and the same position goes out with the next call."""
    tracker = tracker_with((TP0, 0))
    offsets = FakeOffsets(failures=1)
    commits = committer(tracker, offsets)
    tracker.finished(TP0, 0)
    assert await commits.commit_now() is False
    assert (offsets.commits, commits.commits) == ([], 0)
    assert await commits.commit_now() is True
    assert (offsets.commits, commits.commits) == ([{TP0: (1, "ec1:")}], 1)


async def test_a_transaction_carries_the_staged_records_and_the_offsets_they_finish() -> None:
    """Two staged outcomes finish offsets 0 and 1: one transaction commits position 2."""
    tracker = tracker_with((TP0, 0), (TP0, 1))
    transactions = FakeTransactions(staged=[(TP0, 0), None, (TP0, 1)])
    commits = committer(tracker, transactions=transactions)
    assert await commits.commit_now() is True
    assert transactions.transactions == [(3, {TP0: (2, "ec1:")})]
    assert await commits.commit_now() is True
    assert len(transactions.transactions) == 1, "nothing staged, nothing moved: no transaction"


async def test_a_record_that_finishes_no_offset_still_gets_its_transaction() -> None:
    """A dead letter waits for its transaction before its outcome is written: it must commit."""
    tracker = tracker_with((TP0, 0))
    transactions = FakeTransactions(staged=[None])
    assert await committer(tracker, transactions=transactions).commit_now() is True
    assert transactions.transactions == [(1, {TP0: (0, "ec1:")})]


async def test_a_failed_transaction_stops_the_service() -> None:
    """A transaction that did not commit raises: the tracker is ahead of Kafka now."""
    tracker = tracker_with((TP0, 0))
    transactions = FakeTransactions(staged=[(TP0, 0)], fail=True)
    with pytest.raises(TransactionFailed):
        await committer(tracker, transactions=transactions).commit_now()


# -- IntentLog ------------------------------------------------------------------------------


async def test_an_intent_is_committed_before_record_returns(
    running_log: tuple[IntentLog, FakeOffsets, OffsetTracker, set[TP]],
) -> None:
    """``record`` returns True only after a commit whose metadata names the intent."""
    log, offsets, _tracker, _owned = running_log
    with anyio.fail_after(5):
        assert await log.record(TP0, 3) is True
    assert [intents_of(c[TP0]) for c in offsets.commits] == [{3}]


async def test_intents_recorded_during_a_commit_share_the_next_one(
    running_log: tuple[IntentLog, FakeOffsets, OffsetTracker, set[TP]],
) -> None:
    """One commit on the wire, four more intents meanwhile: two commits in all, not five."""
    log, offsets, _tracker, _owned = running_log
    offsets.gate = anyio.Event()
    results: list[bool] = []

    async def record(tp: TP, offset: int) -> None:
        results.append(await log.record(tp, offset))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(record, TP0, 1)
            await offsets.waiting.wait()
            for tp, offset in ((TP0, 2), (TP0, 3), (TP1, 4), (TP1, 5)):
                tg.start_soon(record, tp, offset)
            await anyio.sleep(0.05)
            offsets.gate.set()
    assert results == [True] * 5
    assert len(offsets.commits) == 2
    last = offsets.commits[-1]
    assert (intents_of(last[TP0]), intents_of(last[TP1])) == ({1, 2, 3}, {4, 5})


async def test_a_failed_commit_is_retried_until_the_intent_is_durable(
    running_log: tuple[IntentLog, FakeOffsets, OffsetTracker, set[TP]],
) -> None:
    """Two refused commits, then one that goes through: the action waits, then may go."""
    log, offsets, _tracker, _owned = running_log
    offsets.failures = 2
    with anyio.fail_after(5):
        assert await log.record(TP1, 7) is True
    assert offsets.failures == 0
    assert [intents_of(c[TP1]) for c in offsets.commits] == [{7}]


async def test_an_intent_for_a_partition_revoked_while_waiting_is_refused(
    running_log: tuple[IntentLog, FakeOffsets, OffsetTracker, set[TP]],
) -> None:
    """The partition goes to another member before the commit lands: False, do not send."""
    log, offsets, _tracker, owned = running_log
    offsets.gate = anyio.Event()
    results: list[bool] = []

    async def record() -> None:
        results.append(await log.record(TP0, 2))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(record)
            await offsets.waiting.wait()
            owned.discard(TP0)
            log.partitions_revoked()
            await anyio.sleep(0.02)
            assert results == [False]
            offsets.gate.set()


async def test_an_intent_for_a_partition_never_ours_is_refused_at_once(
    running_log: tuple[IntentLog, FakeOffsets, OffsetTracker, set[TP]],
) -> None:
    """No tracked partition, no intent, no commit."""
    log, offsets, _tracker, _owned = running_log
    assert await log.record(("other", 0), 1) is False
    await anyio.sleep(0.02)
    assert offsets.commits == []


async def test_a_finished_action_leaves_the_metadata_with_the_next_commit(
    running_log: tuple[IntentLog, FakeOffsets, OffsetTracker, set[TP]],
) -> None:
    """``released`` commits soon: the intent is gone and the position moved past the offset."""
    log, offsets, tracker, _owned = running_log
    with anyio.fail_after(5):
        assert await log.record(TP0, 0) is True
        tracker.finished(TP0, 0)
        log.released()
        while len(offsets.commits) < 2:
            await anyio.sleep(0.005)
    assert offsets.commits[-1][TP0] == (1, "ec1:")
