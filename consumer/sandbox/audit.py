"""Checks a run against the truth: the input stream, the simulator's journal, the results topic.

The simulator journals every accepted write (with a digest of its body), every processed job
(with the versionTag it produced) and every accepted action (with the tag it carried and its
``data``, where generated actions keep the id of the event that asked for them). An action
embedded in a write (``embedded: true``, with the ``jobId`` of that write) is journaled when the
write's job is processed, with that write's tag, and is audited exactly like a separate one: it
is the action of the event in its ``data``, on the tag of the write it came with, and the same
event's action both embedded and sent separately (or embedded twice) is a duplicate. From that,
``audit`` answers the questions the guarantees are about:

- did every input event get an outcome (and were repeated outcomes only replays of one id)?
- was any action sent more than once?
- did every action go out with the tag of the write it depends on — the latest write before it
  in its order's stream (its own snapshot for a lifecycle event), or for a ``minRevision``
  action a write with at least that revision?
- did each order's actions reach Engage in stream order?

With ``strict`` a ``minRevision`` action must also go exactly as one process sends it when its
revision is already reached in its own stream: with the tag of the latest write before it,
before the next write. ``lateness`` says how long each action reached Engage after the write
it depends on was processed (a replica that parked it would show up there).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consumer.sandbox.engage import body_digest

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from consumer.sandbox.workload import GeneratedEvent


@dataclass(kw_only=True)
class AuditReport:
    """What a run did, and every way it broke a guarantee."""

    events: int = 0
    outcomes: int = 0
    repeated_outcomes: int = 0
    missing_outcomes: list[str] = field(default_factory=list)
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    actions_accepted: int = 0
    #: how many of the accepted actions came embedded in their write
    embedded_actions: int = 0
    duplicate_actions: int = 0
    duplicated_event_ids: list[str] = field(default_factory=list)
    wrong_tag: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    unexpected_actions: int = 0
    #: write events skipped as stale (replayed after a newer write was confirmed)
    stale_skipped: set[str] = field(default_factory=set)
    #: actions that went out with a newer write's tag because theirs was stale on a replay
    superseded: int = 0
    #: per action: seconds from its write's job being processed to the action being accepted
    lateness: list[float] = field(default_factory=list)
    #: writes Engage accepted after a later write of the same order's stream ("older after
    #: newer": a replica that lost the order still writing); repeats of one write are fine
    writes_out_of_order: list[str] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        """No lost outcome, no wrong tag, no order broken, no foreign action."""
        return not (
            self.missing_outcomes
            or self.wrong_tag
            or self.out_of_order
            or self.unexpected_actions
            or self.writes_out_of_order
        )

    def summary(self) -> dict[str, Any]:
        """The figures as plain values (for logs, JSON reports and assertions)."""
        return {
            "events": self.events,
            "outcomes": self.outcomes,
            "repeated_outcomes": self.repeated_outcomes,
            "missing_outcomes": len(self.missing_outcomes),
            "actions_accepted": self.actions_accepted,
            "embedded_actions": self.embedded_actions,
            "duplicate_actions": self.duplicate_actions,
            "wrong_tag": len(self.wrong_tag),
            "out_of_order": len(self.out_of_order),
            "writes_out_of_order": len(self.writes_out_of_order),
            "unexpected_actions": self.unexpected_actions,
            "superseded": self.superseded,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class _Expect:
    """What one action event depends on."""

    event_id: str
    order_id: str
    position: int
    depends_on: str | None
    """The body digest of the write it depends on (None: gated on a revision)."""
    write_position: int
    """Stream position of that write: actions on one write may reach Engage in any order
    (they run concurrently on one tag), actions on different writes must not."""
    min_revision: int | None
    stream_write: str | None
    """The body digest of the latest write before it in its stream, whatever its gating."""


@dataclass(frozen=True, kw_only=True, slots=True)
class _Write:
    """One write in the input, known by the digest of its body."""

    event_id: str
    position: int
    revision: int


def _expectations(events: Sequence[GeneratedEvent]) -> tuple[dict[str, _Expect], dict[str, _Write]]:
    """For each action event: the write it depends on; and every write by body digest."""
    latest: dict[str, tuple[str, int]] = {}
    writes: dict[str, _Write] = {}
    expects: dict[str, _Expect] = {}
    for position, generated in enumerate(events):
        event = generated.event
        data = event.get("data") or {}
        order_id = generated.order_id
        body = data.get("order")
        if isinstance(body, dict):
            digest = body_digest(body)
            latest[order_id] = (digest, position)
            writes[digest] = _Write(
                event_id=generated.event_id,
                position=position,
                revision=int(data.get("revision") or 0),
            )
        if event["type"] == "order.deleted":
            latest.pop(order_id, None)
        if event["type"] == "order.upserted" or event["type"] == "order.deleted":
            continue
        gated = data.get("minRevision")
        if gated is None and event["type"] != "order.action" and not isinstance(body, dict):
            gated = data.get("revision")
        digest_and_position = latest.get(order_id)
        expects[generated.event_id] = _Expect(
            event_id=generated.event_id,
            order_id=order_id,
            position=position,
            depends_on=None
            if gated is not None or digest_and_position is None
            else digest_and_position[0],
            write_position=-1 if digest_and_position is None else digest_and_position[1],
            min_revision=gated,
            stream_write=None if digest_and_position is None else digest_and_position[0],
        )
    return expects, writes


def audit(
    *,
    events: Sequence[GeneratedEvent],
    journal: Iterable[Mapping[str, Any]],
    outcomes: Iterable[Mapping[str, Any]],
    strict: bool = False,
) -> AuditReport:
    """Compare a run's journal and outcomes with its input; see the module docstring."""
    report = AuditReport(events=len(events))
    expects, writes = _expectations(events)
    if strict:
        expects = {key: _strictly(expect, writes) for key, expect in expects.items()}
    _audit_outcomes(report, events, outcomes)
    _audit_journal(report, expects, writes, journal)
    return report


