"""Reading the results topic back: an outcome record as a typed value, filters, a summary table.

What ``engage-consumer results`` shows and what ``engage-consumer replay`` selects from. The
outcome's CloudEvents ``id`` is ``<eventId>:<operation>``, so an event handled again (after a
restart, or a replay) publishes a new record with the same id: the contract says readers
deduplicate on (``source``, ``id``). ``latest_outcomes`` does that, keeping the latest record of
each id, so "still failed" means what an operator expects once a replay brought an event to
``accepted``. Records of one order share a results partition (they are keyed by the orderId),
so "latest" is the later offset there; across partitions it is the later outcome ``time``.

Pure: bytes and clock readings in, values and text out. Never imports a Kafka or HTTP library.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, get_args

import orjson

from consumer.outcomes import Operation, Status

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

STATUSES: Final[tuple[Status, ...]] = get_args(Status)
OPERATIONS: Final[tuple[Operation, ...]] = get_args(Operation)
#: The row of outcomes without an operation (invalid input) in the summary table.
NO_OPERATION: Final = "(invalid)"
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, kw_only=True, slots=True, order=True)
class RecordPosition:
    """Where a record is: ``topic/partition/offset`` (topic names cannot hold a ``/``)."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @classmethod
    def parse(cls, text: str) -> RecordPosition:
        """Read ``topic/partition/offset``; ``ValueError`` when it is not one."""
        topic, sep, rest = text.strip().partition("/")
        partition, sep2, offset = rest.partition("/")
        if not (sep and sep2 and topic and partition.isdigit() and offset.isdigit()):
            raise ValueError(f"{text!r} is not topic/partition/offset")
        return cls(topic=topic, partition=int(partition), offset=int(offset))

    @property
    def tp(self) -> tuple[str, int]:
        """The topic partition."""
        return (self.topic, self.partition)


@dataclass(frozen=True, kw_only=True, slots=True)
class OutcomeRecord:
    """One outcome read back from the results topic, with where it was read."""

    at: RecordPosition
    """The outcome record's own place on the results topic."""
    id: str
    source: str
    time: datetime
    """When the outcome was decided."""
    order_id: str
    event_id: str | None
    event_type: str | None
    input: RecordPosition
    """The input record the outcome answers."""
    operation: Operation | None
    status: Status
    reason: str | None
    action: str | None
    revision: int | None
    received_at: datetime | None
    raw: bytes | None = None
    """The record value as published (kept only when asked: ``--json`` prints it)."""

    @property
    def key(self) -> tuple[str, str]:
        """The identity the contract deduplicates on: (``source``, ``id``)."""
        return (self.source, self.id)

    def is_later_than(self, other: OutcomeRecord) -> bool:
        """Published after ``other``: by offset on one results partition, else by time."""
        if self.at.tp == other.at.tp:
            return self.at.offset > other.at.offset
        return (self.time, self.at.partition) > (other.time, other.at.partition)


def decode_outcome(
    value: bytes | None, *, at: RecordPosition, keep_raw: bool = False
) -> OutcomeRecord | None:
    """Read one results-topic record; None when it is not an outcome this reader understands.

    Lenient on purpose: it reads the fields it needs and checks their types, without the full
    schema validation (a results topic of millions of records is read in one go).
    """
    if not value:
        return None
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or not isinstance(data := document.get("data"), dict):
        return None
    try:
        return OutcomeRecord(
            at=at,
            id=_text(document, "id"),
            source=_text(document, "source"),
            time=parse_rfc3339(_text(document, "time")),
            order_id=_text(data, "orderId"),
            event_id=_optional_text(data, "eventId"),
            event_type=_optional_text(data, "eventType"),
            input=RecordPosition(
                topic=_text(data, "topic"),
                partition=_integer(data, "partition"),
                offset=_integer(data, "offset"),
            ),
            operation=_choice(data.get("operation"), OPERATIONS),
            status=_status(data.get("status")),
            reason=_optional_text(data, "reason"),
            action=_optional_text(data, "action"),
            revision=data["revision"] if _is_int(data.get("revision")) else None,
            received_at=_received_at(data),
            raw=value if keep_raw else None,
        )
    except (KeyError, TypeError, ValueError):
        return None


def latest_outcomes(records: Iterable[OutcomeRecord]) -> list[OutcomeRecord]:
    """The latest record of each (``source``, ``id``), ordered by outcome time."""
    latest: dict[tuple[str, str], OutcomeRecord] = {}
    for record in records:
        known = latest.get(record.key)
        if known is None or record.is_later_than(known):
            latest[record.key] = record
    return sorted(latest.values(), key=lambda r: (r.time, r.at))


