"""OpenTelemetry traces from the producer's event to Engage's answer.

``context`` reads W3C trace context from a record's headers and its CloudEvents envelope
(pure); ``events`` keeps one trace per event in progress (``EventTraces``, which the pipeline
tells what happens); ``requests`` is what the Engage transport wraps each request in (its
client span and its ``traceparent``); ``setup`` makes the tracer provider from the ``OTEL_*``
environment variables.

Imports nothing of the consumer but ``logs`` (the log lines' trace ids), ``orders`` (the call
types), ``events`` (types only) and what every module may; never the service or Engage's client.
"""

from consumer.tracing.context import (
    InboundContext,
    TraceContext,
    format_traceparent,
    from_envelope,
    from_headers,
    inbound_context,
    parse_traceparent,
    parse_tracestate,
)
from consumer.tracing.events import EventTrace, EventTraces
from consumer.tracing.requests import CALL, CallParent, traced_request
from consumer.tracing.setup import (
    exporters_wanted,
    shutdown_tracer_provider,
    tracer_provider_from_env,
)

__all__ = [
    "CALL",
    "CallParent",
    "EventTrace",
    "EventTraces",
    "InboundContext",
    "TraceContext",
    "exporters_wanted",
    "format_traceparent",
    "from_envelope",
    "from_headers",
    "inbound_context",
    "parse_traceparent",
    "parse_tracestate",
    "shutdown_tracer_provider",
    "traced_request",
    "tracer_provider_from_env",
]
