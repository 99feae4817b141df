"""Traces end to end: the consumer's spans in memory, the simulator's view of each request.

One run of the real service (real broker, simulator over HTTP) with an in-memory span exporter
in its process. Inputs carry their producer's context in a Kafka header, in the CloudEvents
envelope, or not at all; one order's writes are coalesced; one record is invalid. The test
prints one event's span tree with its timings.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

import anyio
import orjson
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from consumer.logs import configure_logging
from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import EventFactory
from consumer.service import Service
from consumer.tracing import format_traceparent, parse_traceparent
from tests.integration.harness import consumer_settings, make_topics, read_all, wait_for

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence

    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker
    from consumer.types import Headers
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

# The producer's spans, as an instrumented order service would send them.
HEADER_PARENT = (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331)
ENVELOPE_PARENT = (0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7)
INVALID_PARENT = (0x11111111111111111111111111111111, 0x2222222222222222)


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The service's JSON log lines at DEBUG; structlog and the root logger restored after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging(level="DEBUG", stream=stream)
    yield stream
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@contextlib.asynccontextmanager
async def running_traced(service: Service) -> AsyncIterator[Service]:
    """Run the service in this loop; drain and stop it on exit."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(service.run)
        try:
            yield service
        finally:
            service.stopping.set()


