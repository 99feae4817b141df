"""Action delivery: ``separate`` against ``embedded`` on the lifecycle workload, one budget.

``separate`` sends an action on its own after its write's job is done and the write's tag read
(write, polls, GET, action); ``embedded`` (``ENGAGE_ACTION_DELIVERY=embedded``) sends it inside
the write it depends on, and polls the job only to learn both outcomes. Same workload, same
simulator (jobs 0.1-2 s), same rate budget, binding both: requests per delivered action and
delivered actions per second show what a merchant's key buys in each mode.

Then a paced run of each below the budget (half of separate's throughput, the same rate for
both) for the event -> action-accepted latency, which a backlog run would only show as queueing.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from bench.runs import Machinery, RunSpec, run
from bench.workloads import lifecycle_workload, request_floor
from consumer.sandbox.engage import Delay, SimulatorSettings, open_engage_simulator_process

if TYPE_CHECKING:
    from bench.plan import Plan

#: Engage's advised rate per API key: what the report translates the figures into.
ADVISED_PER_S = 50.0
#: Each mode's settings. ``embedded-prompt`` polls as ``separate`` does (paced run only): the
#: latency that first polling at twice the typical job time costs.
MODES: dict[str, dict[str, str]] = {
    "separate": {"ENGAGE_ACTION_DELIVERY": "separate"},
    "embedded": {"ENGAGE_ACTION_DELIVERY": "embedded"},
}
PACED_MODES: dict[str, dict[str, str]] = {
    **MODES,
    "embedded-prompt": {"ENGAGE_ACTION_DELIVERY": "embedded", "ENGAGE_OUTCOME_POLL_FACTOR": "1"},
}


def _say(text: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


async def delivery(
    plan: Plan,
    *,
    broker: Any,  # noqa: ANN401
    java: str,
    out_dir: Any,  # noqa: ANN401
    sim_cpus: frozenset[int] | None,
    runs: list[dict[str, Any]],
) -> dict[str, Any]:
    """Run both modes (backlog, then paced) and return the comparison (runs go to ``runs``)."""
    settings = SimulatorSettings(
        job_delay=Delay.parse(plan.lifecycle_job_delay),
        # Above the budget: the consumer's own budget is what binds, as at a real key.
        rate_limit=plan.delivery_budget * 1.2,
        seed=1,
    )
    events = lifecycle_workload(plan.delivery_orders, seed=7, tag="D")
    paced_events = (
        lifecycle_workload(plan.delivery_paced_orders, seed=8, tag="P")
        if plan.delivery_paced_orders
        else []
    )
    found: dict[str, Any] = {"floor": request_floor(events), "modes": {}}
    async with open_engage_simulator_process(settings, cpus=sim_cpus) as sim:
        machinery = Machinery(broker=broker, sim=sim, out_dir=out_dir, java=java)
        common: dict[str, Any] = {
            "workload": "lifecycle",
            "partitions": plan.partitions,
            "latency": plan.latency,
            "in_flight": plan.lifecycle_in_flight,
            "polls_in_flight": plan.lifecycle_polls_in_flight,
            "rate_budget": plan.delivery_budget,
            "timeout": plan.run_timeout,
        }
        for mode, env in MODES.items():
            _say(f"delivery: {mode}, {len(events)} events, budget {plan.delivery_budget:g}/s")
            backlog = await run(
                RunSpec(
                    label=f"delivery-{mode}",
                    contender="ours",
                    settings=env,
                    events=events,
                    audited=events,
                    **common,
                ),
                machinery,
            )
            runs.append(backlog)
            found["modes"][mode] = {"backlog": _figures(backlog)}
        separate = found["modes"]["separate"]["backlog"]
        rate = max(separate["events_per_s"] / 2, 1.0)
        found["paced_rate"] = rate
        for mode, env in PACED_MODES.items() if paced_events else ():
            _say(f"delivery: {mode} paced at {rate:.0f} events/s, {len(paced_events)} events")
            paced = await run(
                RunSpec(
                    label=f"delivery-paced-{mode}",
                    contender="ours",
                    settings=env,
                    events=paced_events,
                    audited=paced_events,
                    produce_rate=rate,
                    **common,
                ),
                machinery,
            )
            runs.append(paced)
            found["modes"].setdefault(mode, {})["paced"] = _figures(paced)
    found["summary"] = _summary(found)
    return found


def _figures(result: dict[str, Any]) -> dict[str, Any]:
    """What the comparison reads of one run."""
    latency = result.get("action_latency_ms") or {}
    return {
        "label": result["label"],
        "events_per_s": result["events_per_s"],
        "actions_per_s": result["actions_per_s"],
        "requests_per_s": result["requests_per_s"],
        "requests_per_action": result["requests_per_action"],
        "action_latency_p50_ms": latency.get("p50"),
        "action_latency_p95_ms": latency.get("p95"),
        "cpu_s_per_1000_events": result["cpu_s_per_1000_events"],
        "correct": result["audit"]["correct"] and result["completed"],
        "duplicate_actions": result["audit"]["duplicate_actions"],
        "embedded_actions": result["audit"].get("embedded_actions", 0),
    }


def _summary(found: dict[str, Any]) -> dict[str, Any]:
    separate = found["modes"]["separate"]["backlog"]
    embedded = found["modes"]["embedded"]["backlog"]
    speedup = (
        embedded["actions_per_s"] / separate["actions_per_s"] if separate["actions_per_s"] else None
    )
    return {
        "throughput_ratio": speedup,
        "requests_per_action": {
            "separate": separate["requests_per_action"],
            "embedded": embedded["requests_per_action"],
        },
        # At Engage's advised rate per key, every request spent the same way as here.
        "actions_per_s_at_advised_rate": {
            mode: (ADVISED_PER_S / figures["backlog"]["requests_per_action"])
            if figures["backlog"]["requests_per_action"]
            else None
            for mode, figures in found["modes"].items()
            if "backlog" in figures
        },
    }
