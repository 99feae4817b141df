from tests.unit.surface import assert_surface


def test_the_tracing_surface() -> None:
    """What code outside consumer/tracing may use of it."""
    assert_surface(
        "consumer.tracing",
        [
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
        ],
    )
