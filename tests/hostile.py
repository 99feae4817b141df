"""Hostile Kafka records: what a broken or malicious producer can put on an input topic.

One generator per family of hostility (non-JSON bytes, invalid UTF-8, wrong types, huge strings,
deep nesting, missing and extra members, unknown types, keys that disagree with the subject,
oversized values, tombstones, NaN and infinities, numbers beyond 64 bits, unicode edge cases,
repeated members, …). Each takes a ``random.Random`` so that the same code feeds hypothesis
(``st.randoms()``) in the fuzz tests and a seeded corpus in the integration tests.

Most families start from a valid event and break one thing, so the decoder has to look past the
envelope; a few (``valid``, ``extra_member``, ``unicode``, ``big_number``) may well stay valid,
which is the point: the decoder must accept those and nothing downstream may choke on them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from consumer.events import EVENT_TYPES

if TYPE_CHECKING:
    import random
    from collections.abc import Callable

JsonValue = Any


@dataclass(frozen=True, kw_only=True, slots=True)
class HostileRecord:
    """One input record and the family of hostility it comes from."""

    family: str
    key: bytes | None
    value: bytes | None

    def __repr__(self) -> str:
        # Hypothesis prints failing records; a 1 MB value would bury the report.
        def short(raw: bytes | None) -> str:
            return repr(raw) if raw is None or len(raw) <= 300 else f"{raw[:300]!r}…({len(raw)} B)"

        return f"HostileRecord({self.family}, key={short(self.key)}, value={short(self.value)})"


ENVELOPE: Final = ("specversion", "id", "source", "type", "subject", "time", "data")
#: Strings that broke parsers, loggers or terminals somewhere (as text: encodable to UTF-8).
EDGE_TEXT: Final = (
    "",
    " ",
    "\x00",
    "ORD\x00-1",
    "ORD-\u202e1-DRO",  # right-to-left override
    "\u200fORD\u200e",  # RTL and LTR marks
    "\ufeffORD-1",  # byte-order mark
    "ORD\u200b-1",  # zero-width space
    "e\u0301",  # decomposed é
    "\u00e9",  # composed é
    "\uffff\ufffe",  # noncharacters
    "\U0010ffff",
    "\U0001f600\U0001f600",
    "\n\r\t\x1b[31m",
    '"; DROP TABLE orders; --',
    "${jndi:ldap://127.0.0.1/a}",
    "%s%n%x",
    "../../etc/passwd",
    "ORD-1 ",
    "\\u0000",
)
#: JSON escapes that orjson must refuse (lone surrogates) or accept (a pair, NUL).
EDGE_ESCAPES: Final = (
    "\\ud800",
    "\\udfff",
    "\\ud800x",
    "\\udc00\\ud800",
    "\\ud83d\\ude00",
    "\\u0000",
)
#: Byte sequences that are not UTF-8 (overlong, surrogates, beyond U+10FFFF, truncated).
BAD_UTF8: Final = (
    b"\xff",
    b"\xfe\xff",
    b"\x80",
    b"\xc0\x80",
    b"\xc1\xbf",
    b"\xe0\x80\xaf",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xe2\x82",
    b"\xf0\x9f\x98",
)
#: Number literals around the edges of int64/uint64/double, spelt as JSON would carry them.
BIG_NUMBERS: Final = (
    "0",
    "-0",
    "-0.0",
    "3.0",
    "0.5",
    "-1",
    "1e-400",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "1e20",
    "1E+19",
    "1e308",
    "1e400",
    "-1e400",
)
NON_FINITE: Final = ("NaN", "-NaN", "Infinity", "-Infinity", "+Infinity", "nan", "inf", "1e999")
SCALARS: Final[tuple[JsonValue, ...]] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    "",
    "x",
    [],
    {},
    [1],
    {"a": 1},
)


def order_id(rng: random.Random) -> str:
    """A plain order id (some orders repeat, so streams touch the same order again)."""
    return f"ORD-{rng.randint(1, 50)}"


def valid_event(rng: random.Random, oid: str | None = None) -> dict[str, Any]:
    """A valid event of a random type for ``oid``."""
    oid = oid or order_id(rng)
    event_type = rng.choice(EVENT_TYPES)
    data: dict[str, Any] = {}
    body = {"orderId": oid, "contact": {"matchKey": f"{oid}@example.com", "matchKeyType": "Email"}}
    if event_type == "order.upserted" or (
        event_type not in {"order.action", "order.deleted"} and rng.random() < 0.5
    ):
        data["order"] = body | {"lineItems": {"items": [], "subTotal": 0}}
    if event_type == "order.action":
        data["action"] = rng.choice(("ConfirmOrder", "Custom-Action", "x" * 100))
        if rng.random() < 0.5:
            data["minRevision"] = rng.randint(0, 9)
        if rng.random() < 0.3:
            data["data"] = {"n": rng.randint(0, 9)}
    elif rng.random() < 0.6:
        data["revision"] = rng.randint(0, 9)
    if event_type not in {"order.upserted", "order.action", "order.deleted"} and rng.random() < 0.3:
        data["language"] = "sv-SE"
        data["actionData"] = {"k": "v"}
    return {
        "specversion": "1.0",
        "id": f"evt-{rng.getrandbits(48):x}",
        "source": "/order-service",
        "type": event_type,
        "subject": oid,
        "time": "2025-03-01T10:15:00Z",
        "datacontenttype": "application/json",
        "data": data,
    }


def _record(family: str, value: dict[str, Any] | bytes, key: bytes | None) -> HostileRecord:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return HostileRecord(family=family, key=key, value=raw)


def _keyed(family: str, event: dict[str, Any]) -> HostileRecord:
    """``event`` keyed by its subject, as a well-behaved producer would key it."""
    return _record(family, event, str(event["subject"]).encode())


def _paths(event: dict[str, Any]) -> list[tuple[str, ...]]:
    """Every member path of ``event`` (objects only), e.g. ("data", "order", "orderId")."""
    out: list[tuple[str, ...]] = []

    def walk(node: object, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for name, child in node.items():
                out.append((*path, name))
                walk(child, (*path, name))

    walk(event, ())
    return out


def _set(event: dict[str, Any], path: tuple[str, ...], value: JsonValue) -> None:
    target = event
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _raw(event: dict[str, Any], path: tuple[str, ...], literal: str) -> bytes:
    """``event`` as JSON with the member at ``path`` spelt as the raw ``literal``."""
    marker = "\x01MARK\x01"
    _set(event, path, marker)
    return orjson.dumps(event).replace(orjson.dumps(marker), literal.encode())


# -- the families ---------------------------------------------------------------------------------


def valid(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A valid event (the control group)."""
    return _keyed("valid", valid_event(rng))


