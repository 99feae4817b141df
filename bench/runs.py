"""One measured run: a contender process, a workload, the simulator's and Kafka's view of it.

Each run gets fresh topics and a reset simulator, starts the contender on core 0, waits until
its consumer group is stable (start-up stays outside the measurement), then produces the
workload and waits for one outcome per event. CPU seconds and peak RSS come from the process;
requests, 429s and accepted actions from the simulator's counters; correctness from
``consumer.sandbox.audit`` over the simulator's journal and the results topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import parallel_consumer
from bench.metrics import outcome_figures, stats_delta
from bench.procs import SIMULATOR_CPUS, MeasuredProcess, pin, wait_group_ready
from bench.workloads import OutcomeTail, precreate, produce
from consumer.sandbox.audit import audit
from consumer.sandbox.engage import Delay, Faults

if TYPE_CHECKING:
    from consumer.sandbox.engage import EngageSimulatorProcess
    from consumer.sandbox.kafka import KafkaBroker
    from consumer.sandbox.workload import GeneratedEvent

#: Contenders: our consumer (default transport), ours on the httpx transport, and the peers.
CONTENDERS = ("ours", "ours-httpx", "naive", "parallel", "faststream")


@dataclass(kw_only=True)
class Machinery:
    """What every run shares: broker, simulator, where logs go, Java and PC's jars."""

    broker: KafkaBroker
    sim: EngageSimulatorProcess
    out_dir: Path
    java: str
    pc_jars: Path | None = None
    serial: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSpec:
    """One run: who, on what, with which bounds."""

    label: str
    contender: str
    workload: str
    events: list[GeneratedEvent]
    audited: list[GeneratedEvent]
    precreated: list[GeneratedEvent] = field(default_factory=list)
    #: Produced and answered before the measurement (action-only: one action per key).
    warmup: list[GeneratedEvent] = field(default_factory=list)
    partitions: int = 12
    latency: str = "fixed:0.02"
    in_flight: int = 64
    polls_in_flight: int = 32
    rate_budget: float = 100_000.0
    naive_poll_interval: float = 0.5
    produce_rate: float | None = None
    timeout: float = 600.0
    profile_to: Path | None = None
    #: more of our consumer's settings (environment variables) for this run
    settings: dict[str, str] = field(default_factory=dict)


def _command(
    spec: RunSpec, machinery: Machinery, *, topic: str, results: str, group: str
) -> tuple[list[str], dict[str, str]]:
    """The contender's argv and environment."""
    sim = machinery.sim
    py = sys.executable
    common = [
        "--bootstrap",
        machinery.broker.bootstrap_servers,
        "--topic",
        topic,
        "--results",
        results,
        "--group",
        group,
        "--base-url",
        sim.base_url,
        "--api-key",
        sim.api_key,
    ]
    if spec.contender in {"ours", "ours-httpx"}:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": machinery.broker.bootstrap_servers,
            "KAFKA_GROUP_ID": group,
            "INPUT_TOPICS": topic,
            "RESULTS_TOPIC": results,
            "DEAD_LETTER_TOPIC": f"{topic}.dlq",
            "ENGAGE_BASE_URL": sim.base_url,
            "ENGAGE_API_KEY": sim.api_key,
            "ENGAGE_MAX_IN_FLIGHT": str(spec.in_flight),
            "ENGAGE_MAX_POLLS_IN_FLIGHT": str(spec.polls_in_flight),
            "ENGAGE_RATE_LIMIT": str(spec.rate_budget),
            "HTTP_PORT": "0",
            "LOG_LEVEL": "INFO",
        }
        if spec.contender == "ours-httpx":
            # The transport the consumer had before aiohttp's: the before/after comparison.
            env["ENGAGE_HTTP_TRANSPORT"] = "httpx"
        env.update(spec.settings)
        return [py, "-m", "consumer.cli", "run"], env
    if spec.contender == "naive":
        interval = ["--poll-interval", str(spec.naive_poll_interval)]
        return [py, "-m", "bench.naive", *common, *interval], {}
    if spec.contender == "faststream":
        return [
            py,
            "-m",
            "bench.faststream_peer",
            *common,
            "--concurrency",
            str(spec.in_flight),
        ], {}
    if spec.contender == "parallel":
        if machinery.pc_jars is None:
            raise RuntimeError("Parallel Consumer's jars are not available")
        args = [
            machinery.broker.bootstrap_servers,
            topic,
            results,
            group,
            sim.base_url,
            sim.api_key,
            str(spec.in_flight),
        ]
        argv = parallel_consumer.harness_command(
            jars=machinery.pc_jars,
            kafka_jars=machinery.broker.jars.directory,
            java=machinery.java,
            args=args,
        )
        return argv, {}
    raise ValueError(f"unknown contender {spec.contender!r}")


