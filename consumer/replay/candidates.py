"""Step one of a replay: the events the criteria choose, from the outcome history.

``select_candidates`` reads every record of the results topic and the dead letters, groups
them by event (the outcome ``source`` and the input's event id; a record without a readable id
is known by its position), and keeps the events whose latest outcome that matches the criteria
is not followed by an ``accepted`` one. It also excludes
- an event whose action Engage accepted at any time: a replay would send it twice;
- an ``unknown`` action (Engage may have run it) unless ``include_unknown``.
An action without a write of its own (``order.action``) whose order's write before it did not
land (its latest outcome ``failed`` or ``unknown``) would only fail again with
``write_failed``: that write comes along, whatever the criteria, marked ``needed_by`` (step two
drops it again when every action needing it carries a snapshot of its own: an outcome does
not say whether a lifecycle event had one, its record does).

An event's place in its order's stream is that of its original record: the input its first
outcome names (a copy is handled after the record it copies). "Later in the stream": the later
offset on one partition; across topics, the higher revision when both have one, else the later
receipt. What needs the records themselves is step two's (``consumer.replay.plan``).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from consumer.events import LIFECYCLE_TYPES

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from datetime import datetime

    from consumer.outcomes import Operation, Status
    from consumer.replay.records import DeadLetter
    from consumer.results import OutcomeRecord, RecordPosition

ExclusionKind = Literal[
    "accepted_later",
    "action_accepted",
    "unknown_action",
    "already_replayed",
    "record_gone",
    "other_record",
    "superseded",
]
#: The order exclusions are listed in, and the flag (if any) that lifts each.
EXCLUSION_KINDS: Final[tuple[ExclusionKind, ...]] = (
    "accepted_later",
    "action_accepted",
    "unknown_action",
    "already_replayed",
    "superseded",
    "record_gone",
    "other_record",
)
#: The operations that write the order: replaying an old one rolls the order back.
WRITE_OPERATIONS: Final = frozenset({"upsert", "delete"})


@dataclass(frozen=True, kw_only=True, slots=True)
class Criteria:
    """What to replay: outcome statuses and reasons, orders, input positions, a time window.

    Each filter left None lets everything through. Positions are those of the record that
    would be republished (the input the latest outcome names); the time is the outcome's.
    """

    statuses: frozenset[Status] = frozenset({"failed"})
    reasons: frozenset[str] | None = None
    orders: frozenset[str] | None = None
    topic: str | None = None
    partition: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    """Inclusive."""
    since: datetime | None = None
    until: datetime | None = None
    include_unknown: bool = False
    include_superseded: bool = False

    def admits(
        self, *, status: str, reason: str | None, position: RecordPosition, time: datetime
    ) -> bool:
        """Whether one outcome (or dead letter) matches every filter but the order's."""
        return (
            status in self.statuses
            and (self.reasons is None or (reason or "") in self.reasons)
            and (self.topic is None or position.topic == self.topic)
            and (self.partition is None or position.partition == self.partition)
            and (self.from_offset is None or position.offset >= self.from_offset)
            and (self.to_offset is None or position.offset <= self.to_offset)
            and (self.since is None or time >= self.since)
            and (self.until is None or time < self.until)
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class StreamPlace:
    """Where an event stands in its order's stream: its original record, revision, receipt.

    The original is the input its first outcome names: a copy a replay made is handled later,
    so its outcome comes later, and it keeps the place of the record it copies.
    """

    position: RecordPosition
    revision: int | None
    received_at: datetime

    def is_after(self, other: StreamPlace) -> bool:
        """Later in the stream than ``other``.

        By offset on one partition; across topics by revision when both have one, else by
        receipt (Kafka orders nothing across partitions).
        """
        if self.position.tp == other.position.tp:
            return self.position.offset > other.position.offset
        if self.revision is not None and other.revision is not None:
            return self.revision > other.revision
        return self.received_at > other.received_at


@dataclass(frozen=True, kw_only=True, slots=True)
class Candidate:
    """An event chosen by the criteria: the record to republish and the outcome that chose it."""

    position: RecordPosition
    """The record to republish: the input the choosing outcome names."""
    place: StreamPlace
    order_id: str
    event_id: str | None
    event_type: str | None
    status: str
    reason: str | None
    time: datetime
    operations: frozenset[str]
    """The operations its outcomes name (``upsert``, ``action``, ``delete``)."""
    unknown_action: bool
    """Its latest action outcome is ``unknown``: Engage may have run it."""
    dead_letter: DeadLetter | None = None
    needed_by: tuple[str, ...] = ()
    """Not chosen by the criteria, but the write these chosen actions depend on (event ids)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Excluded:
    """A candidate left out, with the rule that left it out and what the rule saw."""

    candidate: Candidate
    kind: ExclusionKind
    detail: str


@dataclass(frozen=True, kw_only=True, slots=True)
class AcceptedWrite:
    """A write of an order that Engage accepted: it supersedes the order's earlier writes."""

    event_id: str | None
    place: StreamPlace
    time: datetime
    """When it was accepted (the latest accepted outcome of the write)."""
    position: RecordPosition
    """The record that outcome names (a copy's, after a replay)."""
    certain: bool
    """False for a lifecycle event whose action was accepted: its outcome is its action's, and
    only its record says whether it carried a snapshot (a write) too."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Selection:
    """The first step's answer."""

    candidates: list[Candidate]
    excluded: list[Excluded]
    unmatched: int
    """Events none of whose outcomes matched the criteria."""
    accepted_writes: Mapping[str, list[AcceptedWrite]]
    """Per candidate order, its accepted writes (what may supersede a candidate)."""
    to_peek: frozenset[RecordPosition]
    """The records of uncertain accepted writes that may supersede a candidate: whether they
    wrote decides (fetch them with the candidates')."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Seen:
    """One outcome, or one dead letter without an outcome, of an event."""

    status: str
    reason: str | None
    position: RecordPosition
    time: datetime
    outcome: OutcomeRecord | None
    dead_letter: DeadLetter | None

    @property
    def operation(self) -> Operation | None:
        return None if self.outcome is None else self.outcome.operation

    def is_later_than(self, other: _Seen) -> bool:
        if self.outcome is not None and other.outcome is not None:
            return self.outcome.is_later_than(other.outcome)
        return self.time > other.time


@dataclass(kw_only=True, slots=True)
class _Event:
    order_id: str
    event_id: str | None
    event_type: str | None
    seen: list[_Seen] = field(default_factory=list)

    def writes(self) -> list[_Seen]:
        return [s for s in self.seen if s.operation in WRITE_OPERATIONS]

    def place(self) -> StreamPlace:
        first = _earliest(self.seen)
        assert first is not None  # an event exists because something of it was seen
        revision = next((s.outcome.revision for s in self.writes() if s.outcome), None)
        received = first.outcome.received_at if first.outcome is not None else None
        return StreamPlace(
            position=first.position, revision=revision, received_at=received or first.time
        )


def select_candidates(
    outcomes: Iterable[OutcomeRecord], dead_letters: Iterable[DeadLetter], criteria: Criteria
) -> Selection:
    """Step one: the events the criteria choose, from the outcome history and the dead letters.

    ``outcomes`` is every record of the results topic, repeats included: the history is what
    tells a failure that a replay already mended from one still open.
    """
    events = _events_of(outcomes, dead_letters)
    by_order: dict[str, list[_Event]] = {}
    for event in events:
        by_order.setdefault(event.order_id, []).append(event)
    candidates: list[Candidate] = []
    excluded: list[Excluded] = []
    taken: set[int] = set()
    considered = 0

    def take(event: _Event, chosen: _Seen, needed_by: tuple[str, ...] = ()) -> None:
        taken.add(id(event))
        candidate = _candidate(event, chosen, needed_by)
        why = _first_exclusion(event, chosen, candidate, criteria)
        if why is None:
            candidates.append(candidate)
        else:
            excluded.append(Excluded(candidate=candidate, kind=why[0], detail=why[1]))

    for event in events:
        if criteria.orders is not None and event.order_id not in criteria.orders:
            continue
        considered += 1
        chosen = _chosen(event, criteria)
        if chosen is not None:
            take(event, chosen)
    # An action behind a write that did not land fails again (write_failed) unless its write
    # goes again first: the write it depends on comes along, whatever the criteria say.
    needs: dict[int, tuple[_Event, _Seen, list[str]]] = {}
    for candidate in sorted(candidates, key=lambda c: (c.place.received_at, c.place.position)):
        needed = _write_needed(candidate, by_order[candidate.order_id])
        if needed is not None and id(needed[0]) not in taken:
            entry = needs.setdefault(id(needed[0]), (*needed, []))
            entry[2].append(candidate.event_id or str(candidate.position))
    for event, chosen, dependents in needs.values():
        take(event, chosen, needed_by=tuple(dependents))
    unmatched = considered - len(taken)
    accepted_writes = {
        c.order_id: _accepted_writes(by_order[c.order_id])
        for c in [*candidates, *(e.candidate for e in excluded)]
    }
    return Selection(
        candidates=candidates,
        excluded=excluded,
        unmatched=unmatched,
        accepted_writes=accepted_writes,
        to_peek=frozenset(
            write.position
            for c in candidates
            for write in accepted_writes[c.order_id]
            if not write.certain and write.place.is_after(c.place)
        ),
    )


def _events_of(
    outcomes: Iterable[OutcomeRecord], dead_letters: Iterable[DeadLetter]
) -> list[_Event]:
    """Outcomes and dead letters grouped by event."""
    events: dict[tuple[str, str], _Event] = {}
    invalid_at: dict[RecordPosition, tuple[_Event, int]] = {}
    by_event_id: dict[str, tuple[str, str]] = {}
    for outcome in outcomes:
        key = (outcome.source, outcome.event_id or f"@{outcome.input}")
        event = events.setdefault(
            key,
            _Event(
                order_id=outcome.order_id,
                event_id=outcome.event_id,
                event_type=outcome.event_type,
            ),
        )
        seen = _Seen(
            status=outcome.status,
            reason=outcome.reason,
            position=outcome.input,
            time=outcome.time,
            outcome=outcome,
            dead_letter=None,
        )
        if outcome.status == "invalid":
            invalid_at[outcome.input] = (event, len(event.seen))
        event.seen.append(seen)
        if outcome.event_id is not None:
            by_event_id.setdefault(outcome.event_id, key)
    for letter in dead_letters:
        known = invalid_at.get(letter.source)
        if known is not None:
            # The invalid outcome of the same record: the dead letter is its bytes' backup.
            event, index = known
            event.seen[index] = _with_dead_letter(event.seen[index], letter)
            continue
        key = by_event_id.get(letter.event_id or "") or ("", f"@{letter.source}")
        order_id = letter.order_id or _key_text(letter.key) or f"@{letter.source}"
        event = events.setdefault(
            key, _Event(order_id=order_id, event_id=letter.event_id, event_type=None)
        )
        event.seen.append(
            _Seen(
                status="invalid",
                reason=letter.reason,
                position=letter.source,
                time=letter.time,
                outcome=None,
                dead_letter=letter,
            )
        )
    return list(events.values())


def _write_needed(candidate: Candidate, events: list[_Event]) -> tuple[_Event, _Seen] | None:
    """The write an action without one of its own depends on, if it did not land.

    That is the order's latest write before the action, with its latest outcome, when that
    outcome is ``failed`` or ``unknown``.
    """
    if candidate.operations != {"action"}:
        return None
    before: tuple[_Event, StreamPlace] | None = None
    for event in events:
        # A lifecycle event may carry a snapshot, and its outcome is its action's: it may be
        # the write the action depends on (it is then replayed itself, or it landed).
        if not event.writes() and event.event_type not in LIFECYCLE_TYPES:
            continue
        place = event.place()
        if candidate.place.is_after(place) and (before is None or place.is_after(before[1])):
            before = (event, place)
    if before is None:
        return None
    latest = _latest(before[0].writes())
    if latest is None or latest.status not in {"failed", "unknown"}:
        return None
    return before[0], latest


def _accepted_writes(events: list[_Event]) -> list[AcceptedWrite]:
    """The order's events that Engage accepted a write of, or may have (a lifecycle event)."""
    accepted = []
    for event in events:
        certain = True
        latest = _latest(s for s in event.writes() if s.status == "accepted")
        if latest is None and event.event_type in LIFECYCLE_TYPES:
            # Its action was accepted, so a snapshot it carried was written before it.
            certain = False
            latest = _latest(s for s in event.seen if s.status == "accepted")
        if latest is not None:
            accepted.append(
                AcceptedWrite(
                    event_id=event.event_id,
                    place=event.place(),
                    time=latest.time,
                    position=latest.position,
                    certain=certain,
                )
            )
    return accepted


def _with_dead_letter(seen: _Seen, letter: DeadLetter) -> _Seen:
    return _Seen(
        status=seen.status,
        reason=seen.reason,
        position=seen.position,
        time=seen.time,
        outcome=seen.outcome,
        dead_letter=letter,
    )


def _key_text(key: bytes | None) -> str | None:
    if not key:
        return None
    return key.decode(errors="replace")


def _chosen(event: _Event, criteria: Criteria) -> _Seen | None:
    """The event's latest outcome that matches the criteria."""
    return _latest(
        seen
        for seen in event.seen
        if criteria.admits(
            status=seen.status, reason=seen.reason, position=seen.position, time=seen.time
        )
    )


def _candidate(event: _Event, chosen: _Seen, needed_by: tuple[str, ...]) -> Candidate:
    operations = frozenset(s.operation for s in event.seen if s.operation is not None)
    latest_action = _latest(s for s in event.seen if s.operation == "action")
    outcome = chosen.outcome
    dead_letter = chosen.dead_letter or next(
        (s.dead_letter for s in event.seen if s.dead_letter and s.position == chosen.position),
        None,
    )
    return Candidate(
        position=chosen.position,
        place=event.place(),
        order_id=event.order_id,
        event_id=event.event_id,
        event_type=None if outcome is None else outcome.event_type,
        status=chosen.status,
        reason=chosen.reason,
        time=chosen.time,
        operations=operations,
        unknown_action=latest_action is not None and latest_action.status == "unknown",
        dead_letter=dead_letter,
        needed_by=needed_by,
    )


def _latest(seen: Iterable[_Seen]) -> _Seen | None:
    latest: _Seen | None = None
    for one in seen:
        if latest is None or one.is_later_than(latest):
            latest = one
    return latest


def _earliest(seen: Iterable[_Seen]) -> _Seen | None:
    earliest: _Seen | None = None
    for one in seen:
        if earliest is None or earliest.is_later_than(one):
            earliest = one
    return earliest


def _first_exclusion(
    event: _Event, chosen: _Seen, candidate: Candidate, criteria: Criteria
) -> tuple[ExclusionKind, str] | None:
    accepted = [s for s in event.seen if s.status == "accepted"]
    last = _latest(s for s in accepted if s.is_later_than(chosen))
    if last is not None:
        return (
            "accepted_later",
            f"accepted later ({last.operation} at {stamp(last.time)}, input {last.position})",
        )
    action = next((s for s in accepted if s.operation == "action"), None)
    if action is not None:
        return (
            "action_accepted",
            f"Engage accepted its action at {stamp(action.time)}: a replay would send it again",
        )
    if candidate.unknown_action and not criteria.include_unknown:
        return (
            "unknown_action",
            (
                "its action's outcome is unknown: Engage may have run it "
                "(--include-unknown, then confirm, to send it again)"
            ),
        )
    return None


def stamp(moment: datetime) -> str:
    """A time to the second, as the listing shows it."""
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
