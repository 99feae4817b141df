"""One trace per input event: the spans the pipeline opens and closes as the event moves on.

The tree of one event (names as exported; times from its own clock)::

    process <input topic>        CONSUMER  intake to acknowledged outcome; parent: the producer
    ├── gate write | gate action INTERNAL  per operation: submitted to the order book until its
    │                                      call starts (or it is settled without one)
    ├── engage upsert | delete | action | read
    │   │                        INTERNAL  one Engage call, retries and job polls included
    │   └── POST | PUT | GET | DELETE
    │                            CLIENT    one HTTP request (``consumer.tracing.requests``)
    └── send <results topic>     PRODUCER  the outcome record until Kafka acknowledged it; its
                                           context is the record's ``traceparent`` header

When coalescing makes one write serve several events, the write's call span links to each
skipped event's span and each of those links to the event whose write was sent. A tag read
(which serves an order, not an event) belongs to the event whose processing asked for it.

``EventTraces`` without a tracer records nothing and passes each event's inbound context on
unchanged (to its Engage requests and its outcome record), as OpenTelemetry's no-op API would:
an untraced service still lets analytics join outcomes to the producer's trace. An event
without inbound context then costs nothing beyond reading its headers.

Knows the order book's call types and, through small Protocols, the service's op tokens; never
the service itself.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from time import time_ns
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from consumer import __version__
from consumer.logs import current_trace
from consumer.orders import FetchTag, SendAction, SendWrite, Settle
from consumer.tracing.context import (
    TRACEPARENT,
    TRACESTATE,
    TraceContext,
    format_traceparent,
    inbound_context,
)
from consumer.tracing.requests import CALL, CallParent

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterator, Sequence

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import Attributes

    from consumer.events import OrderEvent
    from consumer.orders import Call
    from consumer.types import Headers

#: The context of a step with nothing to trace (shared: it holds no state).
_NOTHING: AbstractContextManager[None] = nullcontext()
#: Outcome statuses that mean the event did not get what it asked for.
_ERROR_STATUSES = frozenset({"failed", "unknown", "invalid"})


class Consumed(Protocol):
    """The parts of a consumed record a trace starts from (the service's ``Record``)."""

    @property
    def topic(self) -> str:
        """The input topic."""
        ...

    @property
    def partition(self) -> int:
        """Its partition."""
        ...

    @property
    def offset(self) -> int:
        """Its offset."""
        ...

    @property
    def value(self) -> bytes | None:
        """The event as sent (a structured CloudEvent)."""
        ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]]:
        """The record's headers."""
        ...


class CallResult(Protocol):
    """How an Engage call ended (the dispatcher's ``DispatchResult``)."""

    @property
    def status(self) -> str:
        """``accepted``, ``rejected``, ``failed`` or ``unknown``."""
        ...

    @property
    def http_status(self) -> int | None:
        """Engage's last answer."""
        ...

    @property
    def attempts(self) -> int:
        """Requests sent for it, retries included."""
        ...

    @property
    def reason(self) -> str | None:
        """Why it did not succeed, as a short code."""
        ...


class OpToken(Protocol):
    """The service's token for one operation (``OpRef``): its event and what it sends."""

    def __hash__(self) -> int: ...

    @property
    def pending(self) -> Hashable:
        """The event it belongs to (the key of its trace)."""
        ...

    @property
    def role(self) -> str:
        """``write`` or ``action``."""
        ...

    @property
    def action(self) -> str | None:
        """The Engage action it posts, if it is one."""
        ...

    @property
    def result(self) -> CallResult | None:
        """How its call ended, once it did."""
        ...


T = TypeVar("T", bound=OpToken)