async def run(spec: RunSpec, machinery: Machinery) -> dict[str, Any]:
    """Carry out one run and return its figures (see the module docstring)."""
    machinery.serial += 1
    tag = f"r{machinery.serial:02d}-{uuid.uuid4().hex[:6]}"
    topic, results, group = f"{tag}.in", f"{tag}.out", f"{tag}.group"
    broker, sim = machinery.broker, machinery.sim
    await broker.create_topics([topic], partitions=spec.partitions)
    await broker.create_topics([results, f"{topic}.dlq"], partitions=3)
    await sim.reset()
    await sim.set_faults(Faults())
    if spec.precreated:
        await precreate(sim, spec.precreated)
    await sim.set_faults(Faults(latency=Delay.parse(spec.latency)))
    argv, env = _command(spec, machinery, topic=topic, results=results, group=group)
    log_path = machinery.out_dir / "logs" / f"{tag}-{spec.label}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    process = MeasuredProcess(argv, env=env, log_path=log_path)
    profiler: asyncio.subprocess.Process | None = None
    try:
        try:
            join_s = await wait_group_ready(broker.bootstrap_servers, group, within=120)
        except TimeoutError:
            raise RuntimeError(
                f"{spec.label}: never joined its group\n{process.log_tail()}"
            ) from None
        async with OutcomeTail(broker.bootstrap_servers, results) as tail:
            if spec.warmup:
                await produce(broker.bootstrap_servers, topic, spec.warmup)
                if not await tail.wait_for(
                    len(spec.warmup), within=spec.timeout, alive=process.alive
                ):
                    raise RuntimeError(f"{spec.label}: warm-up unanswered\n{process.log_tail()}")
            before = await sim.stats()
            process.mark()
            if spec.profile_to is not None:
                profiler = await _start_profiler(process.pid, spec.profile_to)
            started_at = time.time()
            sent_at: dict[str, float] = {}
            produce_s = await produce(
                broker.bootstrap_servers,
                topic,
                spec.events,
                rate=spec.produce_rate,
                sent_at=sent_at,
            )
            expected = len(spec.warmup) + len(spec.events)
            done = await tail.wait_for(expected, within=spec.timeout, alive=process.alive)
            usage = process.usage()
            if profiler is not None:
                await _stop_profiler(profiler)
            after = await sim.stats()
            outcomes = list(tail.outcomes)
        journal = await sim.journal()
    finally:
        if profiler is not None and profiler.returncode is None:
            profiler.kill()
            await profiler.wait()
        status = await process.stop()
    wanted = {e.event_id for e in spec.events}
    figures = outcome_figures(outcomes, started_at=started_at, wanted=wanted, sent_at=sent_at)
    precreated = [
        {"data": {"eventId": e.event_id, "operation": "upsert", "status": "accepted"}}
        for e in spec.precreated
    ]
    report = audit(events=spec.audited, journal=journal, outcomes=[*precreated, *outcomes])
    counts = stats_delta(before, after)
    events = len(spec.events)
    actions = counts["actions_accepted"]
    window = figures["window_s"]
    return {
        "label": spec.label,
        "contender": spec.contender,
        "workload": spec.workload,
        "params": {
            "events": events,
            "partitions": spec.partitions,
            "latency": spec.latency,
            "in_flight": spec.in_flight,
            "polls_in_flight": spec.polls_in_flight,
            "rate_budget": spec.rate_budget,
            "produce_rate": spec.produce_rate,
            "naive_poll_interval": spec.naive_poll_interval if spec.contender == "naive" else None,
            "precreated_orders": len(spec.precreated),
            "warmup_events": len(spec.warmup),
        },
        "completed": done,
        "exit_status": status,
        "pinned": process.pinned,
        "join_s": round(join_s, 2),
        "produce_s": round(produce_s, 2),
        **figures,
        "actions_per_s": actions / window,
        "requests_per_s": counts["requests"] / window,
        "requests_per_action": counts["requests"] / actions if actions else None,
        **counts,
        "cpu_s": usage.cpu_seconds,
        "cpu_s_per_1000_events": usage.cpu_seconds / events * 1000 if events else None,
        "cores_busy": usage.cores,
        "runqueue_wait_s": usage.runqueue_wait_seconds,
        "runqueue_wait_share": usage.runqueue_wait_seconds / window,
        "contender_core_busy": usage.core_busy,
        "peak_rss_bytes": usage.peak_rss_bytes,
        "audit": {**report.summary(), "correct": report.correct},
        "log": str(log_path),
    }