def _strictly(expect: _Expect, writes: Mapping[str, _Write]) -> _Expect:
    """A gated action whose revision its own stream already reached depends on that write."""
    if expect.min_revision is None or expect.stream_write is None:
        return expect
    write = writes.get(expect.stream_write)
    if write is None or write.revision < expect.min_revision:
        return expect
    return _Expect(
        event_id=expect.event_id,
        order_id=expect.order_id,
        position=expect.position,
        depends_on=expect.stream_write,
        write_position=expect.write_position,
        min_revision=None,
        stream_write=expect.stream_write,
    )


def _audit_outcomes(
    report: AuditReport,
    events: Sequence[GeneratedEvent],
    outcomes: Iterable[Mapping[str, Any]],
) -> None:
    seen_outcomes: Counter[str] = Counter()
    for outcome in outcomes:
        data = outcome.get("data") or {}
        seen_outcomes[str(data.get("eventId"))] += 1
        report.statuses[(str(data.get("operation")), str(data.get("status")))] += 1
        if data.get("status") == "skipped" and data.get("reason") == "stale":
            report.stale_skipped.add(str(data.get("eventId")))
    report.outcomes = sum(seen_outcomes.values())
    report.repeated_outcomes = sum(n - 1 for n in seen_outcomes.values() if n > 1)
    report.missing_outcomes = [g.event_id for g in events if g.event_id not in seen_outcomes]


def _audit_journal(
    report: AuditReport,
    expects: Mapping[str, _Expect],
    writes: Mapping[str, _Write],
    journal: Iterable[Mapping[str, Any]],
) -> None:
    write_digest: dict[str, str] = {}  # jobId -> body digest
    tag_digest: dict[tuple[str, str], str] = {}  # (orderId, versionTag) -> body digest
    processed_at: dict[str, float] = {}  # body digest -> when its job was processed
    sent: Counter[str] = Counter()
    last_position: dict[str, tuple[int, str]] = {}
    newest_write: dict[str, _Write] = {}
    for entry in journal:
        kind = entry.get("kind")
        order_id = str(entry.get("orderId"))
        if kind == "write" and entry.get("bodyDigest") is not None:
            write_digest[str(entry["jobId"])] = str(entry["bodyDigest"])
            written = writes.get(str(entry["bodyDigest"]))
            if written is not None:
                newest = newest_write.get(order_id)
                if newest is not None and written.position < newest.position:
                    report.writes_out_of_order.append(f"{written.event_id} after {newest.event_id}")
                else:
                    newest_write[order_id] = written
        elif kind == "processed" and entry.get("versionTag") is not None:
            digest = write_digest.get(str(entry.get("jobId")))
            if digest is not None:
                tag_digest[(order_id, str(entry["versionTag"]))] = digest
                processed_at.setdefault(digest, float(entry.get("t") or 0.0))
        elif kind == "action":
            report.actions_accepted += 1
            if entry.get("embedded"):
                report.embedded_actions += 1
            _check_action(
                report,
                entry=entry,
                expects=expects,
                writes=writes,
                write_digest=write_digest,
                tag_digest=tag_digest,
                sent=sent,
                last_position=last_position,
                processed_at=processed_at,
            )
    duplicated = [event_id for event_id, n in sent.items() if n > 1]
    report.duplicated_event_ids = duplicated
    report.duplicate_actions = sum(sent[event_id] - 1 for event_id in duplicated)


