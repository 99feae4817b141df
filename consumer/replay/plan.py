"""Step two of a replay: with the records fetched, what goes where, in per-order order.

``plan_replay`` gets the records the candidates point at (fetched from the input topics by
position) and the marks of earlier replays found on the target topics, and decides the rest:
- a position an earlier replay already republished is excluded (running a replay twice
  replays each event once; the copy's own outcome decides whether it is done);
- a record gone from its topic (retention, compaction) is excluded, unless a full dead-letter
  copy of it exists, which is used instead;
- a record that is not the event the outcome names (the topic was recreated) is excluded;
- a write (upsert, delete, or an event with a snapshot) of an order that has a later accepted
  write is *superseded* and excluded unless ``include_superseded``: replaying it would put the
  older order back in Engage (or delete, or resurrect, the order).
The replays come back in per-order stream order: each order's records in their original offset
order (a copy counts at the place of the record it copies).

Pure: no I/O.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from consumer.replay.candidates import EXCLUSION_KINDS, WRITE_OPERATIONS, Excluded, stamp
from consumer.replay.records import peek_event, replay_headers

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

    from consumer.replay.candidates import AcceptedWrite, Candidate, Criteria, Selection
    from consumer.replay.records import KafkaRecord
    from consumer.results import RecordPosition


@dataclass(frozen=True, kw_only=True, slots=True)
class Replay:
    """One record to republish: where it goes, keyed and with headers as the original."""

    candidate: Candidate
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    from_dead_letter: bool
    writes: bool
    """The record writes the order (an upsert, a delete, or an event with a snapshot)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What a replay does: the records to republish, in order, and what it leaves out."""

    replays: list[Replay]
    excluded: list[Excluded]
    unmatched: int

    @property
    def unknown_actions(self) -> list[Replay]:
        """The replays that may run an action a second time (they need a confirmation)."""
        return [r for r in self.replays if r.candidate.unknown_action]


def plan_replay(
    selection: Selection,
    *,
    records: Mapping[RecordPosition, KafkaRecord],
    missing: Mapping[RecordPosition, str],
    copies: Mapping[RecordPosition, RecordPosition],
    criteria: Criteria,
    to_topic: str | None = None,
) -> Plan:
    """Step two: with the records fetched, what goes where, in per-order order.

    ``records`` holds the fetched input records by position and ``missing`` why the others
    could not be read; ``copies`` maps each position an earlier replay republished to its copy
    (``x-replay-of`` marks on the target topics). ``to_topic`` sends everything to one topic
    instead of each record's own.
    """
    replays: list[Replay] = []
    excluded = list(selection.excluded)
    # The writes actions need come last: whether they are needed depends on those actions.
    for chosen in sorted(selection.candidates, key=lambda c: bool(c.needed_by)):
        candidate = chosen
        if chosen.needed_by:
            needing = _needing(chosen, replays)
            if not needing:
                continue  # it was never asked for, and nothing going needs it
            candidate = replace(chosen, needed_by=needing)
        outcome = _replay_or_exclusion(
            candidate,
            selection=selection,
            records=records,
            missing=missing,
            copies=copies,
            criteria=criteria,
            to_topic=to_topic,
        )
        if isinstance(outcome, Excluded):
            excluded.append(outcome)
        else:
            replays.append(outcome)
    rank = {kind: n for n, kind in enumerate(EXCLUSION_KINDS)}
    excluded.sort(key=lambda e: (rank[e.kind], e.candidate.order_id, e.candidate.position))
    return Plan(replays=in_stream_order(replays), excluded=excluded, unmatched=selection.unmatched)


def in_stream_order(replays: Sequence[Replay]) -> list[Replay]:
    """The replays grouped by order, each order's in its original stream order.

    Within an order, records of one partition keep their original offset order; records of
    several topics are merged by receipt (Kafka orders nothing across partitions). A copy
    counts at the place of the record it copies.
    """
    by_order: dict[str, dict[tuple[str, int], list[Replay]]] = {}
    for replay in replays:
        tp = replay.candidate.place.position.tp
        by_order.setdefault(replay.candidate.order_id, {}).setdefault(tp, []).append(replay)
    streams: list[list[Replay]] = []
    for per_tp in by_order.values():
        runs = [sorted(run, key=lambda r: r.candidate.place.position) for run in per_tp.values()]
        # heapq.merge keeps each run's own order, whatever the keys inside it say.
        streams.append(list(heapq.merge(*runs, key=_receipt)))
    streams.sort(key=lambda stream: _receipt(stream[0]))
    return [replay for stream in streams for replay in stream]


def _receipt(replay: Replay) -> tuple[datetime, RecordPosition]:
    place = replay.candidate.place
    return (place.received_at, place.position)


def _replay_or_exclusion(
    candidate: Candidate,
    *,
    selection: Selection,
    records: Mapping[RecordPosition, KafkaRecord],
    missing: Mapping[RecordPosition, str],
    copies: Mapping[RecordPosition, RecordPosition],
    criteria: Criteria,
    to_topic: str | None,
) -> Replay | Excluded:
    position = candidate.position
    copy = copies.get(position)
    if copy is not None:
        return Excluded(
            candidate=candidate,
            kind="already_replayed",
            detail=f"an earlier replay republished it as {copy}; its outcome decides",
        )
    letter = candidate.dead_letter
    record = records.get(position)
    from_dead_letter = False
    if record is None:
        why = missing.get(position, "not found")
        if letter is None or letter.truncated:
            backup = "" if letter is None else " (its dead-letter copy is truncated)"
            return Excluded(candidate=candidate, kind="record_gone", detail=f"{why}{backup}")
        key, value, headers = letter.key, letter.value, list(letter.original_headers)
        from_dead_letter = True
    else:
        key, value, headers = record.key, record.value, list(record.headers)
    peek = peek_event(value)
    other = _other_record(candidate, peek.event_id, value, from_dead_letter=from_dead_letter)
    if other is not None:
        return Excluded(candidate=candidate, kind="other_record", detail=other)
    # The record says best whether it writes; an unreadable one, what its outcomes did.
    writes = peek.writes
    if writes is None:
        writes = bool(candidate.operations & WRITE_OPERATIONS)
    if writes and not criteria.include_superseded:
        writes_of_order = selection.accepted_writes.get(candidate.order_id, [])
        newer = _superseding(candidate, writes_of_order, records)
        if newer is not None:
            return Excluded(
                candidate=candidate,
                kind="superseded",
                detail=(
                    f"a later write of the order was accepted ({newer.event_id}, input "
                    f"{newer.place.position}, at {stamp(newer.time)}): replaying this one would "
                    "put the older order back in Engage (--include-superseded to send it anyway)"
                ),
            )
    return Replay(
        candidate=candidate,
        topic=to_topic or position.topic,
        partition=position.partition,
        key=key,
        value=value,
        headers=replay_headers(headers, of=position),
        from_dead_letter=from_dead_letter,
        writes=writes,
    )


def _other_record(
    candidate: Candidate, event_id: str | None, value: bytes | None, *, from_dead_letter: bool
) -> str | None:
    """Why the record at the candidate's position is not its event (None: it is)."""
    if candidate.event_id is not None and event_id is not None and event_id != candidate.event_id:
        return (
            f"the record at {candidate.position} is event {event_id!r}, not "
            f"{candidate.event_id!r} (was the topic recreated?)"
        )
    letter = candidate.dead_letter
    if (
        not from_dead_letter
        and letter is not None
        and not letter.truncated
        and letter.value != value
    ):
        return f"the record at {candidate.position} differs from its dead-letter copy"
    return None


def _needing(candidate: Candidate, replays: Sequence[Replay]) -> tuple[str, ...]:
    """The actions going again that need this write: those without a snapshot of their own."""
    without = {r.candidate.event_id or str(r.candidate.position) for r in replays if not r.writes}
    return tuple(dependent for dependent in candidate.needed_by if dependent in without)


def _superseding(
    candidate: Candidate,
    writes: Sequence[AcceptedWrite],
    records: Mapping[RecordPosition, KafkaRecord],
) -> AcceptedWrite | None:
    """The latest accepted write of the candidate's order that came after it in the stream.

    A lifecycle event counts when its record carries a snapshot, or cannot be read: leaving
    a write out wrongly is a line in the listing, replaying it wrongly a rollback in Engage.
    """
    newer: AcceptedWrite | None = None
    for write in writes:
        if write.event_id is not None and write.event_id == candidate.event_id:
            continue
        if not write.certain:
            record = records.get(write.position)
            if record is not None and peek_event(record.value).writes is False:
                continue
        if write.place.is_after(candidate.place) and (
            newer is None or write.place.is_after(newer.place)
        ):
            newer = write
    return newer
