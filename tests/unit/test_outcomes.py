"""Outcome events and dead-letter headers: built to their schemas, deterministic where needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import get_args

import orjson
import pytest

from consumer.errors import InvalidEventError
from consumer.events import OrderEvent, Upsert
from consumer.outcomes import (
    DLQ_DETAIL_LIMIT,
    DLQ_KEY_LIMIT,
    InputRef,
    Operation,
    Outcome,
    RecordParts,
    Status,
    dead_letter_headers,
    dead_letter_problem,
    encode_outcome,
    invalid_outcome,
    minimal_outcome,
    outcome_problem,
    peek_identity,
    reduce_dead_letter,
    rfc3339,
)

RECEIVED = datetime(2025, 3, 1, 14, 40, 0, 120_000, tzinfo=UTC)
FINISHED = RECEIVED + timedelta(milliseconds=1523.5)
EVENT = OrderEvent(
    id="evt-7",
    type="order.upserted",
    source="/orders",
    time="2025-03-01T14:39:59Z",
    order_id="ORD-1",
    data=Upsert(order={"orderId": "ORD-1"}, revision=2),
    topic="orders",
    partition=3,
    offset=1042,
)


def _outcome(status: Status, operation: Operation | None, **fields: object) -> Outcome:
    times: dict[str, object] = {"received_at": RECEIVED, "finished_at": FINISHED}
    return Outcome(
        origin=InputRef.of_event(EVENT),
        operation=operation,
        status=status,
        **(times | fields),  # type: ignore[arg-type]
    )


def test_accepted_write_encodes_the_whole_outcome_event() -> None:
    """An outcome becomes a CloudEvent whose data names the input and the result."""
    outcome = _outcome(
        "accepted", "upsert", http_status=302, version_tag="vt-9", attempts=3, engage_ms=900.25
    )
    assert orjson.loads(encode_outcome(outcome)) == {
        "specversion": "1.0",
        "id": "evt-7:upsert",
        "source": "engage-consumer",
        "type": "order.outcome",
        "subject": "ORD-1",
        "time": "2025-03-01T14:40:01.643Z",
        "datacontenttype": "application/json",
        "data": {
            "eventId": "evt-7",
            "eventType": "order.upserted",
            "topic": "orders",
            "partition": 3,
            "offset": 1042,
            "orderId": "ORD-1",
            "operation": "upsert",
            "status": "accepted",
            "httpStatus": 302,
            "versionTag": "vt-9",
            "attempts": 3,
            "reason": None,
            "detail": None,
            "action": None,
            "revision": None,
            "timings": {
                "receivedAt": "2025-03-01T14:40:00.120Z",
                "finishedAt": "2025-03-01T14:40:01.643Z",
                "totalMs": 1523.5,
                "engageMs": 900.25,
            },
        },
    }


@pytest.mark.parametrize("status", [s for s in get_args(Status) if s != "invalid"])
def test_every_status_encodes_to_a_valid_outcome(status: Status) -> None:
    """Outcomes of every non-invalid status pass order-outcome.schema.json."""
    reason = None if status == "accepted" else "write_failed"
    outcome = _outcome(status, "action", action="ConfirmOrder", reason=reason)
    assert outcome_problem(encode_outcome(outcome)) is None


def test_schema_catches_an_outcome_that_breaks_its_rules() -> None:
    """A failed outcome without a reason, or an action outcome without its name, is refused."""
    assert outcome_problem(encode_outcome(_outcome("failed", "upsert"))) == (
        "data.reason: must be a string"
    )
    assert outcome_problem(encode_outcome(_outcome("accepted", "action"))) == (
        "data.action: must be a string"
    )


def test_outcome_id_is_the_same_on_replay_and_differs_by_operation() -> None:
    """The same input and operation give the same id; another operation gives another id."""
    first = orjson.loads(encode_outcome(_outcome("accepted", "upsert")))
    later = _outcome("accepted", "upsert", received_at=FINISHED, finished_at=FINISHED)
    again = orjson.loads(encode_outcome(later))
    action = orjson.loads(encode_outcome(_outcome("accepted", "action", action="ConfirmOrder")))
    assert (first["id"], again["id"], action["id"]) == (
        "evt-7:upsert",
        "evt-7:upsert",
        "evt-7:action",
    )


def test_measured_total_wins_and_durations_are_never_negative() -> None:
    """A measured total_ms is used as given; a wall clock stepping back yields 0, not < 0."""
    measured = orjson.loads(encode_outcome(_outcome("accepted", "delete", total_ms=12.3456)))
    stepped_back = _outcome("accepted", "delete", received_at=FINISHED, finished_at=RECEIVED)
    backwards = orjson.loads(encode_outcome(stepped_back))
    assert measured["data"]["timings"]["totalMs"] == 12.346
    assert backwards["data"]["timings"]["totalMs"] == 0.0


def test_times_are_rfc3339_utc_and_naive_times_are_refused() -> None:
    """Aware times are written in UTC with milliseconds; naive ones raise ValueError."""
    stockholm = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2025, 3, 1, 11, 0, tzinfo=stockholm)) == "2025-03-01T10:00:00.000Z"
    with pytest.raises(ValueError, match="naive"):
        rfc3339(datetime(2025, 3, 1, 11, 0))  # noqa: DTZ001 - the point of the test


def _schema_error() -> InvalidEventError:
    return InvalidEventError("schema", "data.order.orderId: must be a string", order_id="ORD-9")


BROKEN = orjson.dumps({"id": "evt-9", "type": "order.upserted", "subject": "ORD-9", "data": {}})


def refused_at_orders_1_5(error: InvalidEventError, value: bytes | None) -> Outcome | None:
    """The ``invalid`` outcome of a record refused at orders/1 offset 5."""
    return invalid_outcome(
        error,
        value=value,
        topic="orders",
        partition=1,
        offset=5,
        received_at=RECEIVED,
        finished_at=RECEIVED,
    )


def test_invalid_outcome_names_the_event_it_could_read() -> None:
    """An invalid event with a readable id and type gets an `invalid` outcome naming them."""
    outcome = refused_at_orders_1_5(_schema_error(), BROKEN)
    assert outcome is not None
    encoded = encode_outcome(outcome)
    document = orjson.loads(encoded)
    assert outcome_problem(encoded) is None
    assert (document["id"], document["data"]["eventId"], document["data"]["status"]) == (
        "evt-9:invalid",
        "evt-9",
        "invalid",
    )
    assert (document["data"]["reason"], document["data"]["detail"]) == (
        "schema",
        "data.order.orderId: must be a string",
    )


def test_invalid_outcome_without_event_id_is_identified_by_position() -> None:
    """Undecodable input has no event id: the outcome id is the record position."""
    error = InvalidEventError("undecodable", "not UTF-8 JSON: …", order_id="ORD-9")
    outcome = refused_at_orders_1_5(error, b"{")
    assert outcome is not None
    document = orjson.loads(encode_outcome(outcome))
    assert (document["id"], document["data"]["eventId"]) == ("orders/1/5:invalid", None)
    assert outcome_problem(document) is None


def test_no_invalid_outcome_without_an_order_id() -> None:
    """An invalid record that names no order gets no outcome (it is only dead-lettered)."""
    error = InvalidEventError("empty", "the record has no value")
    assert (
        invalid_outcome(
            error,
            value=None,
            topic="t",
            partition=0,
            offset=0,
            received_at=RECEIVED,
            finished_at=RECEIVED,
        )
        is None
    )


@pytest.mark.parametrize(
    ("reason", "value", "expected"),
    [
        ("schema", BROKEN, ("evt-9", "order.upserted")),
        ("schema", b'{"id": 5, "type": ""}', (None, None)),
        ("too_large", BROKEN, (None, None)),
        ("undecodable", b"{", (None, None)),
    ],
)
def test_peek_identity_reads_only_what_is_safe_to_read(
    reason: str, value: bytes, expected: tuple[str | None, str | None]
) -> None:
    """Id and type come from parseable values only, never from oversize ones."""
    assert peek_identity(InvalidEventError(reason, "x", order_id="O"), value) == expected


def test_dead_letter_headers_keep_the_originals_and_add_the_reason() -> None:
    """Original headers come first, stale x-dlq-* ones are replaced, reason headers follow."""
    original = [("traceparent", b"00-abc-01"), ("x-dlq-reason", b"old"), ("source", b"\xff")]
    headers = dead_letter_headers(
        headers=original,
        error=_schema_error(),
        topic="orders",
        partition=3,
        offset=77,
        at=RECEIVED,
        event_id="evt-9",
    )
    assert headers == [
        ("traceparent", b"00-abc-01"),
        ("source", b"\xff"),
        ("x-dlq-reason", b"schema"),
        ("x-dlq-detail", b"data.order.orderId: must be a string"),
        ("x-dlq-source-topic", b"orders"),
        ("x-dlq-source-partition", b"3"),
        ("x-dlq-source-offset", b"77"),
        ("x-dlq-time", b"2025-03-01T14:40:00.120Z"),
        ("x-dlq-order-id", b"ORD-9"),
        ("x-dlq-event-id", b"evt-9"),
    ]
    assert dead_letter_problem(headers) is None


def test_dead_letter_detail_is_bounded_and_headers_stay_valid() -> None:
    """A huge detail is cut to the schema's limit; a record without headers gets only ours."""
    error = InvalidEventError("schema", "x" * 5000)
    headers = dead_letter_headers(
        headers=None, error=error, topic="orders", partition=0, offset=0, at=RECEIVED
    )
    detail = dict(headers)["x-dlq-detail"].decode()
    assert (len(detail), detail[-1]) == (DLQ_DETAIL_LIMIT, "…")
    assert [name for name, _ in headers] == [
        "x-dlq-reason",
        "x-dlq-detail",
        "x-dlq-source-topic",
        "x-dlq-source-partition",
        "x-dlq-source-offset",
        "x-dlq-time",
    ]
    assert dead_letter_problem(headers) is None