@dataclass(frozen=True, kw_only=True, slots=True)
class OutcomeFilter:
    """Which outcomes to show: by order, status and outcome time (None: any)."""

    orders: frozenset[str] | None = None
    statuses: frozenset[Status] | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, record: OutcomeRecord) -> bool:
        """Whether the record passes every filter."""
        return (
            (self.orders is None or record.order_id in self.orders)
            and (self.statuses is None or record.status in self.statuses)
            and (self.since is None or record.time >= self.since)
            and (self.until is None or record.time < self.until)
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class OutcomeSummary:
    """Counts of outcomes by operation and status, and of the non-accepted ones by reason."""

    by_operation: Mapping[str, Mapping[str, int]]
    reasons: list[tuple[str, str, str, int]]
    """(status, operation, reason, count), the most frequent first."""
    outcomes: int
    events: int


def summarize(records: Iterable[OutcomeRecord]) -> OutcomeSummary:
    """Count the records for the summary table."""
    table: dict[str, Counter[str]] = {}
    reasons: Counter[tuple[str, str, str]] = Counter()
    events: set[tuple[str, str]] = set()
    outcomes = 0
    for record in records:
        outcomes += 1
        events.add((record.source, record.event_id or str(record.input)))
        operation = record.operation or NO_OPERATION
        table.setdefault(operation, Counter())[record.status] += 1
        if record.status != "accepted":
            reasons[(record.status, operation, record.reason or "-")] += 1
    rows = [*OPERATIONS, NO_OPERATION]
    return OutcomeSummary(
        by_operation={op: dict(table[op]) for op in rows if op in table},
        reasons=[
            (status, operation, reason, count)
            for (status, operation, reason), count in sorted(
                reasons.items(), key=lambda item: (-item[1], item[0])
            )
        ],
        outcomes=outcomes,
        events=len(events),
    )


def render_summary(summary: OutcomeSummary) -> str:
    """The summary as text: a table by operation and status, then the reasons."""
    if summary.outcomes == 0:
        return "no outcomes\n"
    seen = {status for row in summary.by_operation.values() for status in row}
    statuses = [s for s in STATUSES if s in seen]
    width = max(10, *(len(s) + 2 for s in statuses))
    header = f"{'operation':<10}" + "".join(f"{s:>{width}}" for s in statuses) + f"{'total':>8}"
    lines = [header, "-" * len(header)]
    totals: Counter[str] = Counter()
    for operation, row in summary.by_operation.items():
        totals.update(row)
        cells = "".join(f"{row.get(s, 0):>{width}}" for s in statuses)
        lines.append(f"{operation:<10}{cells}{sum(row.values()):>8}")
    cells = "".join(f"{totals.get(s, 0):>{width}}" for s in statuses)
    lines.append(f"{'total':<10}{cells}{sum(totals.values()):>8}")
    if summary.reasons:
        reason_width = max(len("reason"), *(len(reason) for _s, _o, reason, _n in summary.reasons))
        lines += ["", "not accepted, by reason:"]
        lines.append(f"  {'status':<10}{'operation':<11}{'reason':<{reason_width}}{'count':>8}")
        lines.extend(
            f"  {status:<10}{operation:<11}{reason:<{reason_width}}{count:>8}"
            for status, operation, reason, count in summary.reasons
        )
    return "\n".join(lines) + "\n"


def render_line(record: OutcomeRecord) -> str:
    """One outcome on one line (what ``--follow`` prints as records arrive)."""
    stamp = record.time.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    operation = record.operation or NO_OPERATION
    what = record.action or record.event_type or "-"
    reason = "" if record.reason is None else f"  {record.reason}"
    return (
        f"{stamp}  {record.status:<8}  {operation:<9}  {record.order_id}  "
        f"{record.event_id or '-'}  {what}  {record.input}{reason}"
    )


def parse_statuses(text: str) -> frozenset[Status]:
    """``failed,unknown`` as statuses; ``ValueError`` naming the valid ones otherwise."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("name at least one status")
    wrong = [name for name in names if name not in STATUSES]
    if wrong:
        raise ValueError(f"{', '.join(wrong)}: not a status (one of {', '.join(STATUSES)})")
    return frozenset(name for name in STATUSES if name in names)


def parse_moment(text: str, *, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no offset) or an age such as ``30m``, ``2h``, ``1d``.

    ``ValueError`` saying what is accepted otherwise.
    """
    text = text.strip()
    relative = _RELATIVE.match(text)
    if relative is not None:
        seconds = float(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]
        return now - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO time (2026-03-01T14:00:00Z) nor an age (30m, 2h, 1d)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_rfc3339(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime (``Z`` or an offset)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} names no offset")
    return moment


def _text(document: Mapping[str, Any], name: str) -> str:
    value = document[name]
    if not isinstance(value, str) or not value:
        raise TypeError(name)
    return value


def _optional_text(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(name)
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(document: Mapping[str, Any], name: str) -> int:
    value = document[name]
    if not _is_int(value) or value < 0:
        raise TypeError(name)
    return int(value)


def _choice(value: object, choices: tuple[Operation, ...]) -> Operation | None:
    for choice in choices:
        if value == choice:
            return choice
    if value is not None:
        raise ValueError(value)
    return None


def _status(value: object) -> Status:
    for status in STATUSES:
        if value == status:
            return status
    raise ValueError(value)


def _received_at(data: Mapping[str, Any]) -> datetime | None:
    timings = data.get("timings")
    if isinstance(timings, dict) and isinstance(received := timings.get("receivedAt"), str):
        return parse_rfc3339(received)
    return None
