"""The Engage request span: what the HTTP transport asks for each request it sends.

The pipeline runs each Engage call in a task of its own and, around it, sets ``CALL`` to the
call's ``CallScope``, whose ``parent()`` names what the requests descend from: the call's span
(made when the first request asks, so that a write the order book chooses again just before
it goes is traced as the write that went) or, when this process records nothing, the inbound
``traceparent`` to pass on unchanged, as OpenTelemetry's no-op API does. The transport
(``consumer.engage.transport``), the one place every request goes through, wraps each send in
``traced_request(request)``, which puts ``traceparent`` (and ``tracestate``) on the request
and records one client span with the HTTP semantic-convention attributes:
``http.request.method``, ``url.full`` (without query, fragment or user info),
``server.address``, ``server.port``, ``http.response.status_code`` and ``error.type``.

Never a header value in an attribute: the API key travels in one (``apikey``), and an
``Authorization`` header may carry another secret.

Outside a call (no ``CALL`` set) ``traced_request`` returns a shared do-nothing context: the
whole cost of an untraced request is one ``ContextVar.get``.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, Self

from opentelemetry.trace import SpanKind, Status, StatusCode

from consumer.tracing.context import TRACEPARENT, TRACESTATE, format_traceparent

if TYPE_CHECKING:
    from types import TracebackType

    import httpx
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, Tracer

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True, kw_only=True, slots=True)
class CallParent:
    """What the requests of one Engage call descend from.

    Recording: ``tracer`` and ``context`` (the call span's); passing through: only the inbound
    ``traceparent`` and ``tracestate``, sent as they came.
    """

    tracer: Tracer | None = None
    context: Context | None = None
    traceparent: str | None = None
    tracestate: str | None = None


class CallScope(Protocol):
    """One Engage call's trace, as its requests see it."""

    def parent(self) -> CallParent:
        """What the next request descends from."""
        ...


#: The scope of the call the current task runs (None: outside any traced call).
CALL: ContextVar[CallScope | None] = ContextVar("engage_call_scope", default=None)


class RequestSpan:
    """Context manager around one request; ``answered`` records the HTTP status."""

    __slots__ = ("_parent", "_request", "_span")

    def __init__(self, parent: CallParent, request: httpx.Request) -> None:
        self._parent = parent
        self._request = request
        self._span: Span | None = None

    def __enter__(self) -> Self:
        parent, request = self._parent, self._request
        if parent.tracer is None:
            if parent.traceparent is not None:
                request.headers[TRACEPARENT] = parent.traceparent
                if parent.tracestate:
                    request.headers[TRACESTATE] = parent.tracestate
            return self
        url = request.url
        span = parent.tracer.start_span(
            request.method,
            context=parent.context,
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": request.method,
                "url.full": str(url.copy_with(query=None, fragment=None, userinfo=b"")),
                "server.address": url.host,
                "server.port": url.port or _DEFAULT_PORTS.get(url.scheme, 0),
            },
        )
        self._span = span
        context = span.get_span_context()
        request.headers[TRACEPARENT] = format_traceparent(
            context.trace_id, context.span_id, context.trace_flags
        )
        state = context.trace_state.to_header() if context.trace_state else ""
        if state:
            request.headers[TRACESTATE] = state
        return self

    def answered(self, status: int) -> None:
        """Engage answered with HTTP ``status`` (4xx and 5xx mark the client span an error)."""
        span = self._span
        if span is None:
            return
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        if span is None:
            return
        if exc_type is not None:
            # The class only (ReadTimeout, ConnectError, CancelledError): a message may quote
            # the request.
            span.set_attribute("error.type", exc_type.__qualname__)
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class _Untraced:
    """The request context outside a traced call: does nothing."""

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def answered(self, status: int) -> None:
        """Nothing to record."""

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_UNTRACED: Final = _Untraced()


def traced_request(request: httpx.Request) -> RequestSpan | _Untraced:
    """The context to send ``request`` in: its span and its ``traceparent``, when traced."""
    scope = CALL.get()
    if scope is None:
        return _UNTRACED
    return RequestSpan(scope.parent(), request)
