"""The tracer provider, chosen by OpenTelemetry's standard environment variables.

- ``OTEL_SDK_DISABLED=true``: no provider (nothing recorded; inbound contexts pass through).
- ``OTEL_TRACES_EXPORTER``: ``otlp`` (OTLP over HTTP with protobuf), ``console`` (stdout, for
  a look by hand), ``none``; a list is allowed. Unset: ``otlp`` when an OTLP endpoint is set
  (``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``), otherwise none.
  OpenTelemetry's own default is ``otlp`` to localhost; here an unconfigured service records
  nothing at all, so that tracing costs nothing until someone points it somewhere.
- Everything else is the SDK's: the exporter reads ``OTEL_EXPORTER_OTLP_*`` (endpoint,
  headers, timeout, compression, certificates), the batch processor ``OTEL_BSP_*``, the sampler
  ``OTEL_TRACES_SAMPLER``/``_ARG`` (default: parent-based, always on), the resource
  ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (over ``service.name=engage-consumer``).

These variables are not in the settings table: they are OpenTelemetry's, read by its SDK, and
every OpenTelemetry-instrumented service takes the same ones. This module reads only the few
that decide whether there is a provider at all, and reports a bad one as a ``ConfigError``.
The values of ``OTEL_EXPORTER_OTLP_HEADERS`` (often a token) are registered with the log
scrubber, so they never reach a log line.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote

from consumer import __version__
from consumer.errors import ConfigError
from consumer.logs import scrubber

if TYPE_CHECKING:
    from collections.abc import Mapping

    from opentelemetry.sdk.trace import TracerProvider

EXPORTERS: Final = ("otlp", "console", "none")
_PROTOCOL: Final = "http/protobuf"


def exporters_wanted(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The span exporters the environment asks for (empty: record nothing)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ()
    listed = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    ]
    if not listed:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        listed = ["otlp"] if endpoint else []
    problems: list[str] = []
    unknown = sorted(set(listed) - set(EXPORTERS))
    if unknown:
        problems.append(
            f"OTEL_TRACES_EXPORTER: {', '.join(unknown)} is not one of {', '.join(EXPORTERS)}"
        )
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", _PROTOCOL
    )
    if "otlp" in listed and protocol.strip() != _PROTOCOL:
        problems.append(
            f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not supported; use {_PROTOCOL}"
        )
    if problems:
        raise ConfigError(problems)
    if "none" in listed:
        return ()
    return tuple(dict.fromkeys(listed))


def tracer_provider_from_env(
    environ: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """A tracer provider with the exporters the environment asks for; None for none.

    The caller shuts it down (``shutdown_tracer_provider``), which exports what is left.
    """
    environ = os.environ if environ is None else environ
    exporters = exporters_wanted(environ)
    if not exporters:
        return None
    # The SDK (and the exporter, with protobuf and requests) only when tracing is on.
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
        SpanExporter,
    )

    _register_header_secrets(environ)
    attributes: dict[str, str | bool | int | float] = {
        "service.name": "engage-consumer",
        "service.version": __version__,
    }
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win over the defaults above.
    attributes.update(dict(OTELResourceDetector().detect().attributes))  # type: ignore[arg-type]
    provider = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
    for name in exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
                OTLPSpanExporter,
            )

            exporter: SpanExporter = OTLPSpanExporter()
            provider.add_span_processor(BatchSpanProcessor(exporter))
        else:
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return provider


def shutdown_tracer_provider(provider: TracerProvider | None) -> None:
    """Export what is left and stop the exporters (blocks up to the export timeout)."""
    if provider is not None:
        provider.shutdown()


def _register_header_secrets(environ: Mapping[str, str]) -> None:
    """The values of the OTLP exporter's headers (``k=v,k2=v2``) never reach a log line."""
    values: list[str] = []
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        for pair in environ.get(name, "").split(","):
            _, sep, value = pair.partition("=")
            if sep and value.strip():
                # The SDK reads them URL-decoded: either spelling must be scrubbed.
                values.extend({value.strip(), unquote(value.strip())})
    scrubber.register(values)