def raw_bytes(rng: random.Random, max_bytes: int) -> HostileRecord:
    """Arbitrary bytes, sometimes dressed as the start of an object."""
    raw = rng.randbytes(rng.randint(1, 200))
    return _record("raw_bytes", rng.choice((b"", b"{", b'{"', b"[")) + raw, rng.randbytes(4))


def invalid_utf8(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A valid event with a byte sequence that is not UTF-8 inside a string, or anywhere."""
    event = valid_event(rng)
    value = orjson.dumps(event)
    bad = rng.choice(BAD_UTF8)
    if rng.random() < 0.7:
        value = value.replace(b'"ORD-', b'"ORD-' + bad, 1)
    else:
        cut = rng.randint(0, len(value))
        value = value[:cut] + bad + value[cut:]
    return _record("invalid_utf8", value, event["subject"].encode())


def wrong_type(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A valid event with one member (at any depth) replaced by a value of another type."""
    event = valid_event(rng)
    key = event["subject"].encode()
    path = rng.choice(_paths(event))
    _set(event, path, rng.choice(SCALARS))
    return _record("wrong_type", event, key)


def huge_string(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A valid event with one string member made long (up to near the size limit)."""
    event = valid_event(rng)
    size = rng.choice((300, 1_001, 5_000, max_bytes // 4, max_bytes // 2, max_bytes - 400))
    text = rng.choice(("x", "é", "\u202e", "\x00", "\U0001f600", "-", "9", "application/+")) * max(
        1, size // 4
    )
    paths = [p for p in _paths(event) if isinstance(_get(event, p), str)]
    path = rng.choice([*paths, ("data", "language"), ("datacontenttype",), ("ext",)])
    _set(event, path, text)
    key = event["subject"].encode() if rng.random() < 0.8 else text.encode()[: max_bytes // 8]
    return _record("huge_string", event, key)


def _get(event: dict[str, Any], path: tuple[str, ...]) -> object:
    node: Any = event
    for part in path:
        node = node[part]
    return node


def deep_nesting(rng: random.Random, max_bytes: int) -> HostileRecord:
    """Arrays or objects nested up to 100,000 deep, at the top or inside ``data``."""
    depth = rng.choice((2, 64, 512, 1023, 1024, 1025, 2_000, 10_000, 100_000))
    opener, closer = rng.choice(((b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")))
    nested = opener * depth + b"1" + closer * depth
    event = valid_event(rng)
    if rng.random() < 0.3:
        return _record("deep_nesting", nested, event["subject"].encode())
    path = rng.choice((("data", "data"), ("data", "actionData"), ("data", "order", "x"), ("x",)))
    if path[1:2] == ("order",) and "order" not in event["data"]:
        path = ("data", "extra")
    return _record("deep_nesting", _raw(event, path, nested.decode()), event["subject"].encode())


def missing_member(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A valid event without one of its members (required or not)."""
    event = valid_event(rng)
    key = event["subject"].encode()
    path = rng.choice([*[(name,) for name in ENVELOPE], *_paths(event)])
    parent: Any = _get(event, path[:-1])
    parent.pop(path[-1], None)
    return _record("missing_member", event, key)


def extra_member(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A valid event with a member added at the top, in ``data`` or in the order body."""
    event = valid_event(rng)
    key = event["subject"].encode()
    name = rng.choice(("ext1", "Ext", "data_base64", "", "x" * 300, "\x00", "naïve", "$ref", "a-b"))
    value = rng.choice(SCALARS)
    where = rng.choice(((), ("data",), ("data", "order"), ("data", "data")))
    parent: Any = _get(event, where) if len(where) < 2 or where[1] in event["data"] else event
    parent[name] = value
    return _record("extra_member", event, key)


def unknown_type(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A ``type`` this service does not handle, or one spelt almost right."""
    event = valid_event(rng)
    event["type"] = rng.choice(
        (
            "order.refunded",
            "",
            "ORDER.UPSERTED",
            "order.upserted ",
            "order.upserted\x00",
            "order.",
            "order.outcome",
            "x" * 10_000,
            *EDGE_TEXT,
        )
    )
    return _keyed("unknown_type", event)


def key_mismatch(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A record key that is not the subject: absent, empty, not UTF-8, close but different."""
    event = valid_event(rng)
    subject = event["subject"]
    key: bytes | None
    if rng.random() < 0.2:
        # The same text in another normalisation form: equal to a reader, not to bytes.
        subject = "\u00e9"
        event["subject"] = subject
        if "order" in event["data"]:
            event["data"]["order"]["orderId"] = subject
        key = unicodedata.normalize("NFD", subject).encode()
    else:
        key = rng.choice(
            (
                None,
                b"",
                b"\xff" + subject.encode(),
                subject.encode() + b" ",
                subject.lower().encode(),
                subject.encode() + b"\x00",
                order_id(rng).encode(),
                b"K" * 5_000,
            )
        )
    return _record("key_mismatch", event, key)


def order_id_mismatch(rng: random.Random, max_bytes: int) -> HostileRecord:
    """An order body whose orderId differs from the subject (sometimes only by normalisation)."""
    event = valid_event(rng)
    event["type"] = rng.choice(("order.upserted", "order.shipped"))
    event["data"] = {"order": {"orderId": "x"}}
    subject = rng.choice(("ORD-1", "\u00e9", "ORD-1 "))
    event["subject"] = subject
    event["data"]["order"]["orderId"] = rng.choice(
        ("ORD-2", "ord-1", unicodedata.normalize("NFD", subject), subject.strip() or "y")
    )
    return _keyed("order_id_mismatch", event)


def too_large(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A value just or far above the size limit (valid JSON or not)."""
    event = valid_event(rng)
    size = max_bytes + rng.choice((1, 2, 100, max_bytes))
    if rng.random() < 0.5:
        value = orjson.dumps(event)
        value += b" " * (size - len(value))
    else:
        value = (rng.randbytes(64) * (size // 64 + 1))[:size]
    return _record("too_large", value, event["subject"].encode())


def empty(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A tombstone (no value) or a zero-length value, with or without a key."""
    key = rng.choice((None, b"", order_id(rng).encode(), b"\xff\xfe"))
    return HostileRecord(family="empty", key=key, value=rng.choice((None, b"")))


def non_finite(rng: random.Random, max_bytes: int) -> HostileRecord:
    """NaN and infinities (and their misspellings) where a number goes."""
    event = valid_event(rng)
    name = "minRevision" if event["type"] == "order.action" else "revision"
    path = rng.choice((("data", name), ("data", "data", "n"), ("id",), ("ext",)))
    if path[1:2] == ("data",) and "data" not in event["data"]:
        path = ("data", name)
    return _record(
        "non_finite", _raw(event, path, rng.choice(NON_FINITE)), event["subject"].encode()
    )


def big_number(rng: random.Random, max_bytes: int) -> HostileRecord:
    """Revisions and other numbers around and beyond the edges of 64-bit integers."""
    event = valid_event(rng)
    name = "minRevision" if event["type"] == "order.action" else "revision"
    path = rng.choice((("data", name), ("data", name), ("ext",), ("id",)))
    return _record(
        "big_number", _raw(event, path, rng.choice(BIG_NUMBERS)), event["subject"].encode()
    )


def unicode_text(rng: random.Random, max_bytes: int) -> HostileRecord:
    """Control characters, bidi overrides, noncharacters and lone surrogates in text members."""
    event = valid_event(rng)
    paths = [p for p in _paths(event) if isinstance(_get(event, p), str)]
    path = rng.choice(paths)
    if rng.random() < 0.4:
        literal = '"ORD' + rng.choice(EDGE_ESCAPES) + '"'
        return _record("unicode", _raw(event, path, literal), event["subject"].encode())
    text = rng.choice(EDGE_TEXT) + rng.choice(("", chr(rng.randint(0xE000, 0x10FFFF))))
    if path in {("subject",), ("data", "order", "orderId")}:
        # Keep the three names of the order in step: only the text itself is hostile.
        event["subject"] = text
        if "order" in event["data"]:
            event["data"]["order"]["orderId"] = text
    else:
        _set(event, path, text)
    return _record("unicode", event, event["subject"].encode())


def repeated_member(rng: random.Random, max_bytes: int) -> HostileRecord:
    """The same member twice with different values (JSON leaves the winner to the parser)."""
    event = valid_event(rng)
    name = rng.choice(("type", "subject", "id", "data", "specversion"))
    other = orjson.dumps(rng.choice(("order.refunded", "ORD-999", 7, {}, None)))
    value = orjson.dumps(event)
    first = b'{"' + name.encode() + b'":' + other + b","
    value = first + value[1:] if rng.random() < 0.5 else value[:-1] + b"," + first[1:-1] + b"}"
    return _record("repeated_member", value, event["subject"].encode())


def broken_json(rng: random.Random, max_bytes: int) -> HostileRecord:
    """A valid event truncated, with a byte flipped, with trailing content, or not an object."""
    event = valid_event(rng)
    value = orjson.dumps(event)
    how = rng.randrange(5)
    if how == 0:
        value = value[: rng.randint(1, len(value) - 1)]
    elif how == 1:
        at = rng.randrange(len(value))
        value = value[:at] + bytes([rng.randrange(256)]) + value[at + 1 :]
    elif how == 2:
        value += rng.choice((b"x", b"{}", b"\n" + value, b"\x00", b" \t\r\n"))
    elif how == 3:
        value = rng.choice((b"\xef\xbb\xbf", b" ", b"\x00")) + value
    else:
        value = orjson.dumps(rng.choice(([event], "event", 1, None, True, [], 1.5)))
    return _record("broken_json", value, event["subject"].encode())


FAMILIES: Final[dict[str, Callable[[random.Random, int], HostileRecord]]] = {
    fn.__name__: fn
    for fn in (
        valid,
        raw_bytes,
        invalid_utf8,
        wrong_type,
        huge_string,
        deep_nesting,
        missing_member,
        extra_member,
        unknown_type,
        key_mismatch,
        order_id_mismatch,
        too_large,
        empty,
        non_finite,
        big_number,
        unicode_text,
        repeated_member,
        broken_json,
    )
}


def hostile_record(
    rng: random.Random, *, max_bytes: int, family: str | None = None
) -> HostileRecord:
    """One record of ``family`` (a random family when None)."""
    make = FAMILIES[family] if family is not None else rng.choice(list(FAMILIES.values()))
    return make(rng, max_bytes)