@dataclass(slots=True, eq=False)
class EventTrace:
    """The trace of one event: its span (None when passing through) and what hangs off it."""

    inbound: TraceContext | None
    span: Span | None = None
    context: Context | None = None
    #: the open gate span of each operation, by token
    gates: dict[Hashable, Span] = field(default_factory=dict)
    #: links the call span of a write gets (the events its write was coalesced from), by token
    write_links: dict[Hashable, list[Link]] = field(default_factory=dict)
    #: hex (trace id, span id) for log lines, or None
    log_ids: tuple[str, str] | None = None

    @contextmanager
    def publishing(self, topic: str, tracer: Tracer | None) -> Iterator[Headers]:
        """The span of publishing this event's outcome; yields the record's trace headers."""
        if tracer is None or self.span is None:
            inbound = self.inbound
            assert inbound is not None
            yield _headers(inbound.traceparent(), inbound.state)
            return
        span = tracer.start_span(
            f"send {topic}",
            context=self.context,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.name": "send",
                "messaging.operation.type": "send",
                "messaging.destination.name": topic,
            },
        )
        with trace.use_span(span, end_on_exit=True):
            context = span.get_span_context()
            state = context.trace_state.to_header() if context.trace_state else None
            yield _headers(
                format_traceparent(context.trace_id, context.span_id, context.trace_flags), state
            )

    def finish(self, status: str, reason: str | None = None) -> None:
        """The event's outcome is acknowledged (or it was given up): end its spans."""
        for gate in self.gates.values():
            gate.end()
        self.gates.clear()
        span = self.span
        if span is None:
            return
        span.set_attribute("engage.outcome.status", status)
        if reason is not None:
            span.set_attribute("engage.outcome.reason", reason)
        if status in _ERROR_STATUSES:
            span.set_status(Status(StatusCode.ERROR, reason or status))
        span.end()


#: The event whose Engage call the current task runs (set by ``EventTraces.calling``).
_EVENT: ContextVar[EventTrace | None] = ContextVar("engage_call_event", default=None)


