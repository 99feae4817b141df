"""Each Engage request: its client span's attributes, its traceparent, never a secret."""

from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from consumer.tracing import CALL, CallParent, parse_traceparent, traced_request

SECRET = "api-key-that-must-not-leak"


class FixedScope:
    """A call scope that always names the same parent."""

    def __init__(self, parent: CallParent) -> None:
        self._parent = parent

    def parent(self) -> CallParent:
        return self._parent


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def recording(exporter: InMemorySpanExporter) -> Iterator[trace.Span]:
    """A call span in this context, as the pipeline sets one around each call."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    call = tracer.start_span("engage action")
    token = CALL.set(FixedScope(CallParent(tracer=tracer, context=trace.set_span_in_context(call))))
    yield call
    CALL.reset(token)
    call.end()


def request() -> httpx.Request:
    return httpx.Request(
        "POST",
        f"https://user:pw@engage.example.com:8443/api/v3/orders/o-1/action?apikey={SECRET}#x",
        headers={"apikey": SECRET, "Authorization": f"Bearer {SECRET}"},
        content=b"{}",
    )


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def test_a_request_in_a_call_is_a_client_span_whose_context_it_carries(
    recording: trace.Span, exporter: InMemorySpanExporter
) -> None:
    """Semantic-convention attributes, no query or user info, and the span's traceparent."""
    sent = request()
    with traced_request(sent) as span:
        span.answered(202)
    recorded = only_span(exporter)
    assert recorded.name == "POST"
    assert recorded.kind is SpanKind.CLIENT
    assert recorded.parent is not None
    assert recorded.parent.span_id == recording.get_span_context().span_id
    assert dict(recorded.attributes or {}) == {
        "http.request.method": "POST",
        "url.full": "https://engage.example.com:8443/api/v3/orders/o-1/action",
        "server.address": "engage.example.com",
        "server.port": 8443,
        "http.response.status_code": 202,
    }
    context = parse_traceparent(sent.headers["traceparent"])
    assert context is not None
    assert (context.trace_id, context.span_id) == (
        recorded.context.trace_id,
        recorded.context.span_id,
    )


def test_no_secret_reaches_a_span(recording: trace.Span, exporter: InMemorySpanExporter) -> None:
    """Neither the apikey header, an Authorization header nor a query string is recorded."""
    with traced_request(request()) as span:
        span.answered(401)
    recorded = only_span(exporter)
    assert SECRET not in repr(dict(recorded.attributes or {}))
    assert SECRET not in recorded.name
    assert recorded.status.status_code is StatusCode.ERROR
    assert (recorded.attributes or {})["error.type"] == "401"


def test_a_failed_request_records_the_class_of_its_error(
    recording: trace.Span, exporter: InMemorySpanExporter
) -> None:
    """The class only: an error's message may quote the request."""
    with pytest.raises(httpx.ReadTimeout), traced_request(request()):
        raise httpx.ReadTimeout(f"timed out reading {SECRET}")
    recorded = only_span(exporter)
    assert (recorded.attributes or {})["error.type"] == "ReadTimeout"
    assert recorded.events == ()


def test_passing_through_sends_the_inbound_context_unchanged() -> None:
    """Nothing recorded: the producer's traceparent and tracestate go on as they came."""
    inbound = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    token = CALL.set(FixedScope(CallParent(traceparent=inbound, tracestate="v=1")))
    try:
        sent = request()
        with traced_request(sent) as span:
            span.answered(200)
    finally:
        CALL.reset(token)
    assert (sent.headers["traceparent"], sent.headers["tracestate"]) == (inbound, "v=1")


def test_outside_a_call_a_request_is_left_alone() -> None:
    """No call in this context: no header, no span, the shared do-nothing context."""
    sent = request()
    with traced_request(sent) as span:
        span.answered(200)
    assert "traceparent" not in sent.headers
    assert traced_request(sent) is traced_request(request())
