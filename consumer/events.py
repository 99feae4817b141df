"""Typed order events, and the decoder that turns one Kafka record into one or says why not.

This is the pure core's entry point: the Kafka source hands over raw key and value bytes, and
everything downstream (the order book, the dispatcher) sees only the frozen values defined here.
``decode_record`` runs once per record, so it does the cheap checks first and validates with the
compiled contract from :mod:`consumer.schemas` (the same files producers test against). Anything
that is not a valid event raises :class:`~consumer.errors.InvalidEventError` with a reason code
that the dead-letter headers and the ``invalid`` outcome carry:

=====================  ========================================================================
``empty``              the record has no value (a tombstone) or a zero-length one
``too_large``          the value is longer than the configured limit
``undecodable``        the value is not UTF-8 JSON
``not_an_object``      JSON, but not an object
``unknown_type``       ``type`` is a string this service does not handle
``schema``             breaks order-event.schema.json; the detail names the JSON path
``missing_key``        the record has no key although one is required (the running service
                       requires it: without the orderId as key, a producer's partitioner
                       scatters an order's events over partitions and per-order order is lost)
``key_mismatch``       the record key is not the ``subject`` (same reason)
``order_id_mismatch``  ``data.order.orderId`` differs from ``subject``
=====================  ========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import orjson

from consumer import schemas
from consumer.errors import InvalidEventError

if TYPE_CHECKING:
    from collections.abc import Mapping

EventType = Literal[
    "order.upserted",
    "order.action",
    "order.deleted",
    "order.confirmed",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
    "order.completed",
]
LifecycleKind = Literal["confirmed", "shipped", "delivered", "cancelled", "completed"]
InvalidReason = Literal[
    "empty",
    "too_large",
    "undecodable",
    "not_an_object",
    "schema",
    "unknown_type",
    "missing_key",
    "key_mismatch",
    "order_id_mismatch",
]

LIFECYCLE_TYPES: Final = (
    "order.confirmed",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
    "order.completed",
)
EVENT_TYPES: Final[tuple[EventType, ...]] = (
    "order.upserted",
    "order.action",
    "order.deleted",
    *LIFECYCLE_TYPES,
)
INVALID_REASONS: Final[tuple[InvalidReason, ...]] = (
    "empty",
    "too_large",
    "undecodable",
    "not_an_object",
    "schema",
    "unknown_type",
    "missing_key",
    "key_mismatch",
    "order_id_mismatch",
)

#: Lifecycle event type -> the Engage action it triggers (engage-api.md); ACTION_MAP overrides.
DEFAULT_ACTION_MAP: Final[Mapping[str, str]] = MappingProxyType(
    {
        "order.confirmed": "ConfirmOrder",
        "order.shipped": "ConfirmShipment",
        "order.delivered": "ConfirmDelivery",
        "order.cancelled": "ConfirmCancellation",
        "order.completed": "ConfirmCompletion",
    }
)

#: Largest record value accepted unless configured otherwise (Kafka's own default is ~1 MB).
DEFAULT_MAX_BYTES: Final = 1_000_000

_KNOWN_TYPES: Final = frozenset(EVENT_TYPES)
_KNOWN_LIST: Final = ", ".join(EVENT_TYPES)
# Bounds what a hostile key or subject can add to a log line or a dead-letter header.
_QUOTE_LIMIT: Final = 80
_DETAIL_LIMIT: Final = 500


@dataclass(frozen=True, kw_only=True, slots=True)
class Upsert:
    """``order.upserted``: create or replace the whole order in Engage."""

    order: Mapping[str, Any]
    """The Engage order body as the producer sent it; ``order["orderId"]`` is the subject."""
    revision: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Delete:
    """``order.deleted``: delete the order in Engage."""

    revision: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionRequest:
    """``order.action``: post an Engage action with the tag of the write it depends on."""

    action: str
    language: str | None = None
    data: Mapping[str, Any] | None = None
    min_revision: int | None = None
    """Wait for a confirmed write with at least this revision (None: the latest write before)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Lifecycle:
    """``order.confirmed`` … ``order.completed``: write the snapshot if any, then the action."""

    kind: LifecycleKind
    action: str
    """The Engage action, already resolved through the action map."""
    order: Mapping[str, Any] | None = None
    revision: int | None = None
    """The snapshot's revision; without a snapshot, the revision the action must wait for."""
    language: str | None = None
    action_data: Mapping[str, Any] | None = None


EventData = Upsert | Delete | ActionRequest | Lifecycle


@dataclass(frozen=True, kw_only=True, slots=True)
class OrderEvent:
    """One valid input event and where it was read from."""

    id: str
    type: EventType
    source: str
    time: str
    """RFC 3339 as sent (kept as text: RFC 3339 allows leap seconds that datetime cannot hold)."""
    order_id: str
    data: EventData
    topic: str
    partition: int
    offset: int