async def produce_with_headers(
    broker: KafkaBroker, topic: str, records: Sequence[tuple[bytes, bytes, Headers]]
) -> None:
    """Publish (key, value, headers) records in order."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=k, value=v, headers=h or None) for k, v, h in records
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


def tree(spans: Sequence[ReadableSpan], root: ReadableSpan) -> list[str]:
    """The span tree under ``root``: offset from its start and duration, in ms."""
    children: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        if span.parent is not None:
            children[span.parent.span_id].append(span)
    assert root.start_time is not None
    origin = root.start_time
    lines: list[str] = []

    def walk(span: ReadableSpan, depth: int) -> None:
        assert span.start_time is not None
        assert span.end_time is not None
        start = (span.start_time - origin) / 1e6
        took = (span.end_time - span.start_time) / 1e6
        status = span.attributes.get("http.response.status_code") if span.attributes else None
        extra = f"  [{status}]" if status is not None else ""
        lines.append(
            f"{'  ' * depth}{span.name:<{40 - 2 * depth}} +{start:8.1f} ms {took:8.1f} ms{extra}"
        )
        for child in sorted(children[span.context.span_id], key=lambda s: s.start_time or 0):
            walk(child, depth + 1)

    walk(root, 0)
    return lines


def traceparent_header(ids: tuple[int, int]) -> Headers:
    return [("traceparent", format_traceparent(*ids, 1).encode()), ("tracestate", b"vendor=1")]


async def test_each_event_is_one_trace_from_its_producer_to_engage_and_its_outcome(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    json_logs: io.StringIO,
) -> None:
    """Spans per event with the right parents; requests and outcomes carry their context."""
    # Jobs slow enough that writes queued behind a running one are coalesced.
    sim: EngageSimulator = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.parse("fixed:0.15"))
    )
    topics = await make_topics(new_topic, partitions=2)
    factory = EventFactory(prefix="trace")
    upsert = factory.upserted("TR-A", 1)
    confirmed = factory.lifecycle("confirmed", "TR-A", revision=2, snapshot_status="Paid")
    confirmed.event["traceparent"] = format_traceparent(*ENVELOPE_PARENT, 1)
    untraced = factory.upserted("TR-B", 1)
    bursts = [factory.upserted("TR-C", revision) for revision in (1, 2, 3, 4)]
    invalid = orjson.dumps({"subject": "TR-D", "type": "order.upserted", "id": "bad-1"})
    records: list[tuple[bytes, bytes, Headers]] = [
        (upsert.key, upsert.value, traceparent_header(HEADER_PARENT)),
        (confirmed.key, confirmed.value, []),
        (untraced.key, untraced.value, []),
        *[(e.key, e.value, []) for e in bursts],
        (b"TR-D", invalid, traceparent_header(INVALID_PARENT)),
    ]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    service = Service(consumer_settings(kafka_broker, sim, topics), tracer_provider=provider)
    async with running_traced(service):
        await produce_with_headers(kafka_broker, topics.inputs[0], records)
        await wait_for(service, finished=len(records))
    outcomes = await read_all(kafka_broker, topics.results, at_least=len(records))
    spans = list(exporter.get_finished_spans())
    by_id = {s.context.span_id: s for s in spans}

    # One process span per input event, each the root of its event's spans in this process.
    process = [s for s in spans if s.kind is SpanKind.CONSUMER]
    assert len(process) == len(records)
    by_event = {
        str((s.attributes or {}).get("cloudevents.event_id", "invalid")): s for s in process
    }
    assert set(by_event) == {
        upsert.event_id,
        confirmed.event_id,
        untraced.event_id,
        *(e.event_id for e in bursts),
        "invalid",
    }

    def parent_of(span: ReadableSpan) -> tuple[int, int] | None:
        return (span.parent.trace_id, span.parent.span_id) if span.parent else None

    # Parents: the header's span, the envelope's span, none (a new trace).
    assert parent_of(by_event[upsert.event_id]) == HEADER_PARENT
    assert by_event[upsert.event_id].context.trace_state.to_header() == "vendor=1"
    assert parent_of(by_event[confirmed.event_id]) == ENVELOPE_PARENT
    assert parent_of(by_event[untraced.event_id]) is None
    assert parent_of(by_event["invalid"]) == INVALID_PARENT
    assert len({s.context.trace_id for s in process}) == len(process)

    # Every other span belongs to one event's trace and hangs under its process span.
    def root_of(span: ReadableSpan) -> ReadableSpan:
        while span.kind is not SpanKind.CONSUMER:
            assert span.parent is not None
            span = by_id[span.parent.span_id]
        return span

    assert all(root_of(s).context.trace_id == s.context.trace_id for s in spans)

    # Each HTTP request is a client span under an Engage call span, with semconv attributes,
    # and the simulator saw exactly those spans' contexts.
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    for client in clients:
        parent = by_id[client.parent.span_id] if client.parent else None
        assert parent is not None
        assert parent.name.startswith("engage ")
        attributes = dict(client.attributes or {})
        assert set(attributes) >= {
            "http.request.method",
            "url.full",
            "server.address",
            "server.port",
            "http.response.status_code",
        }
        assert str(attributes["url.full"]).startswith(sim.base_url + "/api/v3/orders")
    seen = [parse_traceparent(tp) for _, _, tp in sim.traceparents if tp is not None]
    assert len(seen) == len(sim.traceparents)  # every request carried one
    assert sorted((c.trace_id, c.span_id) for c in seen if c is not None) == sorted(
        (s.context.trace_id, s.context.span_id) for s in clients
    )

    # The outcome record carries its publish span's context: analytics joins on it.
    sends = {s.context.span_id: s for s in spans if s.kind is SpanKind.PRODUCER}
    assert len(sends) == len(records)
    for record in outcomes:
        headers = dict(record.headers)
        context = parse_traceparent(headers["traceparent"])
        assert context is not None
        send = sends[context.span_id]
        assert (send.context.trace_id, send.parent.span_id if send.parent else None) == (
            context.trace_id,
            root_of(send).context.span_id,
        )

    # Coalescing: the sent write's call span links to the skipped events, and they to it.
    skipped = [
        by_event[e.event_id]
        for e in bursts
        if (by_event[e.event_id].attributes or {}).get("engage.outcome.reason") == "coalesced"
    ]
    assert skipped, "no write was coalesced"
    writes = [
        s
        for s in spans
        if s.name == "engage upsert"
        and s.links
        and (s.attributes or {})["engage.order.id"] == "TR-C"
    ]
    assert len(writes) == 1
    linked = {link.context.span_id for link in writes[0].links}
    assert linked == {s.context.span_id for s in skipped}
    winner = root_of(writes[0]).context.span_id
    assert all([link.context.span_id for link in s.links] == [winner] for s in skipped)

    # No secret in any attribute: not the API key, nor any header.
    for span in spans:
        for value in (span.attributes or {}).values():
            assert sim.api_key not in str(value)

    # Log lines written while handling an event name its trace.
    lines = [orjson.loads(line) for line in json_logs.getvalue().splitlines()]
    handled = [line for line in lines if line["event"] in {"outcome", "sending write"}]
    assert handled
    for line in handled:
        root = by_event[line["eventId"]]
        assert line["trace_id"] == f"{root.context.trace_id:032x}"

    # The tree of the lifecycle event: its write and its action, each behind its gate.
    lifecycle = by_event[confirmed.event_id]
    shown = tree(spans, lifecycle)
    print("\n" + "\n".join(shown))
    below = sorted(
        s.name for s in spans if s.parent and s.parent.span_id == lifecycle.context.span_id
    )
    assert (
        below[: len(below) - 1]
        == ["engage action", "engage upsert", "gate action", "gate write"][: len(below) - 1]
    )
