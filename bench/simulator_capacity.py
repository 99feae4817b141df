"""Capacity probe for the Engage simulator: how many requests/s it serves on one CPU core.

The simulator runs in its own process pinned to CPU 0; this script is the client, pinned to
CPU 1, sending a mix of Engage calls at high concurrency to orders it created beforehand:
50 % action POSTs with the order's current versionTag (202, journaled), 40 % order GETs (200)
and 10 % polls of finished jobs (302). The rate limit is off. Besides the achieved rate the
probe reads the simulator's CPU time from /proc, so ``capacity`` = requests per CPU-second of
the simulator, which is its ceiling on one core even when the client is the slower side.

Measured on the project's shared 2-core development machine (Python 3.11, aiohttp 3.14,
other jobs running: load average 2-7), 10 s runs, concurrency 64:

  client   achieved req/s   simulator CPU   capacity (requests per simulator CPU-second)
  wrk      3,800 - 14,900   23 - 70 %       16,400 - 21,200
  aiohttp  2,340            14 %            16,700   (the Python client is the slow side)
  httpx    60 - 300         2 - 5 %         (client-bound: httpx itself peaks near 300 req/s
                                             per core here and degrades at concurrency 64)

So the simulator serves about 20,000 requests/s on one core, and 14,900 req/s were actually
achieved while other jobs used the machine (the figure is per CPU-second, so it holds even
when other processes share the core; the lower readings came with the heaviest load).
Engage itself allows 200 requests/s per key, so the simulator has ~100x headroom over anything
the consumer may legitimately send; it is never the bottleneck of a benchmark of the consumer.

Usage::

    .venv/bin/python bench/simulator_capacity.py [--client auto|aiohttp|httpx|wrk]
        [--seconds 10] [--concurrency 64] [--orders 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from consumer.sandbox.engage import Delay, SimulatorSettings, open_engage_simulator_process

SETTINGS = SimulatorSettings(rate_limit=None, job_delay=Delay.fixed(0.001), seed=1)
HEADERS = {"User-Agent": "simulator-capacity/1", "Content-Type": "application/json"}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def prepare(base_url: str, api_key: str, orders: int) -> list[dict[str, str]]:
    """Create the orders, wait for their jobs, and return (orderId, versionTag, job path)."""
    headers = {**HEADERS, "apikey": api_key}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        jobs = []
        for n in range(orders):
            order = {"orderId": f"cap-{n}", "contact": {"matchKey": f"c{n}@example.com"}}
            answer = await client.post("/api/v3/orders", json=order)
            answer.raise_for_status()
            jobs.append((order["orderId"], answer.headers["Location"]))
        await asyncio.sleep(0.2)
        prepared = []
        for order_id, job in jobs:
            tag = (await client.get(f"/api/v3/orders/{order_id}")).json()["versionTag"]
            prepared.append({"orderId": order_id, "versionTag": tag, "job": job})
        return prepared


def pick(targets: list[dict[str, str]], rng: random.Random) -> tuple[str, str, bytes | None]:
    """One request of the mix: (method, path, body)."""
    target = rng.choice(targets)
    roll = rng.random()
    if roll < 0.5:
        body = f'{{"action":"ConfirmShipment","versionTag":"{target["versionTag"]}"}}'
        return "POST", f"/api/v3/orders/{target['orderId']}/action", body.encode()
    if roll < 0.9:
        return "GET", f"/api/v3/orders/{target['orderId']}", None
    return "GET", target["job"], None


async def load_aiohttp(
    base_url: str, api_key: str, targets: list[dict[str, str]], seconds: float, concurrency: int
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {**HEADERS, "apikey": api_key}
    async with aiohttp.ClientSession(base_url, connector=connector, headers=headers) as session:

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                method, path, body = pick(targets, rng)
                async with session.request(
                    method, path, data=body, allow_redirects=False
                ) as answer:
                    await answer.read()
                    statuses[answer.status] += 1

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return statuses


async def load_httpx(
    base_url: str, api_key: str, targets: list[dict[str, str]], seconds: float, concurrency: int
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {**HEADERS, "apikey": api_key}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:

        async def worker(seed: int) -> None:
            rng = random.Random(seed)
            while time.monotonic() < deadline:
                method, path, body = pick(targets, rng)
                statuses[(await client.request(method, path, content=body)).status_code] += 1

        await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return statuses


def load_wrk(
    base_url: str, api_key: str, targets: list[dict[str, str]], seconds: float, concurrency: int
) -> Counter[int]:
    """Run wrk with a Lua script holding the prebuilt mix; returns {0: non-2xx/3xx, 200: rest}."""
    rng = random.Random(7)
    lines = []
    for _ in range(2000):
        method, path, body = pick(targets, rng)
        lua_body = "nil" if body is None else "'" + body.decode() + "'"
        lines.append(f"  wrk.format('{method}', '{path}', nil, {lua_body}),")
    headers = {**HEADERS, "apikey": api_key}
    header_lua = "\n".join(f"wrk.headers['{k}'] = '{v}'" for k, v in headers.items())
    script = (
        f"{header_lua}\nlocal reqs\nfunction init(args)\n reqs = {{\n"
        + "\n".join(lines)
        + "\n }\nend\nfunction request()\n return reqs[math.random(#reqs)]\nend\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        output = subprocess.run(
            ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds:g}s", "-s", handle.name, base_url],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    bad_match = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    bad = int(bad_match.group(1)) if bad_match else 0
    return Counter({200: total - bad, 0: bad})


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--client",
        choices=["auto", "aiohttp", "httpx", "wrk"],
        default="auto",
        help="load generator; auto = wrk when installed, else aiohttp",
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--orders", type=int, default=500)
    args = parser.parse_args()
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "aiohttp"
    if args.client == "wrk" and shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk), use --client aiohttp")
        return 2
    two_cores = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    sim_cpus = {min(os.sched_getaffinity(0))} if two_cores else None
    async with open_engage_simulator_process(SETTINGS, cpus=sim_cpus) as sim:
        if two_cores:
            assert sim_cpus is not None
            os.sched_setaffinity(0, os.sched_getaffinity(0) - sim_cpus)
        targets = await prepare(sim.base_url, sim.api_key, args.orders)
        before_stats: dict[str, Any] = await sim.stats()
        cpu_before, started = cpu_seconds(sim.pid), time.monotonic()
        if args.client == "wrk":
            load = asyncio.to_thread(
                load_wrk, sim.base_url, sim.api_key, targets, args.seconds, args.concurrency
            )
            statuses = await load
        else:
            runner = load_aiohttp if args.client == "aiohttp" else load_httpx
            statuses = await runner(
                sim.base_url, sim.api_key, targets, args.seconds, args.concurrency
            )
        elapsed, cpu = time.monotonic() - started, cpu_seconds(sim.pid) - cpu_before
        after_stats: dict[str, Any] = await sim.stats()
    total = sum(statuses.values())
    served = after_stats["requestsTotal"] - before_stats["requestsTotal"]
    rate = total / elapsed
    print(f"client={args.client} concurrency={args.concurrency} seconds={elapsed:.1f}")
    print(
        f"requests={total} (simulator counted {served}) statuses={dict(sorted(statuses.items()))}"
    )
    print(f"achieved={rate:,.0f} req/s  simulator CPU={cpu / elapsed:.0%} of one core")
    print(f"capacity={total / cpu:,.0f} req/s per simulator CPU-second")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
