"""Fuzzing the decoder with hostile records: a valid event or a clean refusal, never a crash.

Every family of tests/hostile.py is fed to ``decode_record`` as the running service calls it
(``require_key=True``). A record either decodes to an ``OrderEvent`` that keeps the contract's
promises, or is refused with an ``InvalidEventError`` whose reason is one of
``events.INVALID_REASONS``; for a refusal, the dead-letter headers and the ``invalid`` outcome
built from it are valid against their schemas and their fixed part is small.

The slow tests generate ``FAMILY_RECORDS`` records per family (18 families and a mix: about 114,000
records); ``FUZZ_DECODER_SCALE`` multiplies that (e.g. 0.1 for a quick local run).
tests/unit/test_events.py covers the decoder's words and reasons case by case; this module
covers volume and breadth.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.errors import InvalidEventError
from consumer.events import (
    DEFAULT_MAX_BYTES,
    EVENT_TYPES,
    INVALID_REASONS,
    ActionRequest,
    Delete,
    Lifecycle,
    OrderEvent,
    Upsert,
    decode_record,
)
from consumer.outcomes import (
    DLQ_DETAIL_LIMIT,
    DLQ_PREFIX,
    InputRef,
    Outcome,
    dead_letter_headers,
    dead_letter_problem,
    encode_outcome,
    invalid_outcome,
    outcome_problem,
    peek_identity,
)
from tests.hostile import FAMILIES, HostileRecord, hostile_record

if TYPE_CHECKING:
    import random

    from consumer.outcomes import Operation

SCALE = float(os.environ.get("FUZZ_DECODER_SCALE", "1"))
BATCH = 50
FAMILY_RECORDS = 6_000
EXAMPLES = max(1, round(FAMILY_RECORDS * SCALE / BATCH))
#: Small enough that the ``too_large`` family stays cheap, large enough for real events.
MAX_BYTES = 65_536
TOPIC, PARTITION, OFFSET = "orders.v1", 7, 2**40
AT = datetime(2025, 3, 1, 10, 15, tzinfo=UTC)
#: Headers a producer may have set, including forged dead-letter headers and binary values.
ORIGINAL_HEADERS = [
    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("x-dlq-reason", b"forged"),
    ("binary", b"\xff\x00\xfe"),
    ("", b""),
]
#: Bound on the x-dlq-* headers and on an invalid outcome, the ids and the event type aside.
FIXED_PART_LIMIT = 8_192
#: The producer's max.request.size default: an outcome above it can never be published.
PUBLISHABLE = 1_048_576


def verdict(record: HostileRecord, *, max_bytes: int = MAX_BYTES) -> OrderEvent | InvalidEventError:
    """Decode as the running service does; anything but InvalidEventError propagates."""
    try:
        return decode_record(
            key=record.key,
            value=record.value,
            topic=TOPIC,
            partition=PARTITION,
            offset=OFFSET,
            max_bytes=max_bytes,
            require_key=True,
        )
    except InvalidEventError as error:
        return error


def check_event(record: HostileRecord, event: OrderEvent) -> None:
    """An accepted record keeps every promise the models make to the order book."""
    assert record.key is not None
    assert record.value is not None
    assert 0 < len(record.value) <= MAX_BYTES
    document = orjson.loads(record.value)
    assert event.order_id == document["subject"] == record.key.decode()
    assert event.type in EVENT_TYPES
    assert (event.id, event.source, event.time) == (
        document["id"],
        document["source"],
        document["time"],
    )
    assert all(isinstance(text, str) and text for text in (event.id, event.source, event.time))
    assert (event.topic, event.partition, event.offset) == (TOPIC, PARTITION, OFFSET)
    data = event.data
    expected = {
        "order.upserted": Upsert,
        "order.action": ActionRequest,
        "order.deleted": Delete,
    }.get(event.type, Lifecycle)
    assert type(data) is expected
    revision = data.min_revision if isinstance(data, ActionRequest) else data.revision
    assert revision is None or (type(revision) is int and revision >= 0)
    order = getattr(data, "order", None)
    assert order is None or order["orderId"] == event.order_id


def check_refusal(record: HostileRecord, error: InvalidEventError) -> None:
    """A refusal has a known reason, and everything built from it is valid and small."""
    assert error.reason in INVALID_REASONS, error
    assert isinstance(error.detail, str)
    assert 0 < len(error.detail) <= DLQ_DETAIL_LIMIT, error.detail[:200]
    if error.reason == "empty":
        assert not record.value
    if error.reason == "too_large":
        assert record.value is not None
        assert len(record.value) > MAX_BYTES
    if error.reason == "missing_key":
        assert record.key is None
    order_id = error.order_id
    assert order_id is None or (isinstance(order_id, str) and order_id)
    event_id, event_type = peek_identity(error, record.value)

    headers = dead_letter_headers(
        headers=ORIGINAL_HEADERS,
        error=error,
        topic=TOPIC,
        partition=PARTITION,
        offset=OFFSET,
        at=AT,
        event_id=event_id,
    )
    assert dead_letter_problem(headers) is None
    kept = [h for h in ORIGINAL_HEADERS if not h[0].startswith(DLQ_PREFIX)]
    assert headers[: len(kept)] == kept
    added = headers[len(kept) :]
    assert [raw for name, raw in added if name == "x-dlq-reason"] == [error.reason.encode()]
    assert all(name.startswith(DLQ_PREFIX) and isinstance(raw, bytes) for name, raw in added)
    names = len((order_id or "").encode()) + len((event_id or "").encode())
    assert sum(len(name) + len(raw) for name, raw in added) - names <= FIXED_PART_LIMIT

    outcome = invalid_outcome(
        error,
        value=record.value,
        topic=TOPIC,
        partition=PARTITION,
        offset=OFFSET,
        received_at=AT,
        finished_at=AT,
    )
    assert (outcome is None) == (order_id is None)
    if outcome is None:
        return
    encoded = encode_outcome(outcome)
    assert outcome_problem(encoded) is None
    data = orjson.loads(encoded)["data"]
    assert (data["status"], data["reason"], data["orderId"], data["offset"]) == (
        "invalid",
        error.reason,
        order_id,
        OFFSET,
    )
    # The order id appears twice (subject, orderId), the event id twice (id, eventId), the
    # event type once; each as JSON, where a control character takes six bytes.
    in_json = [len(orjson.dumps(text)) for text in (order_id, event_id, event_type)]
    assert len(encoded) - 2 * in_json[0] - 2 * in_json[1] - in_json[2] <= FIXED_PART_LIMIT


def check(record: HostileRecord) -> OrderEvent | InvalidEventError:
    """Decode one record and check whichever way it went."""
    result = verdict(record)
    if isinstance(result, InvalidEventError):
        check_refusal(record, result)
    else:
        check_event(record, result)
    return result


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=False,
)
@given(rng=st.randoms(use_true_random=True))
def test_hostile_records_decode_or_are_refused_cleanly(family: str, rng: random.Random) -> None:
    """Each family's records decode to a sound event or a refusal with valid dead-letter data."""
    for _ in range(BATCH):
        check(hostile_record(rng, max_bytes=MAX_BYTES, family=family))


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=True))
def test_mixed_streams_of_hostile_records_decode_or_are_refused_cleanly(
    rng: random.Random,
) -> None:
    """Families mixed at random (as on a real topic) behave as each does alone."""
    for _ in range(BATCH):
        check(hostile_record(rng, max_bytes=MAX_BYTES))


