"""Which offsets may be committed: per partition, the highest offset below which all is finished.

Records of one partition finish out of order (one slow order never holds its partition), so the
committable position is the lowest offset still unfinished. Offsets that finished above it are
not lost on a restart: ``encode_finished`` packs them into the commit metadata string (as
Confluent's Parallel Consumer does), and a new owner of the partition skips them
(``decode_finished``). The encoding is run-lengths of finished/unfinished stretches relative to
the committed offset, base-36, which stays far below Kafka's default 4 KiB metadata limit for
any realistic spread; when it would not fit, it is truncated to the longest prefix that does
(the rest is simply processed again: at least once, never lost).

Pure: no Kafka here; the runner feeds offsets in and takes commit positions out.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

METADATA_PREFIX: Final = "ec1:"
#: Kafka's default offset.metadata.max.bytes is 4096; leave room for the prefix.
METADATA_LIMIT: Final = 3800


@dataclass(slots=True)
class PartitionOffsets:
    """The offsets of one partition between the committed position and the newest seen."""

    #: offsets received and not yet finished, in arrival (= offset) order
    _pending: deque[int] = field(default_factory=deque)
    #: offsets finished while an older one is still pending
    _finished: set[int] = field(default_factory=set)
    #: the next offset to commit when nothing is pending
    _next: int | None = None

    def received(self, offset: int) -> None:
        """Note that the record at ``offset`` was taken in and will need an outcome."""
        self._pending.append(offset)

    def finished(self, offset: int) -> None:
        """Note that the outcome of ``offset`` is acknowledged; advance over finished offsets."""
        self._finished.add(offset)
        pending = self._pending
        while pending and pending[0] in self._finished:
            done = pending.popleft()
            self._finished.discard(done)
            self._next = done + 1

    def committable(self) -> int | None:
        """The offset to commit: the lowest unfinished one, or one past the newest finished."""
        if self._pending:
            return self._pending[0]
        return self._next

    def finished_above(self) -> list[int]:
        """Finished offsets above the committable position, ascending."""
        return sorted(self._finished)

    def in_flight(self) -> int:
        """How many received offsets still wait for their outcome."""
        return len(self._pending)


class OffsetTracker:
    """Per-partition offset bookkeeping for one consumer; keys are (topic, partition)."""

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], PartitionOffsets] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def assign(self, tp: tuple[str, int]) -> None:
        """Start tracking a newly assigned partition."""
        self._partitions.setdefault(tp, PartitionOffsets())

    def revoke(self, tp: tuple[str, int]) -> None:
        """Forget a partition: late completions for it are ignored and never committed."""
        self._partitions.pop(tp, None)
        self._committed.pop(tp, None)

    def received(self, tp: tuple[str, int], offset: int) -> None:
        """Note a record taken in."""
        self._partitions.setdefault(tp, PartitionOffsets()).received(offset)

    def finished(self, tp: tuple[str, int], offset: int) -> bool:
        """Note an acknowledged outcome; False when the partition is no longer ours."""
        part = self._partitions.get(tp)
        if part is None:
            return False
        part.finished(offset)
        return True

    def in_flight(self) -> int:
        """Records taken in whose outcome is not yet acknowledged, over all partitions."""
        return sum(p.in_flight() for p in self._partitions.values())

    def to_commit(self) -> dict[tuple[str, int], tuple[int, str]]:
        """Positions (and finished-offset metadata) that moved since the last ``mark_committed``."""
        out: dict[tuple[str, int], tuple[int, str]] = {}
        for tp, part in self._partitions.items():
            position = part.committable()
            if position is None:
                continue
            metadata = encode_finished(position, part.finished_above())
            if self._committed.get(tp) != position or metadata != METADATA_PREFIX:
                out[tp] = (position, metadata)
        return out

    def mark_committed(self, positions: dict[tuple[str, int], tuple[int, str]]) -> None:
        """Record that Kafka accepted these commits."""
        for tp, (position, _metadata) in positions.items():
            if tp in self._partitions:
                self._committed[tp] = position


def encode_finished(base: int, finished: list[int]) -> str:
    """Encode finished offsets above ``base`` as alternating run lengths (gap, done, gap, ...)."""
    runs: list[int] = []
    cursor = base
    for offset in finished:
        if offset < cursor:
            continue
        if runs and offset == cursor:
            runs[-1] += 1  # the last run is always a finished one: extend it
        else:
            runs.extend((offset - cursor, 1))
        cursor = offset + 1
    # Keep whole (gap, finished) pairs while they fit: a prefix is always a correct answer.
    parts: list[str] = []
    size = len(METADATA_PREFIX)
    for index in range(0, len(runs), 2):
        pair = (_b36(runs[index]), _b36(runs[index + 1]))
        grown = size + len(pair[0]) + len(pair[1]) + 2
        if grown > METADATA_LIMIT:
            break
        parts.extend(pair)
        size = grown
    return METADATA_PREFIX + ".".join(parts)


def decode_finished(base: int, metadata: str | None) -> set[int]:
    """The finished offsets above ``base`` that ``encode_finished`` packed; empty if unknown."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return set()
    body = metadata[len(METADATA_PREFIX) :]
    if not body:
        return set()
    try:
        runs = [int(part, 36) for part in body.split(".")]
    except ValueError:
        return set()
    finished: set[int] = set()
    cursor = base
    for index, length in enumerate(runs):
        if index % 2 == 1:
            finished.update(range(cursor, cursor + length))
        cursor += length
    return finished


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if n == 0:
        return "0"
    out = []
    while n:
        n, rem = divmod(n, 36)
        out.append(digits[rem])
    return "".join(reversed(out))