async def _start_profiler(pid: int, target: Path) -> asyncio.subprocess.Process | None:
    """py-spy sampling the contender (raw collapsed stacks), itself on the simulator's core."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(spy), "record", "-p", str(pid), "-r", "200", "--format", "raw", "-o", str(target)]
    profiler = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    pin(profiler.pid, SIMULATOR_CPUS)
    return profiler


async def _stop_profiler(profiler: asyncio.subprocess.Process) -> None:
    # SIGINT makes py-spy write what it sampled and exit.
    with contextlib.suppress(ProcessLookupError):
        profiler.send_signal(signal.SIGINT)
    try:
        await asyncio.wait_for(profiler.wait(), 30)
    except TimeoutError:
        profiler.kill()
        await profiler.wait()


_LIBRARIES = {
    "httpx/httpcore/h11 (HTTP client)": ("httpx/", "httpcore/", "h11/"),
    "aiohttp (transport)": ("aiohttp/", "httpx_aiohttp/"),
    "aiokafka": ("aiokafka/",),
    "consumer (our code)": ("consumer/",),
    "structlog/logging": ("structlog/", "logging/"),
    "orjson/fastjsonschema": ("orjson", "fastjsonschema/"),
    "anyio": ("anyio/",),
    "asyncio (event loop, sockets)": ("asyncio/", "selectors.py", "socket.py", "ssl.py"),
}


def _library(frame: str) -> str | None:
    for name, needles in _LIBRARIES.items():
        if any(f"({n}" in frame or f"/{n}" in frame for n in needles):
            return name
    return None


def summarize_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Where the contender's CPU went, from py-spy's collapsed stacks.

    ``self_by_library``: each sample goes to the innermost frame that belongs to a known
    library (so time in a C call or the stdlib goes to the library that made it);
    ``inclusive``: share of samples with the library anywhere on the stack.
    """
    if not path.exists():
        return {"error": "no profile (py-spy missing or not permitted)"}
    inclusive: Counter[str] = Counter()
    innermost: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        found = {lib for lib in map(_library, frames) if lib is not None}
        for lib in found:
            inclusive[lib] += count
        owner = next((lib for lib in map(_library, reversed(frames)) if lib), "other")
        innermost[owner] += count
        leaves[frames[-1]] += count
    if not total:
        return {"samples": 0, "file": str(path)}
    return {
        "samples": total,
        "self_by_library": {k: round(v / total, 3) for k, v in innermost.most_common()},
        "inclusive": {k: round(v / total, 3) for k, v in inclusive.most_common()},
        "top_leaf_frames": [(frame, round(n / total, 3)) for frame, n in leaves.most_common(top)],
        "file": str(path),
    }


def pin_driver() -> None:
    """Keep this driver (producer, outcome reader) off the contender's core."""
    pin(os.getpid(), SIMULATOR_CPUS)