def test_dead_letter_schema_refuses_an_unknown_reason() -> None:
    """The dead-letter schema lists the reason codes; anything else is refused."""
    headers = dead_letter_headers(
        headers=None,
        error=InvalidEventError("bogus", "x"),
        topic="orders",
        partition=0,
        offset=0,
        at=RECEIVED,
    )
    problem = dead_letter_problem(headers)
    assert problem is not None
    assert problem.startswith("x-dlq-reason: must be one of empty, too_large,")


#: 600 KB: with its dead-letter copy or outcome naming it in full, a record would pass 1 MB.
HUGE = "K" * 600_000
CLIPPED = "K" * 255 + "…"


def test_ids_copied_into_dead_letter_headers_are_clipped() -> None:
    """x-dlq-order-id and x-dlq-event-id hold at most 256 characters; the headers stay valid."""
    error = InvalidEventError("undecodable", "not UTF-8 JSON: …", order_id=HUGE)
    headers = dead_letter_headers(
        headers=None,
        error=error,
        topic="orders",
        partition=0,
        offset=0,
        at=RECEIVED,
        event_id=HUGE,
    )
    view = dict(headers)
    assert (view["x-dlq-order-id"].decode(), view["x-dlq-event-id"].decode()) == (CLIPPED, CLIPPED)
    assert dead_letter_problem(headers) is None


