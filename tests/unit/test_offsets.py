"""The offset tracker commits only below the lowest unfinished offset, and packs the rest."""

from hypothesis import given
from hypothesis import strategies as st

from consumer.offsets import (
    METADATA_PREFIX,
    OffsetTracker,
    PartitionOffsets,
    decode_finished,
    decode_metadata,
    encode_finished,
    encode_metadata,
)

TP = ("orders", 0)


def test_commit_position_waits_for_lowest_unfinished() -> None:
    """Finishing 11 and 12 before 10 commits nothing past 10; finishing 10 jumps to 13."""
    part = PartitionOffsets()
    for offset in (10, 11, 12):
        part.received(offset)
    part.finished(11)
    part.finished(12)
    assert part.committable() == 10
    assert part.finished_above() == [11, 12]
    part.finished(10)
    assert part.committable() == 13
    assert part.finished_above() == []


def test_gaps_in_offsets_are_skipped() -> None:
    """Offsets need not be contiguous (compaction, transaction markers)."""
    part = PartitionOffsets()
    for offset in (5, 9, 20):
        part.received(offset)
    for offset in (5, 9, 20):
        part.finished(offset)
    assert part.committable() == 21


def test_revoked_partition_ignores_late_completions() -> None:
    """A completion that arrives after revoke is not tracked and never committed."""
    tracker = OffsetTracker()
    tracker.assign(TP)
    tracker.received(TP, 0)
    tracker.revoke(TP)
    assert tracker.finished(TP, 0) is False
    assert tracker.to_commit() == {}


def test_to_commit_reports_only_moved_positions() -> None:
    """After mark_committed, an unchanged position is not committed again."""
    tracker = OffsetTracker()
    tracker.assign(TP)
    tracker.received(TP, 0)
    tracker.finished(TP, 0)
    positions = tracker.to_commit()
    assert positions == {TP: (1, METADATA_PREFIX)}
    tracker.mark_committed(positions)
    assert tracker.to_commit() == {}


def test_metadata_carries_finished_offsets_above_position() -> None:
    """Finished offsets above the position round-trip through the commit metadata."""
    tracker = OffsetTracker()
    tracker.assign(TP)
    for offset in range(10):
        tracker.received(TP, offset)
    for offset in (3, 4, 7):
        tracker.finished(TP, offset)
    position, metadata = tracker.to_commit()[TP]
    assert position == 0
    assert decode_finished(position, metadata) == {3, 4, 7}


@given(st.integers(0, 10**12), st.sets(st.integers(0, 5000), max_size=300))
def test_encoding_round_trips(base: int, relative: set[int]) -> None:
    """Any set of finished offsets above the base decodes to itself."""
    finished = sorted(base + r for r in relative)
    assert decode_finished(base, encode_finished(base, finished)) == set(finished)


def test_oversized_metadata_is_truncated_to_a_prefix() -> None:
    """A spread too large for the metadata limit keeps a prefix: never a wrong offset."""
    finished = list(range(1, 40_000, 2))
    decoded = decode_finished(0, encode_finished(0, finished))
    assert decoded
    assert decoded <= set(finished)
    assert max(decoded) < max(finished)


def test_foreign_or_corrupt_metadata_means_nothing_finished() -> None:
    """Metadata written by another tool, or damaged, is ignored."""
    assert decode_finished(0, "") == set()
    assert decode_finished(0, "something else") == set()
    assert decode_finished(0, METADATA_PREFIX + "zz!") == set()


def test_intents_travel_in_metadata_until_their_outcome_is_acknowledged() -> None:
    """An intent is committed with the position and disappears once its offset finishes."""
    tracker = OffsetTracker()
    tracker.assign(TP)
    for offset in range(5):
        tracker.received(TP, offset)
    tracker.intend(TP, 2)
    tracker.intend(TP, 3)
    tracker.finished(TP, 4)
    position, metadata = tracker.to_commit()[TP]
    assert position == 0
    assert decode_metadata(position, metadata) == ({4}, {2, 3})
    tracker.mark_committed({TP: (position, metadata)})
    tracker.finished(TP, 2)
    position, metadata = tracker.to_commit()[TP]
    assert decode_metadata(position, metadata) == ({2, 4}, {3})


def test_unchanged_metadata_is_not_committed_again() -> None:
    """Same position and same metadata: nothing to commit; a new intent alone is a change."""
    tracker = OffsetTracker()
    tracker.assign(TP)
    for offset in range(3):
        tracker.received(TP, offset)
    tracker.finished(TP, 1)
    tracker.mark_committed(tracker.to_commit())
    assert tracker.to_commit() == {}
    tracker.intend(TP, 2)
    assert decode_metadata(*tracker.to_commit()[TP]) == ({1}, {2})


def test_intents_survive_when_finished_offsets_are_truncated() -> None:
    """Under the size limit, finished offsets give way; intents are always kept whole."""
    finished = list(range(1, 40_000, 2))
    intents = [50_000, 50_001, 60_000]
    decoded_finished, decoded_intents = decode_metadata(0, encode_metadata(0, finished, intents))
    assert decoded_intents == set(intents)
    assert decoded_finished <= set(finished)


@given(
    st.integers(0, 10**9),
    st.sets(st.integers(0, 3000), max_size=200),
    st.sets(st.integers(0, 3000), max_size=64),
)
def test_metadata_round_trips_finished_and_intents(
    base: int, finished: set[int], intents: set[int]
) -> None:
    """Both sets decode to themselves."""
    done = sorted(base + f for f in finished)
    intended = sorted(base + i for i in intents)
    assert decode_metadata(base, encode_metadata(base, done, intended)) == (
        set(done),
        set(intended),
    )


def test_finishing_twice_or_unknown_offsets_changes_nothing() -> None:
    """A second finish of one offset, or a finish of one never received, is ignored."""
    part = PartitionOffsets()
    for offset in (0, 1):
        part.received(offset)
    part.finished(1)
    part.finished(1)
    part.finished(7)
    assert part.committable() == 0
    assert part.finished_above() == [1]
    part.finished(0)
    part.finished(0)
    assert (part.committable(), part.finished_above()) == (2, [])
