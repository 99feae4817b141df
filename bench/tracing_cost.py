"""CPU per 1,000 events with tracing off and on: ``python -m bench.tracing_cost``.

Our consumer (``engage-consumer run``, pinned to core 0) on the lifecycle workload, every record
carrying a sampled ``traceparent`` header as an instrumented producer's would, in up to three
variants, interleaved round by round so that drift on the shared machine hits each alike:

- ``before``: the tree given by ``--before`` (e.g. ``git archive`` of the commit before
  tracing, unpacked), run from that directory: today's cost;
- ``off``: this tree (or ``--traced``) with no ``OTEL_*`` variable: no SDK, inbound contexts
  passed through;
- ``on``: the same tree exporting every span (parent-based sampling of sampled inputs: 100 %)
  over OTLP/HTTP to a sink in this driver, which counts the spans it receives.

CPU is the process's user + system time from the first produced record until every outcome
arrived and a short settle (the batch exporter's last export included), as the bench's runs
measure it. Prints one line per run and the medians; ``--json`` writes every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import orjson
from aiohttp import web

from bench.procs import MeasuredProcess, pin, wait_group_ready
from bench.runs import pin_driver
from bench.workloads import OutcomeTail, lifecycle_workload
from consumer.sandbox.engage import Delay, SimulatorSettings, open_engage_simulator_process
from consumer.sandbox.kafka import BrokerSettings, open_kafka
from consumer.tracing import format_traceparent

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.sandbox.engage import EngageSimulatorProcess
    from consumer.sandbox.kafka import KafkaBroker
    from consumer.sandbox.workload import GeneratedEvent

ROOT = Path(__file__).resolve().parents[1]


class OtlpSink:
    """An OTLP/HTTP trace receiver on loopback that counts spans and answers 200."""

    def __init__(self) -> None:
        self.spans = 0
        self.requests = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> Self:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._traces)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _traces(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: PLC0415
            ExportTraceServiceRequest,
        )

        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        self.requests += 1
        self.spans += sum(
            len(scope.spans)
            for resource in message.resource_spans
            for scope in resource.scope_spans
        )
        return web.Response(body=b"", content_type="application/x-protobuf")


async def produce_traced(bootstrap: str, topic: str, events: list[GeneratedEvent]) -> None:
    """Each event with a sampled traceparent of its own, as an instrumented producer sends."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for n, event in enumerate(events, start=1):
            header = format_traceparent((0xBE7C << 96) | n, n, 1).encode()
            futures.append(
                await producer.send(
                    topic, key=event.key, value=event.value, headers=[("traceparent", header)]
                )
            )
        for future in futures:
            await future
    finally:
        await producer.stop()


