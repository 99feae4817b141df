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
    ID_MAX_CHARS,
    MAX_DEPTH,
    ActionRequest,
    Delete,
    Lifecycle,
    OrderEvent,
    Upsert,
    clip_id,
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


def _nested(levels: int, innermost: object) -> object:
    """``innermost`` inside ``levels`` arrays and objects (alternating), built without recursion."""
    value = innermost
    for level in range(levels):
        value = [value] if level % 2 else {"n": value}
    return value


DEEP_DETAIL = f"data: nests arrays and objects more than {MAX_DEPTH} levels deep (the limit)"


@pytest.mark.parametrize("innermost", [1, [], {}, "[[[[[[[[[["])
@pytest.mark.parametrize(
    ("event_type", "member"),
    [
        ("order.upserted", "order"),
        ("order.action", "data"),
        ("order.shipped", "actionData"),
    ],
)
def test_data_may_nest_64_levels_and_no_more(
    event_type: str, member: str, innermost: object
) -> None:
    """`data` (level 1) may nest 64 levels of arrays and objects; 65 is refused as `too_deep`."""

    def event(levels: int) -> dict[str, Any]:
        # data is level 1 and its member level 2, so levels - 2 more below, an innermost
        # array or object being one of them.
        below = levels - 2 - isinstance(innermost, list | dict)
        body: Any = {"deep": _nested(below, innermost)}
        data: dict[str, Any] = {member: ORDER | body if member == "order" else body}
        if event_type == "order.action":
            data["action"] = "A"
        return _event(event_type, data)

    # Compact and indented: whitespace must not change the verdict.
    assert isinstance(_decode(event(MAX_DEPTH)), OrderEvent)
    pretty = orjson.dumps(event(MAX_DEPTH), option=orjson.OPT_INDENT_2)
    assert isinstance(_decode(pretty), OrderEvent)
    assert _refusal(event(MAX_DEPTH + 1)) == ("too_deep", DEEP_DETAIL, "ORD-1")


@pytest.mark.parametrize("levels", [255, 1_000])
def test_nesting_orjson_cannot_encode_again_is_too_deep(levels: int) -> None:
    """Bodies past orjson's 254 encodable levels are refused, never handed to the Engage client."""
    deep = b"[" * levels + b"]" * levels
    data = b'{"order":{"orderId":"ORD-1","x":' + deep + b"}}"
    assert _refusal(_raw_event(b"order.upserted", data)) == ("too_deep", DEEP_DETAIL, "ORD-1")


def _depth(value: object) -> int:
    """Reference: levels of arrays and objects in ``value`` (recursive; the spines are short)."""
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@st.composite
def _spines(draw: st.DrawFn) -> object:
    """A chain 60-70 levels long, each level an array or object with random siblings."""
    value: object = draw(st.sampled_from([1, "x", [], {}, None]))
    for _ in range(draw(st.integers(60, 70))):
        siblings = draw(st.lists(st.sampled_from([0, "]]", [], {}, [1], {"k": [2]}]), max_size=2))
        at = draw(st.integers(0, len(siblings)))
        members = [*siblings[:at], value, *siblings[at:]]
        if draw(st.booleans()):
            value = members
        else:
            value = {f"k{i}": member for i, member in enumerate(members)}
    return value


@settings(max_examples=100, deadline=None)
@given(spine=_spines())
def test_too_deep_agrees_with_a_plain_depth_count(spine: object) -> None:
    """Around the limit, `too_deep` is refused exactly when data nests more than 64 levels."""
    result = _attempt(_event("order.action", {"action": "A", "data": {"x": spine}}), key=b"ORD-1")
    too_deep = isinstance(result, InvalidEventError) and result.reason == "too_deep"
    assert too_deep == (2 + _depth(spine) > MAX_DEPTH), result


def test_many_shallow_containers_are_not_too_deep() -> None:
    """A wide order (hundreds of small objects, brackets in strings) is not taken for a deep one."""
    items = [{"sku": f"S{i}", "tags": ["[{"] * 3, "price": {"v": i}} for i in range(300)]
    event = _decode(_event("order.upserted", {"order": ORDER | {"lineItems": {"items": items}}}))
    assert isinstance(event.data, Upsert)
    assert event.data.order["lineItems"]["items"] == items


