"""Decoding records into typed order events, and refusing everything else with a precise reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.errors import InvalidEventError
from consumer.events import (
    DEFAULT_ACTION_MAP,
    EVENT_TYPES,
    ActionRequest,
    Delete,
    Lifecycle,
    OrderEvent,
    Upsert,
    decode_record,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "order-event"


def _example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((EXAMPLES / f"{name}.json").read_bytes())
    return document


def _decode(
    document: object,
    *,
    key: bytes | None = b"ORD-1",
    max_bytes: int = 1_000_000,
    action_map: dict[str, str] | None = None,
) -> OrderEvent:
    value = document if isinstance(document, bytes) or document is None else orjson.dumps(document)
    return decode_record(
        key=key,
        value=value,
        topic="orders",
        partition=2,
        offset=41,
        max_bytes=max_bytes,
        action_map=action_map if action_map is not None else DEFAULT_ACTION_MAP,
    )


def _event(event_type: str, data: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/orders",
        "type": event_type,
        "subject": "ORD-1",
        "time": "2025-03-01T10:15:00Z",
        "data": data,
        **envelope,
    }


def _refusal(document: object, **kwargs: Any) -> tuple[str, str, str | None]:
    with pytest.raises(InvalidEventError) as caught:
        _decode(document, **kwargs)
    return caught.value.reason, caught.value.detail, caught.value.order_id


def _attempt(document: object, *, key: bytes | None) -> OrderEvent | InvalidEventError:
    try:
        return _decode(document, key=key)
    except InvalidEventError as exc:
        return exc


ORDER = {"orderId": "ORD-1", "contact": {"matchKey": "a@example.com", "matchKeyType": "Email"}}


def test_upsert_decodes_to_a_typed_event_with_its_position() -> None:
    """order.upserted becomes an Upsert carrying the order body as sent and the record position."""
    body = {**ORDER, "lineItems": {"items": [], "subTotal": 0}, "futureField": 1}
    event = _decode(_event("order.upserted", {"order": body, "revision": 4}))
    assert event == OrderEvent(
        id="evt-1",
        type="order.upserted",
        source="/orders",
        time="2025-03-01T10:15:00Z",
        order_id="ORD-1",
        data=Upsert(order=body, revision=4),
        topic="orders",
        partition=2,
        offset=41,
    )


def test_action_decodes_with_every_optional_member() -> None:
    """order.action becomes an ActionRequest with language, data and minRevision."""
    data = {"action": "ConfirmShipment", "language": "sv-SE", "data": {"n": 1}, "minRevision": 3}
    event = _decode(_event("order.action", data))
    assert event.data == ActionRequest(
        action="ConfirmShipment", language="sv-SE", data={"n": 1}, min_revision=3
    )


def test_action_without_optional_members() -> None:
    """Absent optional members decode to None."""
    assert _decode(_event("order.action", {"action": "X"})).data == ActionRequest(action="X")


def test_delete_decodes_with_and_without_revision() -> None:
    """order.deleted becomes a Delete; its revision is optional."""
    assert _decode(_event("order.deleted", {"revision": 9})).data == Delete(revision=9)
    assert _decode(_event("order.deleted", {})).data == Delete(revision=None)


@pytest.mark.parametrize(
    ("event_type", "kind", "action"),
    [
        ("order.confirmed", "confirmed", "ConfirmOrder"),
        ("order.shipped", "shipped", "ConfirmShipment"),
        ("order.delivered", "delivered", "ConfirmDelivery"),
        ("order.cancelled", "cancelled", "ConfirmCancellation"),
        ("order.completed", "completed", "ConfirmCompletion"),
    ],
)
def test_lifecycle_types_map_to_their_default_actions(
    event_type: str, kind: str, action: str
) -> None:
    """Each lifecycle type triggers the documented Engage action by default."""
    assert _decode(_event(event_type, {})).data == Lifecycle(kind=kind, action=action)  # type: ignore[arg-type]


def test_lifecycle_carries_snapshot_revision_language_and_action_data() -> None:
    """A lifecycle event keeps its snapshot and the data for the action."""
    data = {"order": ORDER, "revision": 5, "language": "en-US", "actionData": {"eta": "tomorrow"}}
    assert _decode(_event("order.shipped", data)).data == Lifecycle(
        kind="shipped",
        action="ConfirmShipment",
        order=ORDER,
        revision=5,
        language="en-US",
        action_data={"eta": "tomorrow"},
    )


def test_action_map_overrides_and_falls_back_to_defaults() -> None:
    """A configured action map wins for the types it names; the others keep their default."""
    overrides = {"order.shipped": "ParcelOnItsWay"}
    shipped = _decode(_event("order.shipped", {}), action_map=overrides).data
    delivered = _decode(_event("order.delivered", {}), action_map=overrides).data
    assert (shipped, delivered) == (
        Lifecycle(kind="shipped", action="ParcelOnItsWay"),
        Lifecycle(kind="delivered", action="ConfirmDelivery"),
    )


def test_integral_revisions_written_as_floats_become_ints() -> None:
    """JSON Schema counts 3.0 as an integer; the model still holds an int."""
    event = _decode(
        b'{"specversion":"1.0","id":"e","source":"s","type":"order.deleted",'
        b'"subject":"ORD-1","time":"2025-03-01T10:15:00Z","data":{"revision":3.0}}'
    )
    assert isinstance(event.data, Delete)
    assert (event.data, type(event.data.revision)) == (Delete(revision=3), int)


def test_no_key_skips_the_key_check() -> None:
    """Without a record key (the validate command) the subject alone names the order."""
    assert _decode(_event("order.deleted", {}), key=None).order_id == "ORD-1"


@pytest.mark.parametrize("value", [None, b""])
def test_empty_value(value: bytes | None) -> None:
    """A tombstone or a zero-length value is `empty`; the key still names the order."""
    assert _refusal(value, key=b"ORD-7") == (
        "empty",
        "the record has no value (a tombstone or an empty message)",
        "ORD-7",
    )


def test_empty_value_without_key_names_no_order() -> None:
    """An empty record without a key has no orderId to report."""
    with pytest.raises(InvalidEventError) as caught:
        decode_record(key=None, value=None, topic="t", partition=0, offset=0)
    assert (caught.value.reason, caught.value.order_id) == ("empty", None)


def test_too_large_is_refused_before_parsing() -> None:
    """A value over the limit is `too_large` (even if it is valid JSON)."""
    document = _event("order.upserted", {"order": {**ORDER, "pad": "x" * 2000}})
    size = len(orjson.dumps(document))
    assert _refusal(document, max_bytes=1024) == (
        "too_large",
        f"the value is {size} bytes; the limit is 1024",
        "ORD-1",
    )


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        (b'{"id": ', "not UTF-8 JSON: unexpected end of data at column 8"),
        (
            b"\xff\xfe{}",
            "not UTF-8 JSON: str is not valid UTF-8: surrogates not allowed at column 1",
        ),
        (
            b'{"a": 1}\n{"b": 2}',
            "not UTF-8 JSON: unexpected content after document at line 2, column 1",
        ),
    ],
)
def test_undecodable(value: bytes, detail: str) -> None:
    """Bytes that are not one UTF-8 JSON document are `undecodable`, with where it broke."""
    assert _refusal(value) == ("undecodable", detail, "ORD-1")


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (b"[]", "an array"),
        (b'"x"', "a string"),
        (b"3", "a number"),
        (b"null", "null"),
        (b"true", "a boolean"),
    ],
)
def test_not_an_object(value: bytes, kind: str) -> None:
    """JSON that is not an object is `not_an_object`."""
    assert _refusal(value) == (
        "not_an_object",
        f"the event must be a JSON object, not {kind}",
        "ORD-1",
    )


def test_unknown_type_names_the_type() -> None:
    """A type this service does not handle is `unknown_type`, whatever else is wrong."""
    reason, detail, order_id = _refusal({"type": "order.refunded", "subject": "ORD-2"})
    assert (reason, order_id) == ("unknown_type", "ORD-2")
    assert detail.startswith("type: 'order.refunded' is not an event type this service handles (")


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        (
            _event("order.upserted", {"order": {"orderId": 5}}),
            "data.order.orderId: must be a string",
        ),
        (_event("order.upserted", {}), "data.order: is required"),
        (_event("order.action", {"action": ""}), "data.action: must not be empty"),
        (
            _event("order.action", {"action": "A", "minRevision": -1}),
            "data.minRevision: must be ≥ 0",
        ),
        (
            _event("order.deleted", {"order": ORDER}),
            "data.order: is not allowed here (allowed: revision)",
        ),
        (
            _event("order.deleted", {}, time="2025-03-01"),
            "time: must be an RFC 3339 date-time with an offset, e.g. 2025-03-01T10:15:00Z",
        ),
        (_event("order.deleted", {}, specversion="1"), 'specversion: must be "1.0"'),
        (
            _event("order.deleted", {}, type=7),
            "type: must be one of " + ", ".join(EVENT_TYPES),
        ),
    ],
)
def test_schema_violations_name_the_path(document: dict[str, Any], detail: str) -> None:
    """Contract violations are `schema` with "<path>: <problem>" as the detail."""
    assert _refusal(document) == ("schema", detail, "ORD-1")


def test_order_id_comes_from_the_key_when_the_subject_is_unreadable() -> None:
    """With no usable subject, the record key names the order; with neither, nothing does."""
    document = _event("order.deleted", {})
    document["subject"] = 12
    assert _refusal(document, key=b"ORD-9")[2] == "ORD-9"
    assert _refusal(document, key=None)[2] is None
    assert _refusal(document, key=b"\xff")[2] is None


@pytest.mark.parametrize(
    ("key", "detail"),
    [
        (b"ORD-2", "subject: 'ORD-1' differs from the record key, which is 'ORD-2'"),
        (b"", "subject: 'ORD-1' differs from the record key, which is empty"),
        (b"\xff", "subject: 'ORD-1' differs from the record key, which is not UTF-8"),
    ],
)
def test_key_mismatch(key: bytes, detail: str) -> None:
    """A record key that is not the subject is `key_mismatch`; the subject names the order."""
    assert _refusal(_event("order.deleted", {}), key=key) == ("key_mismatch", detail, "ORD-1")


def test_missing_key_when_required_names_the_order_from_the_subject() -> None:
    """With require_key, a keyless record is `missing_key` and still names its order."""
    with pytest.raises(InvalidEventError) as caught:
        decode_record(
            key=None,
            value=orjson.dumps(_event("order.deleted", {})),
            topic="orders",
            partition=0,
            offset=0,
            require_key=True,
        )
    assert (caught.value.reason, caught.value.detail, caught.value.order_id) == (
        "missing_key",
        "the record has no key; the key must be the orderId",
        "ORD-1",
    )


def test_required_key_that_matches_is_accepted() -> None:
    """require_key accepts a record keyed by its subject."""
    event = decode_record(
        key=b"ORD-1",
        value=orjson.dumps(_event("order.deleted", {})),
        topic="orders",
        partition=0,
        offset=0,
        require_key=True,
    )
    assert event.order_id == "ORD-1"


@pytest.mark.parametrize("event_type", ["order.upserted", "order.confirmed"])
def test_order_id_mismatch(event_type: str) -> None:
    """An order body whose orderId differs from the subject is `order_id_mismatch`."""
    document = _event(event_type, {"order": {"orderId": "ORD-X"}})
    assert _refusal(document) == (
        "order_id_mismatch",
        "data.order.orderId: 'ORD-X' differs from subject 'ORD-1'",
        "ORD-1",
    )


def test_long_keys_and_member_names_are_shortened_in_details() -> None:
    """A hostile key or member name cannot blow up the detail that goes into headers and logs."""
    _, key_detail, _ = _refusal(_event("order.deleted", {}), key=b"K" * 5000)
    _, name_detail, _ = _refusal(_event("order.deleted", {"n" * 5000: 1}))
    assert (len(key_detail) < 200, len(name_detail), name_detail[:7]) == (True, 500, "data.nn")


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=64))
def test_arbitrary_bytes_never_crash_the_decoder(raw: bytes) -> None:
    """Any bytes either decode or raise InvalidEventError, never anything else."""
    result = _attempt(raw, key=b"ORD-1")
    if isinstance(result, InvalidEventError):
        assert result.reason in {"empty", "undecodable", "not_an_object", "schema", "unknown_type"}


@settings(max_examples=150, deadline=None)
@given(
    base=st.sampled_from(sorted(p.stem for p in EXAMPLES.glob("*.json"))),
    path=st.lists(
        st.sampled_from(
            ["data", "order", "orderId", "contact", "type", "revision", "time", "action"]
        ),
        min_size=1,
        max_size=3,
    ),
    replacement=_json,
)
def test_mutated_examples_never_crash_the_decoder(
    base: str, path: list[str], replacement: object
) -> None:
    """Replacing any member of a valid event with any JSON either decodes or is refused cleanly."""
    document: Any = _example(base)
    target = document
    for part in path[:-1]:
        if not isinstance(target, dict) or not isinstance(target.get(part), dict):
            break
        target = target[part]
    else:
        target[path[-1]] = replacement
    result = _attempt(document, key=None)
    if isinstance(result, InvalidEventError):
        assert result.detail
    else:
        assert result.order_id == document["subject"]