def test_ids_copied_into_an_invalid_outcome_are_clipped() -> None:
    """Order id, event id and event type of a refused record are cut to 256 characters."""
    value = orjson.dumps({"id": HUGE, "type": HUGE, "subject": HUGE, "data": {}})
    outcome = refused_at_orders_1_5(
        InvalidEventError("schema", "subject: too long", order_id=HUGE), value
    )
    assert outcome is not None
    assert outcome.origin.order_id == CLIPPED
    encoded = encode_outcome(outcome)
    document = orjson.loads(encoded)
    data = document["data"]
    assert (document["id"], document["subject"]) == (f"{CLIPPED}:invalid", CLIPPED)
    assert (data["eventId"], data["eventType"], data["orderId"]) == (CLIPPED, CLIPPED, CLIPPED)
    assert outcome_problem(encoded) is None
    assert len(encoded) < 3_000


def test_encode_outcome_clips_ids_however_the_outcome_was_built() -> None:
    """Even an Outcome built by hand with huge ids encodes to a valid, small outcome."""
    origin = InputRef(
        event_id=HUGE, event_type=HUGE, topic="t", partition=0, offset=0, order_id=HUGE
    )
    outcome = Outcome(
        origin=origin,
        operation="upsert",
        status="accepted",
        received_at=RECEIVED,
        finished_at=FINISHED,
    )
    encoded = encode_outcome(outcome)
    assert (outcome_problem(encoded), len(encoded) < 3_000) == (None, True)


