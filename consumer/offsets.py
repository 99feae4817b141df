"""Which offsets may be committed: per partition, the highest offset below which all is finished.

Records of one partition finish out of order (one slow order never holds its partition), so the
committable position is the lowest offset still unfinished. Offsets that finished above it are
not lost on a restart: ``encode_finished`` packs them into the commit metadata string (as
Confluent's Parallel Consumer does), and a new owner of the partition skips them
(``decode_finished``). The encoding is run-lengths of finished/unfinished stretches relative to
the committed offset, base-36, which stays far below Kafka's default 4 KiB metadata limit for
any realistic spread; when it would not fit, it is truncated to the longest prefix that does
(the rest is simply processed again: at least once, never lost).

The metadata also carries *intents*: offsets whose action is about to be (or was) sent to Engage.
An action is sent only after a commit recorded its intent, so a consumer that starts on the
partition after a crash knows which actions may already have reached Engage: it reports them as
``unknown`` instead of sending them a second time (actions are not idempotent: a second send is
a second email to a customer).

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
    #: offsets whose action may reach Engage before their outcome is acknowledged
    _intents: set[int] = field(default_factory=set)
    #: the same offsets as ``_pending``, for membership tests
    _open: set[int] = field(default_factory=set)

    def received(self, offset: int) -> None:
        """Note that the record at ``offset`` was taken in and will need an outcome."""
        self._pending.append(offset)
        self._open.add(offset)

    def intend(self, offset: int) -> None:
        """Note that the action of ``offset`` is about to be sent."""
        self._intents.add(offset)

    def intents(self) -> list[int]:
        """Offsets with a recorded intent and no acknowledged outcome yet, ascending."""
        return sorted(self._intents)

    def finished(self, offset: int) -> None:
        """Note that the outcome of ``offset`` is acknowledged; advance over finished offsets.

        Idempotent: an offset finished twice (the transactional path finishes it when its
        transaction commits, the pipeline again when its publish returns) counts once.
        """
        if offset not in self._open:
            return
        self._open.discard(offset)
        self._intents.discard(offset)
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
        self._committed: dict[tuple[str, int], tuple[int, str]] = {}

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

    def intend(self, tp: tuple[str, int], offset: int) -> bool:
        """Note an action about to be sent; False when the partition is no longer ours."""
        part = self._partitions.get(tp)
        if part is None:
            return False
        part.intend(offset)
        return True

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
            metadata = encode_metadata(position, part.finished_above(), part.intents())
            if self._committed.get(tp) != (position, metadata):
                out[tp] = (position, metadata)
        return out

    def mark_committed(self, positions: dict[tuple[str, int], tuple[int, str]]) -> None:
        """Record that Kafka accepted these commits."""
        for tp, committed in positions.items():
            if tp in self._partitions:
                self._committed[tp] = committed


def encode_finished(base: int, finished: list[int]) -> str:
    """Encode finished offsets above ``base`` (no intents); see ``encode_metadata``."""
    return encode_metadata(base, finished, [])


def encode_metadata(base: int, finished: list[int], intents: list[int]) -> str:
    """Pack finished offsets and intents above ``base`` into a commit metadata string.

    ``ec1:<finished runs>`` then, when there are intents, ``|<intent runs>``; runs alternate
    gap and length, base 36. Intents are packed first and are never truncated away (there are
    at most as many as actions in flight); finished offsets fill the rest of the size budget,
    truncated to a prefix if they must be: redoing finished work is safe, forgetting an intent
    is not.
    """
    intent_text = _encode_runs(base, intents, budget=METADATA_LIMIT) if intents else ""
    budget = METADATA_LIMIT - len(METADATA_PREFIX) - (len(intent_text) + 1 if intents else 0)
    text = METADATA_PREFIX + _encode_runs(base, finished, budget=budget)
    return f"{text}|{intent_text}" if intents else text


def _encode_runs(base: int, offsets: list[int], *, budget: int) -> str:
    runs: list[int] = []
    cursor = base
    for offset in offsets:
        if offset < cursor:
            continue
        if runs and offset == cursor:
            runs[-1] += 1  # the last run is always a marked one: extend it
        else:
            runs.extend((offset - cursor, 1))
        cursor = offset + 1
    # Keep whole (gap, length) pairs while they fit: a prefix is always a correct answer.
    parts: list[str] = []
    size = 0
    for index in range(0, len(runs), 2):
        pair = (_b36(runs[index]), _b36(runs[index + 1]))
        grown = size + len(pair[0]) + len(pair[1]) + 2
        if grown > budget:
            break
        parts.extend(pair)
        size = grown
    return ".".join(parts)


def decode_finished(base: int, metadata: str | None) -> set[int]:
    """The finished offsets above ``base`` that ``encode_metadata`` packed; empty if unknown."""
    return decode_metadata(base, metadata)[0]


def decode_metadata(base: int, metadata: str | None) -> tuple[set[int], set[int]]:
    """(finished offsets, intents) above ``base``; both empty for foreign or damaged metadata."""
    if not metadata or not metadata.startswith(METADATA_PREFIX):
        return set(), set()
    finished_text, _, intent_text = metadata[len(METADATA_PREFIX) :].partition("|")
    try:
        return _decode_runs(base, finished_text), _decode_runs(base, intent_text)
    except ValueError:
        return set(), set()


def _decode_runs(base: int, body: str) -> set[int]:
    if not body:
        return set()
    runs = [int(part, 36) for part in body.split(".")]
    marked: set[int] = set()
    cursor = base
    for index, length in enumerate(runs):
        if index % 2 == 1:
            marked.update(range(cursor, cursor + length))
        cursor += length
    return marked


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if n == 0:
        return "0"
    out = []
    while n:
        n, rem = divmod(n, 36)
        out.append(digits[rem])
    return "".join(reversed(out))