@settings(max_examples=200, deadline=None)
@given(key=st.none() | st.binary(max_size=40), value=st.none() | st.binary(max_size=400))
def test_any_key_and_value_bytes_are_decoded_or_refused_cleanly(
    key: bytes | None, value: bytes | None
) -> None:
    """Hypothesis' own bytes (with its shrinking) for key and value, including null ones."""
    check(HostileRecord(family="bytes", key=key, value=value))


@pytest.mark.parametrize(
    ("depth", "max_bytes", "reason"),
    [
        (1_025, MAX_BYTES, "undecodable"),
        (10_000, MAX_BYTES, "undecodable"),
        (1_000_000, 10**8, "undecodable"),
        (1_000_000, DEFAULT_MAX_BYTES, "too_large"),
    ],
)
@pytest.mark.parametrize(("opener", "closer"), [(b"[", b"]"), (b'{"a":', b"}")])
def test_deep_nesting_is_refused_without_recursion(
    depth: int, max_bytes: int, reason: str, opener: bytes, closer: bytes
) -> None:
    """Nesting beyond orjson's 1024 levels is `undecodable` (never a RecursionError)."""
    value = opener * depth + b"1" + closer * depth
    result = verdict(HostileRecord(family="deep", key=b"ORD-1", value=value), max_bytes=max_bytes)
    assert isinstance(result, InvalidEventError)
    assert (result.reason, result.order_id) == (reason, "ORD-1")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_non_finite_numbers_are_undecodable(literal: str) -> None:
    """NaN and infinities are not JSON: the record is `undecodable`, whatever member holds them."""
    value = orjson.dumps(valid_event_with_revision()).replace(b'"R"', literal.encode())
    result = verdict(HostileRecord(family="nan", key=b"ORD-1", value=value))
    assert isinstance(result, InvalidEventError)
    assert result.reason == "undecodable"


