"""What the consumer publishes about each input: outcome events and dead-letter headers.

Both are part of the contract in schemas/ (order-outcome.schema.json, dead-letter.schema.json);
this module builds them and nothing else, so the Kafka producer only moves bytes. The builders
are pure: the caller passes the clock readings.

An outcome's CloudEvents ``id`` is derived from the input (its event id and the operation), not
random: when the consumer restarts and handles an event again, the repeated outcome carries the
same id, and readers can drop it as a duplicate.

Every identifier copied from an input record (order id, event id, event type) is clipped to
``ID_MAX_CHARS`` (256) characters, the last one "…" when cut: a refused record may carry a
600 KB key, and its outcome or dead-letter copy must still fit the producer's request size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import orjson

from consumer import schemas
from consumer.events import clip_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from consumer.errors import InvalidEventError
    from consumer.events import OrderEvent

Operation = Literal["upsert", "action", "delete"]
Status = Literal["accepted", "rejected", "failed", "skipped", "unknown", "invalid"]

OUTCOME_TYPE: Final = "order.outcome"
OUTCOME_SOURCE: Final = "engage-consumer"
DLQ_PREFIX: Final = "x-dlq-"
#: Longest ``x-dlq-detail`` value in characters (the schema's maxLength).
DLQ_DETAIL_LIMIT: Final = 1000
#: Bytes of the original key a reduced dead-letter record keeps (see ``reduce_dead_letter``).
DLQ_KEY_LIMIT: Final = 1024
DLQ_TRUNCATED: Final = "x-dlq-truncated"

# Reasons after which the value cannot be parsed (or should not be: it is too large).
_UNREADABLE: Final = frozenset({"empty", "too_large", "undecodable", "not_an_object"})


@dataclass(frozen=True, kw_only=True, slots=True)
class InputRef:
    """The input record an outcome answers: what it was and where it was read."""

    event_id: str | None
    event_type: str | None
    topic: str
    partition: int
    offset: int
    order_id: str

    @classmethod
    def of_event(cls, event: OrderEvent) -> InputRef:
        """Point at a decoded event."""
        return cls(
            event_id=event.id,
            event_type=event.type,
            topic=event.topic,
            partition=event.partition,
            offset=event.offset,
            order_id=event.order_id,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """How one input event ended; ``encode_outcome`` turns it into the results-topic value."""

    origin: InputRef
    operation: Operation | None
    """None only for ``invalid`` input."""
    status: Status
    received_at: datetime
    finished_at: datetime
    http_status: int | None = None
    version_tag: str | None = None
    attempts: int = 0
    reason: str | None = None
    detail: str | None = None
    action: str | None = None
    revision: int | None = None
    engage_ms: float = 0.0
    total_ms: float | None = None
    """Measured duration (e.g. from a monotonic clock); None: finished_at - received_at."""
    delivery: Literal["separate", "embedded"] | None = None
    """How an action reached Engage: its own call, or riding in its write; None: not sent."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RecordParts:
    """The key, value and headers of one record to publish."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def outcome_id(origin: InputRef, operation: Operation | None) -> str:
    """Return the outcome's CloudEvents id: the same input and operation give the same id."""
    if origin.event_id is not None:
        return f"{clip_id(origin.event_id)}:{operation or 'invalid'}"
    # Without a readable event id the record's position is the only stable identity it has.
    return f"{origin.topic}/{origin.partition}/{origin.offset}:{operation or 'invalid'}"


def encode_outcome(outcome: Outcome, *, source: str = OUTCOME_SOURCE) -> bytes:
    """Serialise an outcome as a CloudEvent (structured JSON) valid against its schema."""
    origin = outcome.origin
    total_ms = outcome.total_ms
    if total_ms is None:
        total_ms = (outcome.finished_at - outcome.received_at).total_seconds() * 1000.0
    # Clipping again costs three len() calls and keeps any Outcome publishable, however built.
    order_id = clip_id(origin.order_id)
    data: dict[str, Any] = {
        "eventId": None if origin.event_id is None else clip_id(origin.event_id),
        "eventType": None if origin.event_type is None else clip_id(origin.event_type),
        "topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "orderId": order_id,
        "operation": outcome.operation,
        "status": outcome.status,
        "httpStatus": outcome.http_status,
        "versionTag": outcome.version_tag,
        "attempts": outcome.attempts,
        "reason": outcome.reason,
        "detail": outcome.detail,
        "action": outcome.action,
        "revision": outcome.revision,
        "timings": {
            "receivedAt": rfc3339(outcome.received_at),
            "finishedAt": rfc3339(outcome.finished_at),
            # A wall clock stepped back must not produce a negative duration.
            "totalMs": round(max(total_ms, 0.0), 3),
            "engageMs": round(max(outcome.engage_ms, 0.0), 3),
        },
    }
    if outcome.delivery is not None:
        data["delivery"] = outcome.delivery
    event = {
        "specversion": "1.0",
        "id": outcome_id(origin, outcome.operation),
        "source": source,
        "type": OUTCOME_TYPE,
        "subject": order_id,
        "time": rfc3339(outcome.finished_at),
        "datacontenttype": "application/json",
        "data": data,
    }
    return orjson.dumps(event)


