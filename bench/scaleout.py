"""Scale-out under one API key: 1, 2 and 3 replicas sharing a fixed budget, and rebalances.

Engage's limit is per API key, and every replica uses the same key. Each run here starts N
``engage-consumer run`` processes in one group with ``ENGAGE_RATE_LIMIT`` set to the key's
budget (below the simulator's limit for the key) on the same lifecycle workload, and reports
what the simulator saw: actions/s and requests/s, the busiest second, 429s. When the budget
binds, a second replica adds no throughput (it splits the budget); the runs show it.

Two more runs measure what a rebalance costs in GETs, with the state topic (``STATE_TOPIC``,
the default) and without it (``STATE_TOPIC=``, the behaviour before it). Two replicas first
write every order and send an action after it (so each order's tag is known), then a third
replica joins, a second action per order goes; it leaves, a third action goes. One process that
owned every order would send those later actions with the tags it knows, without a GET: every
GET in those phases is what the two rebalances cost.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

from bench.metrics import stats_delta
from bench.procs import MeasuredProcess, wait_group_ready
from bench.workloads import OutcomeTail, lifecycle_workload, produce
from consumer.sandbox.audit import audit
from consumer.sandbox.workload import EventFactory

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from bench.plan import Plan
    from consumer.sandbox.engage import EngageSimulatorProcess
    from consumer.sandbox.kafka import KafkaBroker

GET_ROUTE = "GET /api/v3/orders/{orderId}"


def _environment(
    plan: Plan, *, broker: KafkaBroker, sim: EngageSimulatorProcess, tag: str, state: bool
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA_GROUP_ID": f"{tag}.group",
        "INPUT_TOPICS": f"{tag}.in",
        "RESULTS_TOPIC": f"{tag}.out",
        "DEAD_LETTER_TOPIC": f"{tag}.in.dlq",
        "STATE_TOPIC": f"{tag}.state" if state else "",
        "ENGAGE_BASE_URL": sim.base_url,
        "ENGAGE_API_KEY": sim.api_key,
        "ENGAGE_RATE_LIMIT": str(plan.scaleout_budget),
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        "HTTP_PORT": "0",
        "LOG_LEVEL": "INFO",
    }


async def _topics(plan: Plan, broker: KafkaBroker, tag: str) -> None:
    await broker.create_topics([f"{tag}.in"], partitions=plan.partitions)
    await broker.create_topics([f"{tag}.out", f"{tag}.in.dlq"], partitions=3)


def _members(env: dict[str, str], out_dir: Path, name: str) -> Callable[[int], MeasuredProcess]:
    argv = [sys.executable, "-m", "consumer.cli", "run"]
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def member(n: int) -> MeasuredProcess:
        return MeasuredProcess(argv, env=env, log_path=logs / f"{name}-m{n}.log")

    return member


async def _run(
    plan: Plan,
    *,
    broker: KafkaBroker,
    sim: EngageSimulatorProcess,
    out_dir: Path,
    label: str,
    replicas: int,
    seed: int,
) -> dict[str, Any]:
    """``replicas`` members on the lifecycle workload, under the group's budget."""
    tag = f"s{uuid.uuid4().hex[:6]}"
    await _topics(plan, broker, tag)
    await sim.reset()
    env = _environment(plan, broker=broker, sim=sim, tag=tag, state=True)
    member = _members(env, out_dir, f"{tag}-{label}")
    members = [member(n) for n in range(replicas)]
    events = lifecycle_workload(plan.scaleout_orders, seed=seed, tag=tag)
    try:
        await wait_group_ready(broker.bootstrap_servers, env["KAFKA_GROUP_ID"], members=replicas)
        async with OutcomeTail(broker.bootstrap_servers, env["RESULTS_TOPIC"]) as tail:
            before = await sim.stats()
            started = time.monotonic()
            await produce(broker.bootstrap_servers, env["INPUT_TOPICS"], events)
            alive = lambda: all(m.alive() for m in members)  # noqa: E731
            done = await tail.wait_for(len(events), within=plan.run_timeout, alive=alive)
            elapsed = time.monotonic() - started
            after = await sim.stats()
            outcomes = list(tail.outcomes)
        journal = await sim.journal()
        per_second = await sim.per_second()
    finally:
        for process in members:
            await process.stop()
    report = audit(events=events, journal=journal, outcomes=outcomes)
    counts = stats_delta(before, after)
    busy = [count for second, count, _ in per_second if second >= 2]
    return {
        "label": label,
        "replicas": replicas,
        "state_topic": True,
        "completed": done,
        "events": len(events),
        "seconds": round(elapsed, 1),
        "actions_per_s": round(counts["actions_accepted"] / elapsed, 1),
        "requests_per_s": round(counts["requests"] / elapsed, 1),
        "busiest_second": max(busy, default=0),
        "rate_limited": counts["rate_limited"],
        "gets": counts["requests_by_route"].get(GET_ROUTE, 0),
        "audit": {**report.summary(), "correct": report.correct},
    }