async def one_run(
    variant: str,
    tree: Path,
    *,
    broker: KafkaBroker,
    sim: EngageSimulatorProcess,
    sink: OtlpSink,
    events: list[GeneratedEvent],
    logs: Path,
) -> dict[str, Any]:
    """One measured run of one variant; its CPU seconds per 1,000 events."""
    tag = f"t{uuid.uuid4().hex[:8]}"
    topic, results = f"{tag}.in", f"{tag}.out"
    await broker.create_topics([topic], partitions=12)
    await broker.create_topics([results, f"{topic}.dlq"], partitions=3)
    await sim.reset()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA_GROUP_ID": f"{tag}.group",
        "INPUT_TOPICS": topic,
        "RESULTS_TOPIC": results,
        "DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "ENGAGE_BASE_URL": sim.base_url,
        "ENGAGE_API_KEY": sim.api_key,
        "ENGAGE_MAX_IN_FLIGHT": "64",
        "ENGAGE_RATE_LIMIT": "100000",
        "HTTP_PORT": "0",
        "LOG_LEVEL": "INFO",
        # The driver's own environment must not switch tracing on for the other variants.
        "OTEL_SDK_DISABLED": "false",
        "OTEL_TRACES_EXPORTER": "",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    if variant == "on":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink.port}"
        # Exports during the window, not after it.
        env["OTEL_BSP_SCHEDULE_DELAY"] = "500"
    spans_before = sink.spans
    process = MeasuredProcess(
        [sys.executable, "-m", "consumer.cli", "run"],
        env=env,
        log_path=logs / f"{tag}-{variant}.log",
        cwd=tree,
    )
    try:
        await wait_group_ready(broker.bootstrap_servers, f"{tag}.group", within=120)
        async with OutcomeTail(broker.bootstrap_servers, results) as tail:
            process.mark()
            started = time.monotonic()
            await produce_traced(broker.bootstrap_servers, topic, events)
            done = await tail.wait_for(len(events), within=600, alive=process.alive)
            window = time.monotonic() - started
            await asyncio.sleep(1.0)  # the batch exporter's last export (every 0.5 s)
            usage = process.usage()
    finally:
        status = await process.stop()
    if not done:
        raise RuntimeError(f"{variant}: not every outcome arrived\n{process.log_tail()}")
    return {
        "variant": variant,
        "events": len(events),
        "cpu_s": round(usage.cpu_seconds, 3),
        "cpu_s_per_1000_events": round(usage.cpu_seconds / len(events) * 1000, 4),
        "window_s": round(window, 2),
        "spans_exported": sink.spans - spans_before,
        "exit_status": status,
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    pin_driver()
    traced = args.traced.resolve()
    trees = {"off": traced, "on": traced}
    if args.before is not None:
        trees = {"before": args.before.resolve(), **trees}
    variants = [v for v in trees if v in args.variants]
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    runs: list[dict[str, Any]] = []
    settings = SimulatorSettings(
        job_delay=Delay.parse(args.job_delay), rate_limit=None, seed=1, journal_limit=10
    )
    async with (
        open_kafka(BrokerSettings(c1_only=False)) as broker,
        open_engage_simulator_process(settings, cpus={1}) as sim,
        OtlpSink() as sink,
    ):
        pin(os.getpid(), {1})
        for round_ in range(args.rounds):
            for variant in variants:
                events = lifecycle_workload(args.orders, seed=round_ + 1, tag=f"R{round_}{variant}")
                run = await one_run(
                    variant,
                    trees[variant],
                    broker=broker,
                    sim=sim,
                    sink=sink,
                    events=events,
                    logs=logs,
                )
                run["round"] = round_
                runs.append(run)
                sys.stderr.write(f"[tracing-cost] {orjson.dumps(run).decode()}\n")
    return runs


def hook_cost(events: int = 20_000) -> dict[str, float]:
    """CPU microseconds per event of the tracing hooks alone, in this process (``--hooks``).

    One lifecycle event's hooks as the pipeline calls them (intake, two operations, a write and
    an action call of three and one requests, the outcome): without context and not recording
    (today's path plus the checks), passing a header's context through, and recording into a
    processor that drops every span.
    """
    from dataclasses import dataclass, field  # noqa: PLC0415

    import httpx  # noqa: PLC0415
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import (  # noqa: PLC0415
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    from consumer.events import Lifecycle, OrderEvent  # noqa: PLC0415
    from consumer.orders import Action, SendAction, SendWrite, Settle, Write  # noqa: PLC0415
    from consumer.tracing import EventTraces, traced_request  # noqa: PLC0415

    @dataclass(frozen=True, kw_only=True)
    class Record:
        topic: str = "orders"
        partition: int = 1
        offset: int = 7
        value: bytes = b'{"specversion":"1.0","id":"e","data":{}}' * 20
        headers: list[tuple[str, bytes]] = field(default_factory=list)

    @dataclass(eq=False, kw_only=True)
    class Token:
        pending: object
        role: str
        action: str | None = None
        result: None = None

    class Drop(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:  # noqa: ARG002
            return SpanExportResult.SUCCESS

    event = OrderEvent(
        id="e",
        type="order.confirmed",
        source="/s",
        time="2026-01-01T00:00:00Z",
        order_id="o",
        data=Lifecycle(kind="confirmed", action="ConfirmOrder"),
        topic="orders",
        partition=1,
        offset=7,
    )
    header = [("traceparent", format_traceparent(0xAB << 64, 0xCD, 1).encode())]
    request = httpx.Request("POST", "http://127.0.0.1:1/api/v3/orders", headers={"apikey": "k"})
    recording = TracerProvider()
    recording.add_span_processor(SimpleSpanProcessor(Drop()))

    def one(traces: EventTraces[Token], record: Record) -> None:
        key = object()
        trace_ = traces.begin(record)
        write, action = Token(pending=key, role="write"), Token(pending=key, role="action")
        if trace_ is not None:
            traces.track(key, trace_, event, [write, action])
        calls = (
            (
                SendWrite(
                    order_id="o", op=Write(token=write, kind="upsert", deadline=1), exists=None
                ),
                3,
            ),
            (SendAction(order_id="o", op=Action(token=action, deadline=1), tag="t"), 1),
        )
        for call, requests in calls:
            traces.scheduled(call)
            with traces.calling(call):
                for _ in range(requests):
                    with traced_request(request) as span:
                        span.answered(202)
            traces.settled(
                Settle(order_id="o", token=call.op.token, status="accepted", reason=None)
            )
        popped = traces.pop(key)
        if popped is not None:
            with popped.publishing("results", traces.tracer):
                pass
            popped.finish("accepted")

    cost: dict[str, float] = {}
    cases = {
        "off_no_context": (EventTraces[Token](), Record()),
        "off_passing_context": (EventTraces[Token](), Record(headers=header)),
        "on_recording": (EventTraces[Token](recording), Record(headers=header)),
    }
    for name, (traces, record) in cases.items():
        started = time.process_time()
        for _ in range(events):
            one(traces, record)
        cost[name] = round((time.process_time() - started) / events * 1e6, 1)
    return cost


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median CPU s per 1,000 events per variant, and each against ``before`` (or ``off``)."""
    medians = {
        variant: statistics.median(
            r["cpu_s_per_1000_events"] for r in runs if r["variant"] == variant
        )
        for variant in dict.fromkeys(r["variant"] for r in runs)
    }
    reference = medians.get("before", medians.get("off"))
    return {
        "median_cpu_s_per_1000_events": medians,
        "versus_reference_percent": {
            v: round((m / reference - 1) * 100, 1) for v, m in medians.items() if reference
        },
        "spans_per_event_on": [
            round(r["spans_exported"] / r["events"], 2) for r in runs if r["variant"] == "on"
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.tracing_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="a tree of the code before tracing")
    parser.add_argument(
        "--traced", type=Path, default=ROOT, help="the tree with tracing (default: this one)"
    )
    parser.add_argument("--orders", type=int, default=1000, help="lifecycle orders per run")
    parser.add_argument("--rounds", type=int, default=5)
    # Short jobs and no rate limit: the consumer is busy the whole window, so its CPU is the
    # work of the events, not the idle loops of a longer wait.
    parser.add_argument("--job-delay", default="fixed:0.01")
    parser.add_argument("--variants", type=lambda t: t.split(","), default=["before", "off", "on"])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tracing-cost")
    parser.add_argument("--json", type=Path, help="write the runs and the summary here")
    parser.add_argument(
        "--hooks", action="store_true", help="only the hooks' CPU per event, in this process"
    )
    args = parser.parse_args(argv)
    if args.hooks:
        sys.stdout.write(orjson.dumps(hook_cost()).decode() + "\n")
        return 0
    runs = asyncio.run(main_async(args))
    summary = summarize(runs)
    sys.stdout.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    if args.json is not None:
        args.json.write_bytes(orjson.dumps({"runs": runs, "summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