@pytest.mark.parametrize(
    "member", ["id", "source", "subject", "time", "datacontenttype", "type", "language"]
)
@pytest.mark.parametrize("text", ["x" * 600_000, "application/" + "+" * 600_000, "9" * 600_000])
def test_huge_strings_in_checked_members_decode_in_bounded_time(member: str, text: str) -> None:
    """A 600 KB string in any checked member is refused or accepted in well under a second."""
    # A valid event otherwise, so that validation reaches the member (it stops at a first error).
    event = valid_event_with_revision() | {"data": {}}
    if member == "language":
        event |= {"type": "order.shipped", "data": {"language": text}}
    else:
        event[member] = text
    record = HostileRecord(family="huge", key=b"ORD-1", value=orjson.dumps(event))
    started = time.perf_counter()
    result = verdict(record, max_bytes=DEFAULT_MAX_BYTES)
    # Backtracking in a pattern would take minutes on 600 KB; linear work takes milliseconds.
    assert time.perf_counter() - started < 1.0
    assert isinstance(result, InvalidEventError | OrderEvent)


def valid_event_with_revision() -> dict[str, object]:
    """A valid ``order.deleted`` whose revision is the placeholder string "R"."""
    return {
        "specversion": "1.0",
        "id": "evt-1",
        "source": "/orders",
        "type": "order.deleted",
        "subject": "ORD-1",
        "time": "2025-03-01T10:15:00Z",
        "data": {"revision": "R"},
    }


# -- what the decoder lets through must be sendable and reportable --------------------------------


def outcome_of(event: OrderEvent) -> Outcome:
    """The outcome the pipeline would publish for ``event`` once Engage accepted it."""
    data = event.data
    operation: Operation = "action"
    revision = None
    if isinstance(data, Upsert | Delete):
        operation = "upsert" if isinstance(data, Upsert) else "delete"
        revision = data.revision
    elif isinstance(data, ActionRequest):
        revision = data.min_revision
    else:
        revision = data.revision
    return Outcome(
        origin=InputRef.of_event(event),
        operation=operation,
        status="accepted",
        received_at=AT,
        finished_at=AT,
        http_status=202,
        version_tag="v" * 40,
        attempts=1,
        action=getattr(data, "action", None),
        revision=revision,
    )


def engage_payloads(event: OrderEvent) -> list[bytes]:
    """The request bodies the Engage client would encode for ``event`` (it uses orjson)."""
    data = event.data
    payloads = [getattr(data, "order", None), getattr(data, "data", None)]
    payloads.append(getattr(data, "action_data", None))
    return [orjson.dumps(dict(body)) for body in payloads if body is not None]


def check_publishable(record: HostileRecord, *, max_bytes: int = MAX_BYTES) -> None:
    """An accepted event can be sent to Engage and its outcome published; refusals too."""
    result = verdict(record, max_bytes=max_bytes)
    if isinstance(result, InvalidEventError):
        return
    engage_payloads(result)
    encoded = encode_outcome(outcome_of(result))
    assert outcome_problem(encoded) is None
    assert len(encoded) <= PUBLISHABLE


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=True))
def test_every_accepted_event_can_be_sent_and_reported(rng: random.Random) -> None:
    """Whatever the decoder accepts, orjson can encode its Engage bodies and its outcome."""
    for _ in range(BATCH):
        check_publishable(hostile_record(rng, max_bytes=MAX_BYTES))


@pytest.mark.parametrize(
    "literal",
    ["1e20", "1e308", "18446744073709551616", "123456789012345678901234567890"],
)
@pytest.mark.parametrize("event_type", ["order.deleted", "order.action"])
def test_revisions_beyond_64_bits_are_refused_or_kept_exactly(
    literal: str, event_type: str
) -> None:
    """A revision that no int64 holds is refused, or kept exactly and reported without error."""
    event = valid_event_with_revision()
    event["type"] = event_type
    event["data"] = (
        {"action": "A", "minRevision": "R"} if event_type == "order.action" else {"revision": "R"}
    )
    value = orjson.dumps(event).replace(b'"R"', literal.encode())
    result = verdict(HostileRecord(family="big", key=b"ORD-1", value=value))
    if isinstance(result, InvalidEventError):
        assert result.reason == "schema"
        return
    data = result.data
    revision = data.min_revision if isinstance(data, ActionRequest) else data.revision
    assert revision == int(Decimal(literal))
    assert outcome_problem(encode_outcome(outcome_of(result))) is None


