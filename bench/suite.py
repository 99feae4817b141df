"""The whole benchmark in one run: memory, bounds, lifecycle, action-only sweep, paced latency.

Order matters on a shared 2-core machine: the memory probe and the simulator-capacity probe run
before the broker starts (nothing else of ours is running then); every contender run happens on
the same broker, with the simulator pinned to core 1 and the contender to core 0.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import orjson

from bench import parallel_consumer
from bench.bounds import broker_consume_rate, littles_bound, mean_delay, simulator_capacity
from bench.delivery import delivery
from bench.procs import SIMULATOR_CPUS, usable_cpus
from bench.runs import Machinery, RunSpec, pin_driver, run, summarize_profile
from bench.scaleout import scale_out
from bench.workloads import action_workload, lifecycle_workload, produce, request_floor
from consumer.sandbox.engage import Delay, SimulatorSettings, open_engage_simulator_process
from consumer.sandbox.kafka import BrokerSettings, open_kafka

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from bench.plan import Plan


def _say(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


async def memory_probe(orders: int) -> dict[str, Any]:
    """RSS per idle tracked order at ``orders`` orders, and tracemalloc's count on ≤100k."""
    results: dict[str, Any] = {}
    for mode, count in (("rss", orders), ("tracemalloc", min(orders, 100_000))):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.memory",
            "--orders",
            str(count),
            "--mode",
            mode,
            stdout=asyncio.subprocess.PIPE,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 600)
        results[mode] = orjson.loads(output)
    return results


def _machine() -> dict[str, Any]:
    return {
        "cpus": sorted(usable_cpus()),
        "driver_affinity": sorted(os.sched_getaffinity(0)),
        "loadavg": os.getloadavg(),
        "python": sys.version.split()[0],
        "platform": sys.platform,
    }


async def run_suite(plan: Plan, out_dir: Path) -> dict[str, Any]:
    """Run everything the plan asks for; returns the report's data."""
    pin_driver()
    result: dict[str, Any] = {"plan": plan.as_dict(), "machine_before": _machine(), "notes": []}
    began = time.monotonic()
    if "memory" in plan.parts:
        _say(f"memory probe: {plan.memory_orders:,} idle orders")
        result["memory"] = await memory_probe(plan.memory_orders)
    if "capacity" in plan.parts:
        _say("simulator capacity")
        result["simulator_capacity"] = await simulator_capacity(plan.capacity_seconds)
    pc_jars = None
    if "parallel" in plan.contenders and "actions" in plan.parts:
        try:
            pc_jars = await asyncio.to_thread(parallel_consumer.ensure_parallel_consumer)
        except (RuntimeError, OSError) as exc:
            result["notes"].append(f"Parallel Consumer skipped: {exc}")
    runs: list[dict[str, Any]] = []
    result["runs"] = runs
    async with open_kafka(BrokerSettings(c1_only=False)) as broker:
        java = str(broker.java.path)
        if "lifecycle" in plan.parts:
            await _lifecycle(
                plan, broker=broker, java=java, out_dir=out_dir, runs=runs, result=result
            )
        if "scaleout" in plan.parts and "ours" in plan.contenders:
            await _scale_out(plan, broker=broker, out_dir=out_dir, result=result)
        if "delivery" in plan.parts and "ours" in plan.contenders:
            result["delivery"] = await delivery(
                plan, broker=broker, java=java, out_dir=out_dir, sim_cpus=_sim_cpus(), runs=runs
            )
        if "actions" not in plan.parts:
            return _finish(result, began)
        await _action_only(
            plan,
            broker=broker,
            java=java,
            pc_jars=pc_jars,
            out_dir=out_dir,
            runs=runs,
            result=result,
        )
    return _finish(result, began)


def _finish(result: dict[str, Any], began: float) -> dict[str, Any]:
    result["machine_after"] = _machine()
    result["elapsed_s"] = round(time.monotonic() - began, 1)
    return result