class EventTraces(Generic[T]):
    """The traces of the events in progress; the pipeline tells it what happens to them.

    ``tracer_provider`` None: record nothing, pass inbound contexts on (see the module
    docstring).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self.tracer: Tracer | None = (
            tracer_provider.get_tracer("engage-consumer", __version__)
            if tracer_provider is not None
            else None
        )
        self._of: dict[Hashable, EventTrace] = {}
        #: the trace of a tag read not started yet, per order: the event that asked for it
        self._fetch_cause: dict[str, EventTrace] = {}
        #: the event being taken in (``taking``), the cause of the calls its effects ask for
        self._cause: EventTrace | None = None
        self._write_in_flight: Callable[[str], T | None] = _no_write

    @property
    def recording(self) -> bool:
        """Whether spans are recorded (a tracer provider was given)."""
        return self.tracer is not None

    # -- intake -------------------------------------------------------------------------------

    def begin(self, record: Consumed) -> EventTrace | None:
        """Start the trace of a consumed record; None when there is nothing to trace."""
        inbound = inbound_context(record.headers, record.value)
        tracer = self.tracer
        if tracer is None:
            if inbound is None:
                return None
            parent = inbound.parent
            ids = (f"{parent.trace_id:032x}", f"{parent.span_id:016x}")
            return EventTrace(inbound=parent, log_ids=ids)
        links: list[Link] = []
        parent_context: Context | None = None
        if inbound is not None:
            parent_context = trace.set_span_in_context(
                NonRecordingSpan(_span_context(inbound.parent))
            )
            if inbound.creation is not None:
                links.append(
                    Link(_span_context(inbound.creation), {"engage.link": "event_created"})
                )
        span = tracer.start_span(
            f"process {record.topic}",
            context=parent_context,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.name": "process",
                "messaging.operation.type": "process",
                "messaging.destination.name": record.topic,
                "messaging.destination.partition.id": str(record.partition),
                "messaging.kafka.offset": record.offset,
            },
        )
        return EventTrace(
            inbound=inbound.parent if inbound is not None else None,
            span=span,
            context=trace.set_span_in_context(span),
            log_ids=_log_ids(span.get_span_context()),
        )

    def track(self, key: Hashable, trace_: EventTrace, event: OrderEvent, tokens: list[T]) -> None:
        """A decoded event goes on as ``key`` (its ``Pending``) with these operations."""
        self._of[key] = trace_
        span, tracer = trace_.span, self.tracer
        if span is None or tracer is None:
            return
        span.set_attributes(_event_attributes(event))
        for token in tokens:
            trace_.gates[token] = tracer.start_span(
                f"gate {token.role}",
                context=trace_.context,
                attributes={"engage.operation.role": token.role},
            )

    def of(self, key: Hashable) -> EventTrace | None:
        """The trace of the event ``key``, while it is in progress."""
        return self._of.get(key)

    def pop(self, key: Hashable) -> EventTrace | None:
        """The trace of the event ``key``, forgotten here: its outcome is being published."""
        return self._of.pop(key, None)

    def taking(self, trace_: EventTrace | None) -> AbstractContextManager[None]:
        """While the effects of taking in this event are applied (their cause)."""
        return _NOTHING if trace_ is None else self._taking(trace_)

    @contextmanager
    def _taking(self, trace_: EventTrace) -> Iterator[None]:
        self._cause, previous = trace_, self._cause
        try:
            yield
        finally:
            self._cause = previous

    # -- effects ------------------------------------------------------------------------------

    def follow_book(self, write_in_flight: Callable[[str], T | None]) -> None:
        """How to learn the write the book has in flight for an order (the one coalesced into)."""
        self._write_in_flight = write_in_flight

    def scheduled(self, call: Call[T]) -> None:
        """A call goes to the scheduler: a tag read remembers the event that asked for it."""
        if not isinstance(call, FetchTag) or not self._of:
            return
        # Taking an event in, or a call of an event reporting back (a write that did not read
        # its tag, a stale tag): the event whose processing asks for the read.
        cause = self._cause or _EVENT.get()
        if cause is not None:
            self._fetch_cause[call.order_id] = cause

    def settled(self, effect: Settle[T]) -> None:
        """An operation is settled: its gate span ends (it went, or it never will)."""
        trace_ = self._of.get(effect.token.pending)
        if trace_ is None:
            return
        gate = trace_.gates.pop(effect.token, None)
        if gate is not None:
            gate.set_attribute("engage.operation.status", effect.status)
            if effect.reason is not None:
                gate.set_attribute("engage.operation.reason", effect.reason)
            gate.end()
        if effect.status == "skipped" and effect.reason == "coalesced":
            self._coalesced(effect, trace_)

    def _coalesced(self, effect: Settle[T], skipped: EventTrace) -> None:
        """Link a write that gave way and the write that serves it, both ways."""
        served = self._write_in_flight(effect.order_id)
        winner = self._of.get(served.pending) if served is not None else None
        if served is None or winner is None:
            return
        scope = CALL.get()
        if isinstance(scope, _CallScope) and scope.token is effect.token:
            # The write this task was about to send gave way to a newer one (the book chose
            # again just before the first request): the call is that write's now.
            scope.chosen_again(served, winner)
        if winner.span is None or skipped.span is None:
            return
        skipped.span.add_link(winner.span.get_span_context(), {"engage.link": "coalesced_into"})
        winner.write_links.setdefault(served, []).append(
            Link(skipped.span.get_span_context(), {"engage.link": "coalesced"})
        )

    def calling(self, call: Call[T]) -> AbstractContextManager[None]:
        """Around one Engage call in its own task: its span, and its requests' parent.

        Set even for a call of an untraced event: a task inherits its spawner's context, and
        must not send another event's ``traceparent`` (nothing to do when it inherited none).
        """
        if isinstance(call, FetchTag):
            trace_, token = self._fetch_cause.pop(call.order_id, None), None
        else:
            token = call.op.token
            trace_ = self._of.get(token.pending)
        if trace_ is None and CALL.get() is None and current_trace.get() is None:
            return _NOTHING
        return self._calling(call, trace_, token)

    @contextmanager
    def _calling(self, call: Call[T], trace_: EventTrace | None, token: T | None) -> Iterator[None]:
        scope = _CallScope(self, call, trace_, token) if trace_ is not None else None
        tokens = (
            CALL.set(scope),
            current_trace.set(trace_.log_ids if trace_ is not None else None),
            _EVENT.set(trace_),
        )
        try:
            yield
        except BaseException as exc:
            if scope is not None:
                scope.failed(exc)
            raise
        finally:
            CALL.reset(tokens[0])
            current_trace.reset(tokens[1])
            _EVENT.reset(tokens[2])
            if scope is not None:
                scope.end()

    # -- partitions ---------------------------------------------------------------------------

    def abandoned(self, key: Hashable) -> None:
        """The event's partition went to another member: its trace ends here, unanswered."""
        trace_ = self._of.pop(key, None)
        if trace_ is not None:
            trace_.finish("abandoned")


