"""The spans of one event as the pipeline reports its steps; passing through when not recording."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from consumer.events import OrderEvent, Upsert
from consumer.logs import current_trace
from consumer.orders import FetchTag, SendWrite, Settle, Write
from consumer.tracing import CALL, EventTrace, EventTraces, format_traceparent, parse_traceparent

if TYPE_CHECKING:
    from consumer.tracing import CallParent

INBOUND = (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)


@dataclass(frozen=True, kw_only=True)
class Record:
    topic: str = "orders"
    partition: int = 3
    offset: int = 17
    value: bytes | None = b'{"id": "e-1"}'
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class Result:
    status: str = "accepted"
    http_status: int | None = 202
    attempts: int = 1
    reason: str | None = None


@dataclass(eq=False, kw_only=True)
class Token:
    """Like the service's OpRef: hashed by identity."""

    pending: object
    role: str = "write"
    action: str | None = None
    result: Result | None = None


def event(event_id: str = "e-1", order_id: str = "o-1") -> OrderEvent:
    return OrderEvent(
        id=event_id,
        type="order.upserted",
        source="/orders",
        time="2026-01-01T00:00:00Z",
        order_id=order_id,
        data=Upsert(order={"orderId": order_id}),
        topic="orders",
        partition=3,
        offset=17,
    )


def with_context(trace_id: int, span_id: int) -> Record:
    return Record(headers=[("traceparent", format_traceparent(trace_id, span_id, 1).encode())])


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traces(exporter: InMemorySpanExporter) -> EventTraces[Token]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return EventTraces(provider)