def _check_action(
    report: AuditReport,
    *,
    entry: Mapping[str, Any],
    expects: Mapping[str, _Expect],
    writes: Mapping[str, _Write],
    write_digest: Mapping[str, str],
    tag_digest: Mapping[tuple[str, str], str],
    sent: Counter[str],
    last_position: dict[str, tuple[int, str]],
    processed_at: Mapping[str, float],
) -> None:
    order_id = str(entry.get("orderId"))
    data = entry.get("data") or {}
    event_id = data.get("_eventId") if isinstance(data, dict) else None
    expect = expects.get(str(event_id)) if event_id is not None else None
    if expect is None:
        report.unexpected_actions += 1
        return
    sent[expect.event_id] += 1
    if sent[expect.event_id] > 1:
        return
    used = _used_write(entry, write_digest, tag_digest)
    depends_on = expect.depends_on if expect.depends_on is not None else used
    if depends_on is not None and depends_on in processed_at:
        report.lateness.append(float(entry.get("t") or 0.0) - processed_at[depends_on])
    if expect.min_revision is None:
        if used != expect.depends_on:
            _wrong_or_superseded(report, expect, writes, used)
        previous = last_position.get(order_id)
        if previous is not None and previous[0] > expect.write_position:
            report.out_of_order.append(f"{previous[1]} before {expect.event_id}")
        last_position[order_id] = (expect.write_position, expect.event_id)
    elif used is not None and (used not in writes or writes[used].revision < expect.min_revision):
        report.wrong_tag.append(expect.event_id)


def _used_write(
    entry: Mapping[str, Any],
    write_digest: Mapping[str, str],
    tag_digest: Mapping[tuple[str, str], str],
) -> str | None:
    """The body digest of the write whose tag an action went with.

    A separate action is known by the tag it carried. An embedded one came with one write, which
    its ``jobId`` names: that write is the one it used (the simulator gives it that write's tag).
    """
    if entry.get("embedded") and entry.get("jobId") is not None:
        digest = write_digest.get(str(entry["jobId"]))
        if digest is not None:
            return digest
    return tag_digest.get((str(entry.get("orderId")), str(entry.get("versionTag"))))


def _wrong_or_superseded(
    report: AuditReport, expect: _Expect, writes: Mapping[str, _Write], used: str | None
) -> None:
    """An action did not carry its own write's tag: allowed only for a newer, replayed one.

    On a replay (after a crash or a rebalance) the write an action depends on may already be
    older than the order's confirmed revision: it is skipped as stale, and the action can only
    go with the newer write's tag, the only one Engage accepts. Anything else is a wrong tag.
    """
    own = writes.get(expect.depends_on) if expect.depends_on is not None else None
    newer = writes.get(used) if used is not None else None
    if (
        own is not None
        and newer is not None
        and own.event_id in report.stale_skipped
        and newer.position > own.position
    ):
        report.superseded += 1
    else:
        report.wrong_tag.append(expect.event_id)


def group_statuses(report: AuditReport) -> dict[str, dict[str, int]]:
    """Outcome counts as {operation: {status: n}} (for a summary table)."""
    table: dict[str, dict[str, int]] = defaultdict(dict)
    for (operation, status), count in sorted(report.statuses.items()):
        table[operation][status] = count
    return dict(table)