async def _rebalance_run(
    plan: Plan,
    *,
    broker: KafkaBroker,
    sim: EngageSimulatorProcess,
    out_dir: Path,
    state: bool,
) -> dict[str, Any]:
    """Two members, then three, then two: the GETs the later actions of known orders cost."""
    tag = f"r{uuid.uuid4().hex[:6]}"
    label = f"rebalance-{'state' if state else 'no-state'}"
    await _topics(plan, broker, tag)
    await sim.reset()
    env = _environment(plan, broker=broker, sim=sim, tag=tag, state=state)
    group, topic = env["KAFKA_GROUP_ID"], env["INPUT_TOPICS"]
    member = _members(env, out_dir, f"{tag}-{label}")
    members = [member(0), member(1)]
    factory = EventFactory(prefix=tag)
    orders = [f"{tag}-{n:04d}" for n in range(plan.scaleout_rebalance_orders)]
    first = [e for o in orders for e in (factory.upserted(o, 1), factory.action(o, "ConfirmOrder"))]
    phases = [first, *([factory.action(o, name) for o in orders] for name in ("A2", "A3"))]
    gets: list[int] = []
    outcomes: list[dict[str, Any]] = []
    done = True
    try:
        await wait_group_ready(broker.bootstrap_servers, group, members=2)
        async with OutcomeTail(broker.bootstrap_servers, env["RESULTS_TOPIC"]) as tail:
            expected = 0
            for n, events in enumerate(phases):
                if n == 1:
                    members.append(member(2))
                    await wait_group_ready(broker.bootstrap_servers, group, members=3)
                elif n == 2:
                    await members.pop().stop()
                    await wait_group_ready(broker.bootstrap_servers, group, members=2)
                before = await sim.stats()
                await produce(broker.bootstrap_servers, topic, events)
                expected += len(events)
                done &= await tail.wait_for(expected, within=plan.run_timeout)
                gets.append(
                    stats_delta(before, await sim.stats())["requests_by_route"].get(GET_ROUTE, 0)
                )
            outcomes = list(tail.outcomes)
        journal = await sim.journal()
    finally:
        for process in members:
            await process.stop()
    report = audit(events=[e for p in phases for e in p], journal=journal, outcomes=outcomes)
    return {
        "label": label,
        "replicas": 2,
        "visitor": True,
        "state_topic": state,
        "completed": done,
        "orders": len(orders),
        "gets_by_phase": gets,
        "gets_per_rebalance": round((gets[1] + gets[2]) / 2, 1),
        "audit": {**report.summary(), "correct": report.correct},
    }


async def scale_out(
    plan: Plan, *, broker: KafkaBroker, sim: EngageSimulatorProcess, out_dir: Path
) -> dict[str, Any]:
    """Every scale-out run of the plan, and the GETs per rebalance with and without state."""
    runs = [
        await _run(
            plan,
            broker=broker,
            sim=sim,
            out_dir=out_dir,
            label=f"scaleout-{n}",
            replicas=n,
            seed=5,
        )
        for n in plan.scaleout_replicas
    ]
    result: dict[str, Any] = {
        "budget": plan.scaleout_budget,
        "key_limit": plan.scaleout_key_limit,
        "runs": runs,
    }
    if not plan.scaleout_rebalance_orders:
        return result
    rebalances = [
        await _rebalance_run(plan, broker=broker, sim=sim, out_dir=out_dir, state=state)
        for state in (True, False)
    ]
    result["rebalances"] = rebalances
    return result