async def _lifecycle(
    plan: Plan,
    *,
    broker: Any,  # noqa: ANN401
    java: str,
    out_dir: Path,
    runs: list[dict[str, Any]],
    result: dict[str, Any],
) -> None:
    settings = SimulatorSettings(
        job_delay=Delay.parse(plan.lifecycle_job_delay),
        rate_limit=plan.lifecycle_sim_rate_limit,
        seed=1,
    )
    async with open_engage_simulator_process(settings, cpus=_sim_cpus()) as sim:
        machinery = Machinery(broker=broker, sim=sim, out_dir=out_dir, java=java)
        events = lifecycle_workload(plan.lifecycle_orders, seed=1, tag="L")
        naive_events = lifecycle_workload(plan.naive_orders, seed=2, tag="N")
        result["lifecycle_floor"] = request_floor(events)
        common = {
            "workload": "lifecycle",
            "partitions": plan.partitions,
            "latency": plan.latency,
            "in_flight": plan.lifecycle_in_flight,
            "polls_in_flight": plan.lifecycle_polls_in_flight,
            "rate_budget": plan.lifecycle_rate_budget,
            "timeout": plan.run_timeout,
        }
        wanted = ["ours", *(["ours-httpx"] if plan.transport_comparison else [])]
        for contender in wanted:
            if contender.startswith("ours") and "ours" not in plan.contenders:
                continue
            _say(f"lifecycle: {contender}, {len(events)} events")
            spec = RunSpec(
                label=f"lifecycle-{contender}",
                contender=contender,
                events=events,
                audited=events,
                **common,  # type: ignore[arg-type]
            )
            runs.append(await run(spec, machinery))
        if "naive" in plan.contenders:
            _say(f"lifecycle: naive, {len(naive_events)} events")
            spec = RunSpec(
                label="lifecycle-naive",
                contender="naive",
                events=naive_events,
                audited=naive_events,
                naive_poll_interval=plan.naive_poll_interval,
                **common,  # type: ignore[arg-type]
            )
            runs.append(await run(spec, machinery))
    _say("broker raw consume rate (ConsumerPerformance)")
    records = plan.perf_messages or max(len(events), 2000)
    topic = "bench.perf"
    await broker.create_topics([topic], partitions=plan.partitions, exist_ok=True)
    filler = (events * (records // max(len(events), 1) + 1))[:records]
    await produce(broker.bootstrap_servers, topic, filler)
    result["broker_consume"] = await broker_consume_rate(broker, java, topic, records)


async def _scale_out(
    plan: Plan,
    *,
    broker: Any,  # noqa: ANN401
    out_dir: Path,
    result: dict[str, Any],
) -> None:
    settings = SimulatorSettings(
        job_delay=Delay.parse(plan.scaleout_job_delay),
        rate_limit=plan.scaleout_key_limit,
        seed=1,
    )
    async with open_engage_simulator_process(settings, cpus=_sim_cpus()) as sim:
        _say(
            f"scale-out: {plan.scaleout_replicas} replicas on a {plan.scaleout_budget:g}/s "
            f"budget, {plan.scaleout_orders} orders each"
        )
        result["scale_out"] = await scale_out(plan, broker=broker, sim=sim, out_dir=out_dir)


async def _action_only(
    plan: Plan,
    *,
    broker: Any,  # noqa: ANN401
    java: str,
    pc_jars: Path | None,
    out_dir: Path,
    runs: list[dict[str, Any]],
    result: dict[str, Any],
) -> None:
    settings = SimulatorSettings(
        job_delay=Delay.parse(plan.action_job_delay), rate_limit=None, seed=1
    )
    workload = action_workload(plan.action_keys, plan.actions, seed=3, tag="A")
    async with open_engage_simulator_process(settings, cpus=_sim_cpus()) as sim:
        machinery = Machinery(broker=broker, sim=sim, out_dir=out_dir, java=java, pc_jars=pc_jars)

        def spec_for(contender: str, in_flight: int, **extra: Any) -> RunSpec:  # noqa: ANN401
            return RunSpec(
                label=extra.pop("label", f"actions-{contender}-{in_flight}"),
                contender=contender,
                workload="action-only",
                events=extra.pop("events", workload.actions),
                audited=extra.pop("audited", workload.audited),
                precreated=extra.pop("precreated", workload.upserts),
                warmup=extra.pop("warmup", workload.warmup),
                partitions=plan.partitions,
                latency=plan.latency,
                in_flight=in_flight,
                timeout=plan.run_timeout,
                **extra,
            )

        sweep = [c for c in ("ours", "ours-httpx", "parallel", "faststream") if _wanted(plan, c)]
        if pc_jars is None and "parallel" in sweep:
            sweep.remove("parallel")
        for level in plan.in_flight_levels:
            for contender in sweep:
                _say(
                    f"action-only: {contender}, in-flight {level}, {len(workload.actions)} actions"
                )
                runs.append(await run(spec_for(contender, level), machinery))
        ours = [r for r in runs if r["contender"] == "ours" and r["workload"] == "action-only"]
        if plan.profile and ours:
            top = max(plan.in_flight_levels)
            profiles: dict[str, Any] = {}
            for contender in ("ours", *(["ours-httpx"] if plan.transport_comparison else [])):
                _say(f"profile: {contender} at in-flight {top} under py-spy")
                target = out_dir / f"profile-{contender}.txt"
                run_result = await run(
                    spec_for(contender, top, label=f"profile-{contender}", profile_to=target),
                    machinery,
                )
                profiles[contender] = {
                    **summarize_profile(target),
                    "events_per_s_under_profiler": run_result["events_per_s"],
                }
            result["profiles"] = profiles
        for contender in ("ours", "ours-httpx"):
            mine = [
                r for r in runs if r["contender"] == contender and r["label"].startswith("actions-")
            ]
            if mine and _wanted(plan, contender):
                await _paced(
                    plan, contender, machinery=machinery, sweep=mine, spec_for=spec_for, runs=runs
                )
    result["littles_bound_per_level"] = {
        level: littles_bound(level, plan.latency) for level in plan.in_flight_levels
    }
    result["mean_latency_s"] = mean_delay(plan.latency)


async def _paced(
    plan: Plan,
    contender: str,
    *,
    machinery: Machinery,
    sweep: list[dict[str, Any]],
    spec_for: Callable[..., RunSpec],
    runs: list[dict[str, Any]],
) -> None:
    """A consumer at half of its saturation (its best sweep run, same bound): the added latency."""
    best = max(sweep, key=lambda r: r["events_per_s"])
    saturation, in_flight = best["events_per_s"], best["params"]["in_flight"]
    rate = saturation / 2
    count = max(int(rate * plan.paced_seconds), 50)
    paced = action_workload(plan.action_keys, count, seed=4, tag="A")
    _say(
        f"paced: {contender} at {rate:.0f} actions/s (half of {saturation:.0f} at in-flight "
        f"{in_flight}), {count} actions"
    )
    # Paced at the in-flight bound where the saturation was measured: with httpx a larger
    # bound is slower, so half of the best rate could overload another bound.
    spec = spec_for(
        contender,
        in_flight,
        label=f"paced-{contender}",
        events=paced.actions,
        audited=paced.audited,
        precreated=paced.upserts,
        warmup=paced.warmup,
        produce_rate=rate,
    )
    paced_run = await run(spec, machinery)
    paced_run["saturation_events_per_s"] = saturation
    runs.append(paced_run)


def _wanted(plan: Plan, contender: str) -> bool:
    if contender == "ours-httpx":
        return plan.transport_comparison and "ours" in plan.contenders
    return contender in plan.contenders


def _sim_cpus() -> frozenset[int] | None:
    return SIMULATOR_CPUS if len(usable_cpus()) >= 2 else None