def decode_record(
    *,
    key: bytes | None,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    max_bytes: int = DEFAULT_MAX_BYTES,
    action_map: Mapping[str, str] = DEFAULT_ACTION_MAP,
    require_key: bool = False,
) -> OrderEvent:
    """Decode and validate one record.

    ``key=None`` skips the key check (``validate`` does: a file has no keys) unless
    ``require_key`` is set, as the running service sets it: then a keyless record is refused
    with ``missing_key``, after the value was read so that the refusal can name the order.

    Raises:
        InvalidEventError: the record is not a valid event; ``order_id`` is set whenever one
            could be read (the subject, else the record key).
    """
    key_text = _key_text(key)
    key_order_id = key_text or None
    if not value:
        raise InvalidEventError(
            "empty",
            "the record has no value (a tombstone or an empty message)",
            order_id=key_order_id,
        )
    if len(value) > max_bytes:
        raise InvalidEventError(
            "too_large",
            f"the value is {len(value)} bytes; the limit is {max_bytes}",
            order_id=key_order_id,
        )
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidEventError(
            "undecodable", f"not UTF-8 JSON: {_parse_error(exc)}", order_id=key_order_id
        ) from None
    if not isinstance(document, dict):
        raise InvalidEventError(
            "not_an_object",
            f"the event must be a JSON object, not {_json_kind(document)}",
            order_id=key_order_id,
        )
    return _decode_object(
        document,
        key=key,
        key_text=key_text,
        require_key=require_key,
        position=(topic, partition, offset),
        action_map=action_map,
    )


def _decode_object(
    document: dict[str, Any],
    *,
    key: bytes | None,
    key_text: str | None,
    require_key: bool,
    position: tuple[str, int, int],
    action_map: Mapping[str, str],
) -> OrderEvent:
    subject = document.get("subject")
    order_id = subject if isinstance(subject, str) and subject else key_text or None
    event_type = document.get("type")
    # Checked before the schema so that a producer on a newer contract gets a reason that says
    # so, rather than a generic enum failure.
    if isinstance(event_type, str) and event_type not in _KNOWN_TYPES:
        raise InvalidEventError(
            "unknown_type",
            f"type: {_quote(event_type)} is not an event type this service handles ({_KNOWN_LIST})",
            order_id=order_id,
        )
    problem = schemas.event_problem(document)
    if problem is not None:
        raise InvalidEventError("schema", _bounded(problem), order_id=order_id)
    # From here on the schema guarantees the shapes that the code below reads.
    subject = cast("str", subject)
    _check_key(subject, key=key, key_text=key_text, require_key=require_key)
    data: dict[str, Any] = document["data"]
    order = data.get("order")
    if order is not None and order["orderId"] != subject:
        raise InvalidEventError(
            "order_id_mismatch",
            f"data.order.orderId: {_quote(order['orderId'])} differs from subject"
            f" {_quote(subject)}",
            order_id=subject,
        )
    topic, partition, offset = position
    return OrderEvent(
        id=document["id"],
        type=cast("EventType", event_type),
        source=document["source"],
        time=document["time"],
        order_id=subject,
        data=_event_data(cast("EventType", event_type), data, action_map),
        topic=topic,
        partition=partition,
        offset=offset,
    )


def _check_key(subject: str, *, key: bytes | None, key_text: str | None, require_key: bool) -> None:
    if key is None:
        if require_key:
            raise InvalidEventError(
                "missing_key",
                "the record has no key; the key must be the orderId",
                order_id=subject,
            )
        return
    if key_text == subject:
        return
    if key_text is None:
        got = "is not UTF-8"
    elif key_text:
        got = f"is {_quote(key_text)}"
    else:
        got = "is empty"
    raise InvalidEventError(
        "key_mismatch",
        f"subject: {_quote(subject)} differs from the record key, which {got}",
        order_id=subject,
    )


def _event_data(
    event_type: EventType, data: dict[str, Any], action_map: Mapping[str, str]
) -> EventData:
    if event_type == "order.upserted":
        return Upsert(order=data["order"], revision=_integer(data.get("revision")))
    if event_type == "order.action":
        return ActionRequest(
            action=data["action"],
            language=data.get("language"),
            data=data.get("data"),
            min_revision=_integer(data.get("minRevision")),
        )
    if event_type == "order.deleted":
        return Delete(revision=_integer(data.get("revision")))
    return Lifecycle(
        kind=cast("LifecycleKind", event_type.removeprefix("order.")),
        action=action_map.get(event_type) or DEFAULT_ACTION_MAP[event_type],
        order=data.get("order"),
        revision=_integer(data.get("revision")),
        language=data.get("language"),
        action_data=data.get("actionData"),
    )


def _parse_error(exc: orjson.JSONDecodeError) -> str:
    # Records are usually one line, where "line 1" only confuses a report that numbers lines.
    where = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno}, column {exc.colno}"
    return f"{exc.msg} at {where}"


def _integer(value: float | None) -> int | None:
    # JSON Schema counts 3.0 as an integer, so the schema lets it through; the models promise int.
    return None if value is None else int(value)


def _key_text(key: bytes | None) -> str | None:
    """The key as text: None when absent or not UTF-8 (so it cannot name an order)."""
    if key is None:
        return None
    try:
        return key.decode()
    except UnicodeDecodeError:
        return None


def _bounded(problem: str) -> str:
    # A member name is part of the path a problem names, and producers choose member names.
    return problem if len(problem) <= _DETAIL_LIMIT else problem[: _DETAIL_LIMIT - 1] + "…"


def _quote(text: str) -> str:
    shown = text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "…"
    return repr(shown)


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
