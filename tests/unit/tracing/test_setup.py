"""The exporter comes from the standard OTEL_* variables; none configured means none at all."""

import pytest
from opentelemetry.sdk.trace import TracerProvider

from consumer.errors import ConfigError
from consumer.logs import REDACTED, scrubber
from consumer.tracing import exporters_wanted, shutdown_tracer_provider, tracer_provider_from_env


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, ()),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ("otlp",)),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ("otlp",)),
        ({"OTEL_TRACES_EXPORTER": "console"}, ("console",)),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ("otlp", "console")),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ()),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ()),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "otlp"}, ("otlp",)),
    ],
)
def test_the_environment_chooses_the_exporters(
    environ: dict[str, str], expected: tuple[str, ...]
) -> None:
    """OTLP when an endpoint is set, nothing otherwise; the SDK's switches are respected."""
    assert exporters_wanted(environ) == expected


def test_unknown_exporters_and_protocols_are_bad_settings() -> None:
    """Reported together, as every bad setting is."""
    with pytest.raises(ConfigError) as caught:
        exporters_wanted(
            {"OTEL_TRACES_EXPORTER": "otlp,zipkin", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        )
    assert len(caught.value.problems) == 2


def test_no_exporter_means_no_provider() -> None:
    """Tracing off: no SDK at all, so nothing is recorded."""
    assert tracer_provider_from_env({}) is None


def test_a_provider_names_the_service_and_keeps_the_exporter_token_out_of_logs() -> None:
    """service.name defaults to engage-consumer; OTEL_SERVICE_NAME wins; header values scrubbed."""
    provider = tracer_provider_from_env(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
            "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Bearer%20tok-3n-secret",
        }
    )
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "engage-consumer"
    assert scrubber._scrub("sent Bearer tok-3n-secret") == f"sent {REDACTED}"
    shutdown_tracer_provider(provider)
    shutdown_tracer_provider(None)


def test_otel_service_name_names_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's resource variables win over the default name."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "orders-to-engage")
    provider = tracer_provider_from_env({"OTEL_TRACES_EXPORTER": "console"})
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "orders-to-engage"
    shutdown_tracer_provider(provider)