class _CallScope(Generic[T]):
    """One Engage call's trace: its span is made when the first request asks (or at its end).

    Late, so that a write the book chooses again just before its first request
    (``chosen_again``, told while the writes that gave way are settled) is traced as the write
    that went, under that write's event, with links to all of them.
    """

    __slots__ = ("call", "span", "started", "token", "trace", "traces")

    def __init__(
        self, traces: EventTraces[T], call: Call[T], trace_: EventTrace, token: T | None
    ) -> None:
        self.traces = traces
        self.call = call
        self.trace = trace_
        self.token = token
        self.span: Span | None = None
        self.started = time_ns()

    def parent(self) -> CallParent:
        """The call's span (made now if need be), or the inbound context to pass on."""
        tracer = self.traces.tracer
        span = self._span() if tracer is not None else None
        if span is None:
            inbound = self.trace.inbound
            if inbound is None:
                return CallParent()
            return CallParent(traceparent=inbound.traceparent(), tracestate=inbound.state)
        return CallParent(tracer=tracer, context=trace.set_span_in_context(span))

    def chosen_again(self, token: T, trace_: EventTrace) -> None:
        """The book chose another write for this call before it sent anything: trace that one."""
        if self.span is None:
            self.token, self.trace = token, trace_
            current_trace.set(trace_.log_ids)

    def _span(self) -> Span | None:
        if self.span is not None:
            return self.span
        tracer = self.traces.tracer
        trace_, token = self.trace, self.token
        if tracer is None or trace_.span is None:
            return None
        riding = getattr(self.call, "embedded", None)  # an action riding in the write
        for op in (token, riding.token if riding is not None else None):
            gate = trace_.gates.pop(op, None) if op is not None else None
            if gate is not None:
                gate.end()
        self.span = tracer.start_span(
            _call_name(self.call),
            context=trace_.context,
            links=trace_.write_links.pop(token, None) if token is not None else None,
            attributes=_call_attributes(self.call),
            start_time=self.started,
        )
        return self.span

    def failed(self, exc: BaseException) -> None:
        """The call ended in an exception (cancelled, refused by the fence)."""
        span = self._span()
        if span is not None:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        """The call is over: its span ends with how it went."""
        span = self._span()
        if span is None:
            return
        result = self.token.result if self.token is not None else None
        if result is not None:
            span.set_attributes(_result_attributes(result))
        span.end()


def _no_write(_order_id: str) -> None:
    """The write in flight, when nobody said how to learn it: none known."""


def _log_ids(context: SpanContext) -> tuple[str, str]:
    return (f"{context.trace_id:032x}", f"{context.span_id:016x}")


def _span_context(context: TraceContext) -> SpanContext:
    return SpanContext(
        trace_id=context.trace_id,
        span_id=context.span_id,
        is_remote=True,
        trace_flags=TraceFlags(context.flags),
        trace_state=TraceState.from_header([context.state]) if context.state else None,
    )


def _headers(traceparent: str, state: str | None) -> Headers:
    headers: Headers = [(TRACEPARENT, traceparent.encode())]
    if state:
        headers.append((TRACESTATE, state.encode()))
    return headers


def _event_attributes(event: OrderEvent) -> dict[str, Any]:
    return {
        "messaging.message.id": event.id,
        "messaging.kafka.message.key": event.order_id,
        "cloudevents.event_id": event.id,
        "cloudevents.event_type": event.type,
        "cloudevents.event_source": event.source,
        "cloudevents.event_subject": event.order_id,
    }


def _call_name(call: Call[T]) -> str:
    if isinstance(call, FetchTag):
        return "engage read"
    if isinstance(call, SendAction):
        return "engage action"
    return f"engage {call.op.kind}"


def _call_attributes(call: Call[T]) -> Attributes:
    attributes: dict[str, Any] = {"engage.order.id": call.order_id}
    if isinstance(call, SendAction):
        if call.op.token.action is not None:
            attributes["engage.action"] = call.op.token.action
        attributes["engage.version_tag"] = call.tag
    elif isinstance(call, SendWrite) and call.exists is not None:
        attributes["engage.order.exists"] = call.exists
    return attributes


def _result_attributes(result: CallResult) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "engage.call.status": result.status,
        "engage.call.attempts": result.attempts,
    }
    if result.http_status is not None:
        attributes["http.response.status_code"] = result.http_status
    if result.reason is not None:
        attributes["engage.call.reason"] = result.reason
    return attributes