@pytest.mark.parametrize("depth", [260, 1_000])
@pytest.mark.parametrize("member", ["order", "data"])
def test_deeply_nested_bodies_are_refused_or_sendable(depth: int, member: str) -> None:
    """A body Engage would get is either refused by the decoder or encodable by the client."""
    event = valid_event_with_revision()
    if member == "order":
        event["type"] = "order.upserted"
        event["data"] = {"order": {"orderId": "ORD-1", "deep": "R"}}
    else:
        event["type"] = "order.action"
        event["data"] = {"action": "A", "data": {"deep": "R"}}
    nested = b"[" * depth + b"]" * depth
    value = orjson.dumps(event).replace(b'"R"', nested)
    check_publishable(HostileRecord(family="deep", key=b"ORD-1", value=value))


# -- what the consumer publishes about a record must fit where the record fitted ------------------

#: A key (600 KB) and value that together fit Kafka's default 1 MB limit, as input records must.
HUGE = "K" * 600_000


def dead_letter_size(record: HostileRecord, error: InvalidEventError) -> int:
    """Bytes of the dead-letter record: the original key and value plus every header."""
    headers = dead_letter_headers(
        headers=[],
        error=error,
        topic=TOPIC,
        partition=PARTITION,
        offset=OFFSET,
        at=AT,
        event_id=peek_identity(error, record.value)[0],
    )
    sizes = [len(name) + len(raw) for name, raw in headers]
    return len(record.key or b"") + len(record.value or b"") + sum(sizes)


def invalid_outcome_size(record: HostileRecord, error: InvalidEventError) -> int:
    """Bytes of the ``invalid`` outcome and its key (0 when there is none)."""
    outcome = invalid_outcome(
        error,
        value=record.value,
        topic=TOPIC,
        partition=PARTITION,
        offset=OFFSET,
        received_at=AT,
        finished_at=AT,
    )
    if outcome is None:
        return 0
    return len(encode_outcome(outcome)) + len(outcome.origin.order_id.encode())


def huge_identity_records() -> list[HostileRecord]:
    """Refused records whose key, subject or id is most of Kafka's 1 MB record limit."""
    event = valid_event_with_revision()
    event["data"] = {"revision": -1}
    with_subject = event | {"subject": HUGE[:400_000], "id": HUGE[:400_000]}
    return [
        HostileRecord(family="tombstone with a huge key", key=HUGE.encode(), value=None),
        HostileRecord(family="huge key, bad JSON", key=HUGE.encode(), value=b"{"),
        HostileRecord(family="huge subject and id", key=b"ORD-1", value=orjson.dumps(with_subject)),
    ]


@pytest.mark.parametrize("record", huge_identity_records(), ids=lambda r: r.family)
def test_dead_letter_record_fits_where_its_input_fitted(record: HostileRecord) -> None:
    """The dead-letter copy of a refused record adds at most a few KB to the input."""
    error = verdict(record, max_bytes=DEFAULT_MAX_BYTES)
    assert isinstance(error, InvalidEventError)
    input_size = len(record.key or b"") + len(record.value or b"")
    assert dead_letter_size(record, error) <= input_size + FIXED_PART_LIMIT


@pytest.mark.parametrize("record", huge_identity_records(), ids=lambda r: r.family)
def test_invalid_outcome_stays_small(record: HostileRecord) -> None:
    """The ``invalid`` outcome of a refused record (with its key) is a few KB at most."""
    error = verdict(record, max_bytes=DEFAULT_MAX_BYTES)
    assert isinstance(error, InvalidEventError)
    assert invalid_outcome_size(record, error) <= FIXED_PART_LIMIT


def test_accepted_event_outcome_fits_the_broker() -> None:
    """Ids of 350 KB are refused (`schema`); the longest the contract allows get a small outcome."""
    oid = HUGE[:350_000]
    event = valid_event_with_revision() | {"id": HUGE[:350_000], "subject": oid}
    event["data"] = {"revision": 1}
    record = HostileRecord(family="huge ids", key=oid.encode(), value=orjson.dumps(event))
    refused = verdict(record, max_bytes=DEFAULT_MAX_BYTES)
    assert isinstance(refused, InvalidEventError)
    assert (refused.reason, refused.detail) == ("schema", "id: must be at most 256 characters")
    # The contract's limits (id and subject 256 characters, source 1024, action 100), each
    # character four bytes in UTF-8.
    wide = "\U0001f600"
    longest = valid_event_with_revision() | {
        "id": wide * 256,
        "subject": wide * 256,
        "source": wide * 1024,
        "type": "order.action",
        "data": {"action": wide * 100, "minRevision": 2**63 - 1},
    }
    record = HostileRecord(
        family="longest ids", key=(wide * 256).encode(), value=orjson.dumps(longest)
    )
    accepted = verdict(record, max_bytes=DEFAULT_MAX_BYTES)
    assert isinstance(accepted, OrderEvent)
    check_publishable(record, max_bytes=DEFAULT_MAX_BYTES)
    assert len(encode_outcome(outcome_of(accepted))) <= FIXED_PART_LIMIT
