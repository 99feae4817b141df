"""W3C trace context from Kafka headers and the CloudEvents envelope; bad context is ignored."""

import orjson
import pytest

from consumer.tracing import (
    InboundContext,
    TraceContext,
    format_traceparent,
    from_envelope,
    from_headers,
    inbound_context,
    parse_traceparent,
    parse_tracestate,
)

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CONTEXT = TraceContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, flags=1
)
OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


def test_a_valid_traceparent_is_read_and_written_back_the_same() -> None:
    """Ids, flags and the sampled bit; formatting gives the same header."""
    context = parse_traceparent(PARENT)
    assert context == CONTEXT
    assert context.sampled
    assert context.traceparent() == PARENT
    assert format_traceparent(1, 2, 0) == "00-00000000000000000000000000000001-0000000000000002-00"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",  # no flags
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",  # upper case
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        PARENT + "-extra",  # version 00 has exactly four fields
        PARENT.replace("-01", "-0g"),
        b"\xff\xfe",
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str | bytes) -> None:
    """Anything but a well-formed header is no context at all (never an error)."""
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    """W3C: a version above 00 may carry more; what it shares with 00 is read."""
    later = "01" + PARENT[2:] + "-what-comes-next"
    assert parse_traceparent(later) == CONTEXT


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("congo=t61rcWkgMzE", "congo=t61rcWkgMzE"),
        (" rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE ,", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        ("tenant@system=1", "tenant@system=1"),
        ("Upper=1", None),
        ("novalue", None),
        ("a=1,a=2", None),
        (",".join(f"k{n}=v" for n in range(33)), None),
        ("k=" + "v" * 600, None),
    ],
)
def test_tracestate_is_kept_when_it_follows_the_list_rules(
    value: str, expected: str | None
) -> None:
    """Blank members go; a malformed list is dropped whole."""
    assert parse_tracestate(value) == expected


def test_headers_give_the_first_traceparent_and_its_tracestate() -> None:
    """Names match case-insensitively; a broken tracestate leaves the traceparent."""
    headers = [
        ("x-other", b"1"),
        ("Traceparent", PARENT.encode()),
        ("traceparent", OTHER.encode()),
        ("tracestate", b"vendor=1"),
    ]
    assert from_headers(headers) == TraceContext(
        trace_id=CONTEXT.trace_id, span_id=CONTEXT.span_id, flags=1, state="vendor=1"
    )
    assert from_headers([("traceparent", PARENT.encode()), ("tracestate", b"BAD")]) == CONTEXT
    assert from_headers([("x-other", b"1")]) is None


def test_the_cloudevents_extension_is_read_from_the_envelope() -> None:
    """The distributed-tracing extension attributes of a structured JSON event."""
    event = {"specversion": "1.0", "id": "e", "traceparent": PARENT, "tracestate": "v=1"}
    assert from_envelope(orjson.dumps(event)) == TraceContext(
        trace_id=CONTEXT.trace_id, span_id=CONTEXT.span_id, flags=1, state="v=1"
    )
    assert from_envelope(orjson.dumps({"id": "e"})) is None
    assert from_envelope(b'{"traceparent": 1}') is None
    assert from_envelope(b'["traceparent"]') is None
    assert from_envelope(b'{"traceparent": broken') is None
    assert from_envelope(None) is None


def test_the_header_is_the_parent_and_a_different_envelope_context_a_link() -> None:
    """The header is the latest hop; the envelope says where the event was created."""
    envelope = orjson.dumps({"traceparent": OTHER})
    headers = [("traceparent", PARENT.encode())]
    created = parse_traceparent(OTHER)
    assert created is not None
    assert inbound_context(headers, envelope) == InboundContext(parent=CONTEXT, creation=created)
    same = orjson.dumps({"traceparent": PARENT})
    assert inbound_context(headers, same) == InboundContext(parent=CONTEXT)
    assert inbound_context([], envelope) == InboundContext(parent=created)
    assert inbound_context([], b'{"id": "x"}') is None