def minimal_outcome(outcome: Outcome) -> Outcome:
    """Return ``outcome`` without the parts an input or Engage can make long.

    For an outcome the producer refused as too large (the bounds on ids make that unexpected):
    the status, reason, ids and timings stay; ``detail`` says what was dropped.
    """
    origin = outcome.origin
    return replace(
        outcome,
        origin=replace(
            origin,
            event_id=None if origin.event_id is None else clip_id(origin.event_id),
            event_type=None if origin.event_type is None else clip_id(origin.event_type),
            order_id=clip_id(origin.order_id),
        ),
        version_tag=None,
        action=None if outcome.action is None else clip_id(outcome.action),
        reason=None if outcome.reason is None else clip_id(outcome.reason),
        detail="the full outcome was too large to publish; detail and versionTag were dropped",
    )


def peek_identity(error: InvalidEventError, value: bytes | None) -> tuple[str | None, str | None]:
    """Read the ``id`` and ``type`` of an invalid event when its value is a readable object.

    Both come back clipped (``clip_id``): they are copied into headers and outcomes.
    """
    if error.reason in _UNREADABLE or not value:
        return None, None
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    event_id, event_type = document.get("id"), document.get("type")
    return (
        clip_id(event_id) if isinstance(event_id, str) and event_id else None,
        clip_id(event_type) if isinstance(event_type, str) and event_type else None,
    )


def invalid_outcome(
    error: InvalidEventError,
    *,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    received_at: datetime,
    finished_at: datetime,
) -> Outcome | None:
    """Build the ``invalid`` outcome of a dead-lettered record; None when no orderId was read."""
    if error.order_id is None:
        return None
    event_id, event_type = peek_identity(error, value)
    return Outcome(
        origin=InputRef(
            event_id=event_id,
            event_type=event_type,
            topic=topic,
            partition=partition,
            offset=offset,
            order_id=clip_id(error.order_id),
        ),
        operation=None,
        status="invalid",
        reason=error.reason,
        detail=error.detail,
        received_at=received_at,
        finished_at=finished_at,
    )


def dead_letter_headers(
    *,
    headers: Iterable[tuple[str, bytes]] | None,
    error: InvalidEventError,
    topic: str,
    partition: int,
    offset: int,
    at: datetime,
    event_id: str | None = None,
) -> list[tuple[str, bytes]]:
    """Return the dead-letter record's headers: the original ones, then the reason headers.

    ``x-dlq-*`` headers the input already carried (it was replayed from a dead-letter topic) are
    dropped, so that each reason header appears once and tells about this failure. The order id
    and event id are clipped (``clip_id``); the original key, value and headers are not ours to
    change.
    """
    kept = [(name, raw) for name, raw in headers or () if not name.startswith(DLQ_PREFIX)]
    detail = error.detail or error.reason
    if len(detail) > DLQ_DETAIL_LIMIT:
        detail = detail[: DLQ_DETAIL_LIMIT - 1] + "…"
    reasons = [
        ("x-dlq-reason", error.reason),
        ("x-dlq-detail", detail),
        ("x-dlq-source-topic", topic),
        ("x-dlq-source-partition", str(partition)),
        ("x-dlq-source-offset", str(offset)),
        ("x-dlq-time", rfc3339(at)),
    ]
    if error.order_id:
        reasons.append(("x-dlq-order-id", clip_id(error.order_id)))
    if event_id:
        reasons.append(("x-dlq-event-id", clip_id(event_id)))
    return kept + [(name, text.encode()) for name, text in reasons]


def reduce_dead_letter(
    *, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> RecordParts | None:
    """Return a smaller dead-letter record for one the producer refused as too large.

    The contract keeps the original key, value and headers; when that copy cannot be published,
    this keeps the reason headers, the first ``DLQ_KEY_LIMIT`` bytes of the key, an empty value
    and none of the original headers, and names what it changed in ``x-dlq-truncated``
    (``key``, ``value``, ``headers``, comma-separated). None when there is nothing to reduce.
    """
    dropped: list[str] = []
    if key is not None and len(key) > DLQ_KEY_LIMIT:
        dropped.append("key")
        key = key[:DLQ_KEY_LIMIT]
    if value:
        # Empty rather than null: a null value is a tombstone, which compaction acts upon.
        dropped.append("value")
        value = b""
    reasons = [(name, raw) for name, raw in headers if name.startswith(DLQ_PREFIX)]
    if len(reasons) < len(headers):
        dropped.append("headers")
    if not dropped:
        return None
    return RecordParts(
        key=key, value=value, headers=[*reasons, (DLQ_TRUNCATED, ",".join(dropped).encode())]
    )


def dead_letter_view(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    """Return the JSON object view of record headers that dead-letter.schema.json describes."""
    return {name: raw.decode(errors="replace") for name, raw in headers}


def outcome_problem(value: bytes | Mapping[str, Any]) -> str | None:
    """Return what makes an outcome break order-outcome.schema.json, or None when it is valid."""
    document = orjson.loads(value) if isinstance(value, bytes) else value
    return schemas.problem_of("order-outcome", document)


def dead_letter_problem(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """Return what makes dead-letter headers break dead-letter.schema.json, or None."""
    return schemas.problem_of("dead-letter", dead_letter_view(headers))


def rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with milliseconds (``…T10:15:00.000Z``)."""
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no offset; pass an aware one (e.g. UTC)")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
