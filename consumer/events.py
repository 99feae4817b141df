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
``too_deep``           ``data`` nests arrays and objects more than :data:`MAX_DEPTH` (64) levels
                       deep (``data`` itself is level 1); no real order needs that many, and
                       bodies much deeper than that cannot be encoded again (orjson writes at
                       most 254 levels) to reach Engage
``unknown_type``       ``type`` is a string this service does not handle
``schema``             breaks order-event.schema.json; the detail names the JSON path. Also
                       a ``revision``/``minRevision`` of 2^53 or more written with a fraction
                       or exponent (``1e18``): a JSON double cannot hold it exactly
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
    "too_deep",
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
    "too_deep",
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
#: Deepest nesting of arrays and objects allowed in ``data`` (``data`` itself is level 1).
MAX_DEPTH: Final = 64
#: Longest ``id``, ``subject`` and ``orderId`` the contract allows (order-event.schema.json).
ID_MAX_CHARS: Final = 256

_KNOWN_TYPES: Final = frozenset(EVENT_TYPES)
_KNOWN_LIST: Final = ", ".join(EVENT_TYPES)
# Bounds what a hostile key or subject can add to a log line or a dead-letter header.
_QUOTE_LIMIT: Final = 80
_DETAIL_LIMIT: Final = 500
# Integers from 2**53 on are not all representable as doubles: written as 1e18 or 1.0e17, the
# number orjson parsed may not be the one the producer meant.
_EXACT_FLOATS: Final = 2**53
_DEEP_INDENT: Final = b"\n" + b" " * (2 * MAX_DEPTH)


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
    key_order_id = clip_id(key_text) if key_text else None
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
        # A document cannot nest deeper than it has brackets (the event's own brace aside):
        # two C-speed counts spare almost every record the walk over its containers.
        shallow=value.count(b"[") + value.count(b"{") <= MAX_DEPTH + 1,
    )


def _decode_object(
    document: dict[str, Any],
    *,
    key: bytes | None,
    key_text: str | None,
    require_key: bool,
    position: tuple[str, int, int],
    action_map: Mapping[str, str],
    shallow: bool,
) -> OrderEvent:
    subject = document.get("subject")
    # Clipped: the id names the order in logs, dead-letter headers and the invalid outcome, and
    # an id beyond the contract's length is invalid anyway (so it can match no real order).
    named = subject if isinstance(subject, str) and subject else key_text
    order_id = clip_id(named) if named else None
    event_type = document.get("type")
    # Checked before the schema so that a producer on a newer contract gets a reason that says
    # so, rather than a generic enum failure.
    if isinstance(event_type, str) and event_type not in _KNOWN_TYPES:
        raise InvalidEventError(
            "unknown_type",
            f"type: {_quote(event_type)} is not an event type this service handles ({_KNOWN_LIST})",
            order_id=order_id,
        )
    if not shallow and _too_deep(document.get("data")):
        raise InvalidEventError(
            "too_deep",
            f"data: nests arrays and objects more than {MAX_DEPTH} levels deep (the limit)",
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
        data=_event_data(cast("EventType", event_type), data, action_map, subject),
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
    event_type: EventType, data: dict[str, Any], action_map: Mapping[str, str], subject: str
) -> EventData:
    if event_type == "order.action":
        return ActionRequest(
            action=data["action"],
            language=data.get("language"),
            data=data.get("data"),
            min_revision=_revision(data, "minRevision", subject),
        )
    revision = _revision(data, "revision", subject)
    if event_type == "order.upserted":
        return Upsert(order=data["order"], revision=revision)
    if event_type == "order.deleted":
        return Delete(revision=revision)
    return Lifecycle(
        kind=cast("LifecycleKind", event_type.removeprefix("order.")),
        action=action_map.get(event_type) or DEFAULT_ACTION_MAP[event_type],
        order=data.get("order"),
        revision=revision,
        language=data.get("language"),
        action_data=data.get("actionData"),
    )


def _parse_error(exc: orjson.JSONDecodeError) -> str:
    # Records are usually one line, where "line 1" only confuses a report that numbers lines.
    where = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno}, column {exc.colno}"
    return f"{exc.msg} at {where}"


def _revision(data: dict[str, Any], member: str, subject: str) -> int | None:
    """The revision as an exact int (the schema bounds it to 0 … 2**63 - 1)."""
    value = data.get(member)
    if value is None:
        return None
    # JSON Schema counts 3.0 as an integer, so the schema lets it through; the models promise
    # an int, and only below 2**53 is a double surely the integer that was written.
    if type(value) is float and value >= _EXACT_FLOATS:
        raise InvalidEventError(
            "schema",
            f"data.{member}: from 2^53 on must be written as a plain integer (no fraction or"
            " exponent): a JSON double cannot hold every such integer exactly",
            order_id=subject,
        )
    return int(value)


def _too_deep(root: object) -> bool:
    """Whether arrays and objects nest more than ``MAX_DEPTH`` levels in ``root`` (root: level 1).

    Called only when the brackets could reach that deep. orjson's indented output is the fast
    sieve (about 2.5 times quicker than the walk below for a wide order): the contents of a level
    k container are indented 2k spaces and strings cannot hold a raw newline, so without an
    indent of 2 * MAX_DEPTH no container sits below MAX_DEPTH. Otherwise (or when orjson cannot
    encode it: it writes at most 254 levels) the walk decides exactly, one level at a time and
    only through containers, without recursion (orjson parsed up to 1024 levels).
    """
    if not isinstance(root, dict | list):
        return False
    try:
        if _DEEP_INDENT not in orjson.dumps(root, option=orjson.OPT_INDENT_2):
            return False
    except orjson.JSONEncodeError:
        pass
    level: list[Any] = [root]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if type(node) is dict else node)
            if type(child) is dict or type(child) is list
        ]
        if not level:
            return False
    return True


def clip_id(text: str) -> str:
    """Return ``text`` if it fits :data:`ID_MAX_CHARS`, else its start and "…" (that length).

    Idempotent, so any layer may clip again. Used wherever an identifier read from a record (the
    key, ``subject``, ``id``, ``type``) is copied into a log line, a header or an outcome: a
    valid event's ids always fit, and a refused record's must not make its dead-letter copy or
    its outcome too large to publish.
    """
    return text if len(text) <= ID_MAX_CHARS else text[: ID_MAX_CHARS - 1] + "…"


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