@pytest.mark.parametrize(
    ("literal", "revision"),
    [
        (b"0", 0),
        (b"3.0", 3),
        (b"9007199254740991.0", 2**53 - 1),
        (b"9007199254740992", 2**53),
        (b"9223372036854775807", 2**63 - 1),
    ],
)
@pytest.mark.parametrize("member", ["revision", "minRevision"])
def test_revisions_up_to_int64_are_kept_exactly(literal: bytes, revision: int, member: str) -> None:
    """Revisions from 0 to 2**63 - 1 decode to exactly that int (a float form only below 2**53)."""
    data = b'{"action":"A","minRevision":@}' if member == "minRevision" else b'{"revision":@}'
    event_type = b"order.action" if member == "minRevision" else b"order.deleted"
    event = _decode(_raw_event(event_type, data.replace(b"@", literal)))
    got = event.data
    kept = got.min_revision if isinstance(got, ActionRequest) else got.revision
    assert (kept, type(kept)) == (revision, int)


@pytest.mark.parametrize(
    ("literal", "problem"),
    [
        (b"9223372036854775808", "must be ≤ 9223372036854775807"),
        (b"18446744073709551615", "must be ≤ 9223372036854775807"),
        (b"123456789012345678901234567890", "must be ≤ 9223372036854775807"),
        (b"1e20", "must be ≤ 9223372036854775807"),
        (b"1e308", "must be ≤ 9223372036854775807"),
        (b"9007199254740992.0", "from 2^53 on must be written as a plain integer"),
        (b"1e18", "from 2^53 on must be written as a plain integer"),
        (b"1.2345678901234567e17", "from 2^53 on must be written as a plain integer"),
    ],
)
@pytest.mark.parametrize("member", ["revision", "minRevision"])
def test_revisions_no_int64_or_double_holds_exactly_are_refused(
    literal: bytes, problem: str, member: str
) -> None:
    """Beyond 2**63 - 1, or a float form from 2**53 on, a revision is refused as `schema`."""
    data = b'{"action":"A","minRevision":@}' if member == "minRevision" else b'{"revision":@}'
    event_type = b"order.action" if member == "minRevision" else b"order.deleted"
    reason, detail, order_id = _refusal(_raw_event(event_type, data.replace(b"@", literal)))
    assert (reason, order_id) == ("schema", "ORD-1")
    assert detail.startswith(f"data.{member}: {problem}")


def _raw_event(event_type: bytes, data: bytes) -> bytes:
    return (
        b'{"specversion":"1.0","id":"e","source":"s","type":"' + event_type + b'",'
        b'"subject":"ORD-1","time":"2025-03-01T10:15:00Z","data":' + data + b"}"
    )


@pytest.mark.parametrize(
    ("envelope", "detail"),
    [
        ({"id": "e" * 257}, "id: must be at most 256 characters"),
        ({"subject": "O" * 257}, "subject: must be at most 256 characters"),
        ({"source": "/" * 1025}, "source: must be at most 1024 characters"),
    ],
)
def test_ids_beyond_the_contract_lengths_are_refused(envelope: dict[str, str], detail: str) -> None:
    """id and subject hold at most 256 characters, source 1024: beyond, the event is `schema`."""
    key = envelope.get("subject", "ORD-1").encode()
    reason, got, _ = _refusal(_event("order.deleted", {}, **envelope), key=key)
    assert (reason, got) == ("schema", detail)


def test_ids_at_the_contract_lengths_are_accepted() -> None:
    """256-character id and subject (even of 4-byte characters) and a 1024-character source pass."""
    wide = "\U0001f600"
    document = _event("order.upserted", {"order": ORDER | {"orderId": wide * 256}})
    document |= {"id": wide * 256, "subject": wide * 256, "source": wide * 1024}
    event = _decode(document, key=(wide * 256).encode())
    assert (event.id, event.order_id, event.source) == (wide * 256, wide * 256, wide * 1024)


@pytest.mark.parametrize(
    ("key", "subject"),
    [(b"K" * 600_000, 5), (b"ORD-1", "S" * 600_000), (b"K" * 600_000, None)],
)
def test_a_refusal_names_the_order_by_a_clipped_id(key: bytes, subject: object) -> None:
    """A key or subject beyond 256 characters names the order cut to 255 and "…"."""
    document = _event("order.deleted", {}, subject=subject)
    if subject is None:
        del document["subject"]
    named = subject if isinstance(subject, str) else key.decode()
    _, _, order_id = _refusal(document, key=key)
    assert order_id == named[: ID_MAX_CHARS - 1] + "…"
    if len(key) > ID_MAX_CHARS:
        assert _refusal(None, key=key)[2] == order_id


def test_clip_id_keeps_short_ids_and_is_idempotent() -> None:
    """Ids up to 256 characters are kept; longer ones become 256 characters ending in "…"."""
    exact, long = "x" * ID_MAX_CHARS, "x" * (ID_MAX_CHARS + 1)
    assert (clip_id("ORD-1"), clip_id(exact), clip_id(long)) == (
        "ORD-1",
        exact,
        "x" * (ID_MAX_CHARS - 1) + "…",
    )
    assert clip_id(clip_id(long)) == clip_id(long)