def test_the_schemas_refuse_ids_beyond_256_characters() -> None:
    """The outcome and dead-letter schemas state the bound the builders keep."""
    document = orjson.loads(encode_outcome(_outcome("accepted", "upsert")))
    document["data"]["orderId"] = "O" * 257
    assert outcome_problem(document) == "data.orderId: must be at most 256 characters"
    headers = dead_letter_headers(
        headers=None, error=_schema_error(), topic="t", partition=0, offset=0, at=RECEIVED
    )
    assert dead_letter_problem([*headers, ("x-dlq-event-id", b"e" * 257)]) == (
        "x-dlq-event-id: must be at most 256 characters"
    )


def _letter_headers(original: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    return dead_letter_headers(
        headers=original,
        error=InvalidEventError("undecodable", "not UTF-8 JSON: …", order_id=CLIPPED),
        topic="orders",
        partition=0,
        offset=9,
        at=RECEIVED,
    )


def test_a_reduced_dead_letter_keeps_the_reasons_and_names_what_it_dropped() -> None:
    """Key cut to 1 KiB, value emptied, original headers left out, x-dlq-truncated says so."""
    headers = _letter_headers([("traceparent", b"00-abc-01"), ("bin", b"\xff")])
    reduced = reduce_dead_letter(key=HUGE.encode(), value=b"{" * 400_000, headers=headers)
    assert reduced == RecordParts(
        key=b"K" * DLQ_KEY_LIMIT,
        value=b"",
        headers=[*headers[2:], ("x-dlq-truncated", b"key,value,headers")],
    )
    assert dead_letter_problem(reduced.headers) is None


@pytest.mark.parametrize(
    ("key", "value", "original", "truncated"),
    [
        (b"ORD-1", b"x" * 10, [], b"value"),
        (b"K" * 2_000, None, [], b"key"),
        (None, b"", [("h", b"v")], b"headers"),
        (b"K" * DLQ_KEY_LIMIT, b"x", [("h", b"v")], b"value,headers"),
    ],
)
def test_a_reduced_dead_letter_names_only_what_it_changed(
    key: bytes | None, value: bytes | None, original: list[tuple[str, bytes]], truncated: bytes
) -> None:
    """A short key, a null or empty value and absent headers are kept and not named."""
    reduced = reduce_dead_letter(key=key, value=value, headers=_letter_headers(original))
    assert reduced is not None
    assert (reduced.key, reduced.value) == (
        key if key is None else key[:DLQ_KEY_LIMIT],
        value if not value else b"",
    )
    assert reduced.headers[-1] == ("x-dlq-truncated", truncated)
    assert dead_letter_problem(reduced.headers) is None


def test_nothing_to_reduce_gives_none() -> None:
    """A record with a short key, no value and no original headers cannot be made smaller."""
    assert reduce_dead_letter(key=b"ORD-1", value=None, headers=_letter_headers([])) is None


def test_minimal_outcome_drops_what_an_input_or_engage_can_make_long() -> None:
    """detail and versionTag go, ids and action are clipped; status and reason stay; valid."""
    outcome = Outcome(
        origin=InputRef(
            event_id=HUGE, event_type=HUGE, topic="t", partition=0, offset=3, order_id=HUGE
        ),
        operation="action",
        status="failed",
        received_at=RECEIVED,
        finished_at=FINISHED,
        reason="deadline",
        detail="x" * 900_000,
        version_tag="v" * 900_000,
        action="A" * 900_000,
        attempts=4,
    )
    minimal = minimal_outcome(outcome)
    encoded = encode_outcome(minimal)
    data = orjson.loads(encoded)["data"]
    assert (data["status"], data["reason"], data["attempts"], data["versionTag"]) == (
        "failed",
        "deadline",
        4,
        None,
    )
    assert (data["orderId"], data["action"]) == (CLIPPED, "A" * 255 + "…")
    assert data["detail"].startswith("the full outcome was too large to publish")
    assert (outcome_problem(encoded), len(encoded) < 3_000) == (None, True)
