"""The ceilings a run is judged against, measured on this machine in the same run.

- Little's law: at most ``in_flight`` requests are outstanding, each takes the simulator's mean
  latency, so no client can exceed ``in_flight / mean_latency`` requests/s.
- The configured rate budget (requests/s per API key).
- The simulator's capacity: requests per simulator CPU-second, measured by
  ``bench/simulator_capacity.py``'s load generator (wrk when installed, else aiohttp) against a
  fresh simulator on its own core with no latency and no rate limit.
- The broker's raw consume rate: Kafka's own ``ConsumerPerformance`` tool from the broker's jars,
  reading the lifecycle input topic.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from typing import TYPE_CHECKING, Any

from bench.procs import CONTENDER_CPUS, SIMULATOR_CPUS, pin, usable_cpus
from bench.simulator_capacity import (
    SETTINGS,
    cpu_seconds,
    load_aiohttp,
    load_wrk,
    prepare,
)
from consumer.sandbox.engage import Delay, open_engage_simulator_process

if TYPE_CHECKING:
    from consumer.sandbox.kafka import KafkaBroker


def mean_delay(text: str) -> float:
    """The mean of a delay distribution written as in ``Delay.parse`` (the cap is ignored)."""
    delay = Delay.parse(text)
    if delay.kind == "uniform":
        return (delay.a + delay.b) / 2
    return delay.a


def littles_bound(in_flight: int, latency: str) -> float:
    """Requests/s that ``in_flight`` concurrent requests of mean ``latency`` can carry."""
    mean = mean_delay(latency)
    return in_flight / mean if mean > 0 else float("inf")


async def simulator_capacity(seconds: float, *, concurrency: int = 64) -> dict[str, Any]:
    """Requests per simulator CPU-second (and the rate achieved), from a short load test."""
    client = "wrk" if shutil.which("wrk") else "aiohttp"
    two_cores = len(usable_cpus()) >= 2
    async with open_engage_simulator_process(
        SETTINGS, cpus=SIMULATOR_CPUS if two_cores else None
    ) as sim:
        targets = await prepare(sim.base_url, sim.api_key, 200)
        before = cpu_seconds(sim.pid)
        started = time.monotonic()
        if client == "wrk":
            statuses = await asyncio.to_thread(
                _wrk_on_contender_core, sim.base_url, sim.api_key, targets, seconds, concurrency
            )
        else:
            statuses = await load_aiohttp(sim.base_url, sim.api_key, targets, seconds, concurrency)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(sim.pid) - before
    total = sum(statuses.values())
    return {
        "client": client,
        "seconds": round(elapsed, 2),
        "concurrency": concurrency,
        "requests": total,
        "achieved_per_s": total / elapsed,
        "simulator_cpu_share": cpu / elapsed,
        "capacity_per_cpu_s": total / cpu if cpu > 0 else None,
    }


def _wrk_on_contender_core(
    base_url: str, api_key: str, targets: list[dict[str, str]], seconds: float, concurrency: int
) -> Any:  # noqa: ANN401 - Counter from the reused script
    # wrk is started by load_wrk with subprocess.run; pinning this thread pins what it forks.
    import os  # noqa: PLC0415

    previous = os.sched_getaffinity(0)
    pin(0, CONTENDER_CPUS)
    try:
        return load_wrk(base_url, api_key, targets, seconds, concurrency)
    finally:
        os.sched_setaffinity(0, previous)


async def broker_consume_rate(
    broker: KafkaBroker, java: str, topic: str, records: int
) -> dict[str, Any]:
    """Kafka's ConsumerPerformance on ``topic``: records/s fetched (rebalance time excluded)."""
    argv = [
        java,
        "-cp",
        broker.jars.classpath,
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        broker.bootstrap_servers,
        "--topic",
        topic,
        "--num-records",
        str(records),
        "--group",
        f"perf-{topic}",
        "--timeout",
        "30000",
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    pin(process.pid, CONTENDER_CPUS)
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    text = output.decode(errors="replace")
    header = next((line for line in text.splitlines() if line.startswith("start.time")), None)
    lines = text.splitlines()
    if header is None or lines.index(header) + 1 >= len(lines):
        return {"error": text[-500:]}
    names = [name.strip() for name in header.split(",")]
    values = [value.strip() for value in lines[lines.index(header) + 1].split(",")]
    row = dict(zip(names, values, strict=False))
    number = re.compile(r"^-?\d+(\.\d+)?$")
    parsed = {k: float(v) if number.match(v) else v for k, v in row.items()}
    return {
        "records": records,
        "records_per_s": parsed.get("fetch.nMsg.sec"),
        "records_per_s_with_rebalance": parsed.get("nMsg.sec"),
        "raw": parsed,
    }