def named(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def first_request() -> CallParent:
    """What the transport asks when the call's first request goes."""
    scope = CALL.get()
    assert scope is not None
    return scope.parent()


def write_call(token: Token, order_id: str = "o-1") -> SendWrite[Token]:
    op = Write(token=token, kind="upsert", deadline=1e9)
    return SendWrite(order_id=order_id, op=op, exists=None)


def test_an_event_with_context_continues_its_producers_trace(
    traces: EventTraces[Token], exporter: InMemorySpanExporter
) -> None:
    """process -> gate, engage call, send; the outcome's headers carry the send span."""
    pending = object()
    trace_ = traces.begin(with_context(*INBOUND))
    assert trace_ is not None
    token = Token(pending=pending, result=Result())
    traces.track(pending, trace_, event(), [token])
    with traces.calling(write_call(token)):
        scope = CALL.get()
        assert scope is not None
        parent: CallParent = scope.parent()
        assert parent.tracer is not None
        assert current_trace.get() == trace_.log_ids
    assert CALL.get() is None
    with trace_.publishing("results", traces.tracer) as headers:
        pass
    traces.settled(Settle(order_id="o-1", token=token, status="accepted", reason=None))
    trace_.finish("accepted")
    process = named(exporter, "process orders")
    assert process.kind is SpanKind.CONSUMER
    assert process.parent is not None
    assert (process.parent.trace_id, process.parent.span_id) == INBOUND
    assert dict(process.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "orders",
        "messaging.destination.partition.id": "3",
        "messaging.kafka.offset": 17,
        "messaging.message.id": "e-1",
        "messaging.kafka.message.key": "o-1",
        "cloudevents.event_id": "e-1",
        "cloudevents.event_type": "order.upserted",
        "cloudevents.event_source": "/orders",
        "cloudevents.event_subject": "o-1",
        "engage.outcome.status": "accepted",
    }
    children = {s.name: s for s in exporter.get_finished_spans() if s is not process}
    assert sorted(children) == ["engage upsert", "gate write", "send results"]
    assert {s.parent.span_id for s in children.values() if s.parent} == {process.context.span_id}
    assert dict(children["engage upsert"].attributes or {}) == {
        "engage.order.id": "o-1",
        "engage.call.status": "accepted",
        "engage.call.attempts": 1,
        "http.response.status_code": 202,
    }
    sent = parse_traceparent(dict(headers)["traceparent"])
    assert sent is not None
    assert sent.span_id == children["send results"].context.span_id


def test_an_event_without_context_starts_a_new_trace(
    traces: EventTraces[Token], exporter: InMemorySpanExporter
) -> None:
    """No parent: the process span is a root."""
    trace_ = traces.begin(Record())
    assert trace_ is not None
    trace_.finish("failed", "retries_exhausted")
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.status.status_code is StatusCode.ERROR


def test_coalesced_writes_and_the_write_that_serves_them_link_both_ways(
    traces: EventTraces[Token], exporter: InMemorySpanExporter
) -> None:
    """The skipped event links to the winner; the winner's write call links to the skipped."""
    skipped_key, winner_key = object(), object()
    skipped = traces.begin(Record())
    winner = traces.begin(Record())
    assert skipped is not None
    assert winner is not None
    old, new = Token(pending=skipped_key), Token(pending=winner_key)
    traces.track(skipped_key, skipped, event("e-1"), [old])
    traces.track(winner_key, winner, event("e-2"), [new])
    traces.follow_book(lambda _order_id: new)
    traces.settled(Settle(order_id="o-1", token=old, status="skipped", reason="coalesced"))
    with traces.calling(write_call(new)):
        first_request()
    skipped.finish("skipped", "coalesced")
    winner.finish("accepted")
    spans = exporter.get_finished_spans()
    processes = [s for s in spans if s.kind is SpanKind.CONSUMER]
    first, second = sorted(
        processes, key=lambda s: str((s.attributes or {})["cloudevents.event_id"])
    )
    call = named(exporter, "engage upsert")
    assert [link.context.span_id for link in call.links] == [first.context.span_id]
    assert [link.context.span_id for link in first.links] == [second.context.span_id]
    gates = [s for s in spans if s.name == "gate write" and s.parent is not None]
    (gate,) = [s for s in gates if s.parent and s.parent.span_id == first.context.span_id]
    assert (gate.attributes or {})["engage.operation.reason"] == "coalesced"


def test_a_write_chosen_again_before_it_goes_is_traced_as_the_one_sent(
    traces: EventTraces[Token], exporter: InMemorySpanExporter
) -> None:
    """The call began for an older write that gave way: its span is the newer event's."""
    older_key, newer_key = object(), object()
    older, newer = traces.begin(Record()), traces.begin(Record())
    assert older is not None
    assert newer is not None
    old, new = Token(pending=older_key), Token(pending=newer_key)
    traces.track(older_key, older, event("e-1"), [old])
    traces.track(newer_key, newer, event("e-2"), [new])
    traces.follow_book(lambda _order_id: new)
    with traces.calling(write_call(old)):
        traces.settled(Settle(order_id="o-1", token=old, status="skipped", reason="coalesced"))
        assert current_trace.get() == newer.log_ids
        first_request()
    call = named(exporter, "engage upsert")
    assert newer.span is not None
    assert call.parent is not None
    assert call.parent.span_id == newer.span.get_span_context().span_id


def test_a_tag_read_belongs_to_the_event_that_asked_for_it(
    traces: EventTraces[Token], exporter: InMemorySpanExporter
) -> None:
    """Taking an event in asks for a GET: the read's span is in that event's trace."""
    key = object()
    trace_ = traces.begin(Record())
    assert trace_ is not None
    token = Token(pending=key, role="action", action="ConfirmOrder")
    traces.track(key, trace_, event(), [token])
    read = FetchTag(order_id="o-1")
    with traces.taking(trace_):
        traces.scheduled(read)
    with traces.calling(read):
        first_request()
    assert trace_.span is not None
    span = named(exporter, "engage read")
    assert span.parent is not None
    assert span.parent.span_id == trace_.span.get_span_context().span_id


def test_not_recording_passes_the_inbound_context_on() -> None:
    """No provider: no span; requests and the outcome carry the producer's context as it came."""
    traces: EventTraces[Token] = EventTraces()
    assert traces.begin(Record()) is None  # nothing to pass on: nothing at all
    trace_ = traces.begin(with_context(*INBOUND))
    assert isinstance(trace_, EventTrace)
    key = object()
    token = Token(pending=key)
    traces.track(key, trace_, event(), [token])
    inbound = format_traceparent(*INBOUND, 1)
    with traces.calling(write_call(token)):
        scope = CALL.get()
        assert scope is not None
        assert scope.parent().traceparent == inbound
    with trace_.publishing("results", None) as headers:
        assert headers == [("traceparent", inbound.encode())]
    trace_.finish("accepted")


def test_a_call_of_an_untraced_event_clears_what_its_task_inherited(
    traces: EventTraces[Token],
) -> None:
    """A task spawned inside another call's context must not send that call's traceparent."""
    untraced = Token(pending=object())
    inherited = CALL.set(None)
    log_ids = current_trace.set(("a" * 32, "b" * 16))
    try:
        with traces.calling(write_call(untraced)):
            assert CALL.get() is None
            assert current_trace.get() is None
    finally:
        current_trace.reset(log_ids)
        CALL.reset(inherited)


def test_an_abandoned_event_ends_its_spans(
    traces: EventTraces[Token], exporter: InMemorySpanExporter
) -> None:
    """Its partition went elsewhere: the trace ends, marked abandoned."""
    key = object()
    trace_ = traces.begin(Record())
    assert trace_ is not None
    traces.track(key, trace_, event(), [Token(pending=key)])
    traces.abandoned(key)
    assert traces.of(key) is None
    assert {s.name for s in exporter.get_finished_spans()} == {"process orders", "gate write"}
    assert (named(exporter, "process orders").attributes or {})[
        "engage.outcome.status"
    ] == "abandoned"
