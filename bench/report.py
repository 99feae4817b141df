"""The report: targets with their measured ratios, a table of runs, plots, Markdown and JSON.

Everything here reads the dict ``bench.suite.run_suite`` returns; nothing is measured here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from bench.bounds import littles_bound

if TYPE_CHECKING:
    from pathlib import Path

_CPU_SATURATED = 0.9
#: The contender's core counts as saturated (by anyone) above this busy share.
_CORE_SATURATED = 0.95


def _fmt(value: Any, digits: int = 1) -> str:  # noqa: ANN401
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _runs(data: dict[str, Any], **match: Any) -> list[dict[str, Any]]:  # noqa: ANN401
    return [r for r in data.get("runs", []) if all(r.get(k) == v for k, v in match.items())]


def _one(data: dict[str, Any], label: str) -> dict[str, Any] | None:
    found = [r for r in data.get("runs", []) if r["label"] == label]
    return found[0] if found else None


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 6 with its measured figure, the ratio and whether it was met."""
    plan = data["plan"]
    out: list[dict[str, Any]] = []

    def add(
        name: str, measured: str, ratio: float | None, met: bool | None, note: str = ""
    ) -> None:
        out.append({"target": name, "measured": measured, "ratio": ratio, "met": met, "note": note})

    ours = _one(data, "lifecycle-ours")
    naive = _one(data, "lifecycle-naive")
    capacity = (data.get("simulator_capacity") or {}).get("capacity_per_cpu_s")
    if ours is not None:
        little = littles_bound(
            plan["lifecycle_in_flight"] + plan["lifecycle_polls_in_flight"], plan["latency"]
        )
        bounds = {"Little": little, "rate budget": plan["lifecycle_rate_budget"]}
        if capacity:
            bounds["simulator capacity"] = capacity
        binding = min(bounds, key=lambda k: bounds[k])
        ratio = ours["requests_per_s"] / bounds[binding]
        core = ours.get("contender_core_busy") or 0.0
        saturated = ours["cores_busy"] >= _CPU_SATURATED or core >= _CORE_SATURATED
        broker_rate = (data.get("broker_consume") or {}).get("records_per_s")
        note = (
            f"bound = {binding} {bounds[binding]:,.0f} req/s; consumer used "
            f"{ours['cores_busy']:.2f} cores, its core was {core:.0%} busy"
            + (" (CPU-saturated: the target's precondition does not hold)" if saturated else "")
            + (f"; broker raw consume {broker_rate:,.0f} records/s" if broker_rate else "")
        )
        add(
            "lifecycle throughput >= 0.9 x min(Little, budget, capacity)",
            f"{ours['requests_per_s']:,.0f} req/s ({ours['events_per_s']:,.0f} events/s)",
            ratio,
            None if saturated and ratio < 0.9 else ratio >= 0.9,
            note,
        )
    if ours is not None and naive is not None:
        ratio = ours["events_per_s"] / naive["events_per_s"] if naive["events_per_s"] else 0.0
        aio = _one(data, "lifecycle-ours-httpx")
        aio_note = (
            f"; ours-httpx {aio['events_per_s']:,.1f} events/s = "
            f"{aio['events_per_s'] / naive['events_per_s']:.1f}x"
            if aio and naive["events_per_s"]
            else ""
        )
        add(
            ">= 20x naive (12 partitions, 20 ms latency)",
            f"{ours['events_per_s']:,.1f} vs {naive['events_per_s']:,.2f} events/s",
            ratio,
            ratio >= 20,
            f"naive polls jobs every {plan['naive_poll_interval']} s{aio_note}",
        )
    if ours is not None:
        rpa = ours["requests_per_action"]
        naive_rpa = naive["requests_per_action"] if naive else None
        floor = data.get("lifecycle_floor") or {}
        aio = _one(data, "lifecycle-ours-httpx")
        add(
            "requests per delivered action <= 3.5 (lifecycle)",
            f"{_fmt(rpa, 2)} (naive {_fmt(naive_rpa, 2)}; ours-httpx "
            f"{_fmt(aio['requests_per_action'] if aio else None, 2)})",
            (3.5 / rpa) if rpa else None,
            rpa is not None and rpa <= 3.5,
            f"job times {plan['lifecycle_job_delay']}; floor of this workload for any correct "
            f"consumer {_fmt(floor.get('floor_per_action'), 2)} "
            f"({_fmt(floor.get('floor_per_action_coalesced'), 2)} if every burst coalesces): "
            "write + >=1 poll per write, a GET per write an action needs, 1 per action",
        )
    out.extend(_peer_targets(data))
    out.extend(_delivery_targets(data.get("delivery")))
    for label in ("paced-ours", "paced-ours-httpx"):
        paced = _one(data, label)
        if paced is None:
            continue
        p99 = paced["action_added_ms"]["p99"]
        add(
            f"consumer-added p99 <= 10 ms at half of saturation ({label})",
            f"p99 {_fmt(p99, 2)} ms at {paced['params']['produce_rate']:,.0f} actions/s",
            (10 / p99) if p99 else None,
            p99 is not None and p99 <= 10,
            f"added = totalMs - engageMs; runqueue wait {paced['runqueue_wait_share']:.0%} "
            f"of the window, core 0 busy {_fmt(paced['contender_core_busy'], 2)}",
        )
    memory = (data.get("memory") or {}).get("rss")
    if memory:
        per = memory["bytes_per_order"]
        traced = (data["memory"].get("tracemalloc") or {}).get("bytes_per_order")
        add(
            "<= 400 bytes per idle tracked order at 1M",
            f"{per:,.0f} B RSS/order at {memory['orders']:,} (tracemalloc {_fmt(traced, 0)} B)",
            400 / per if per else None,
            per <= 400,
        )
    runs = data.get("runs", [])
    bad = [r["label"] for r in runs if not (r["audit"]["correct"] and r["completed"])]
    dupes = sum(r["audit"]["duplicate_actions"] for r in runs)
    add(
        "zero correctness errors in every run",
        f"{len(runs) - len(bad)}/{len(runs)} runs correct, {dupes} duplicate actions",
        None,
        not bad,
        ("failed: " + ", ".join(bad)) if bad else "",
    )
    return out


def _delivery_targets(found: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Embedded delivery against separate: requests per action and throughput, one budget."""
    if not found:
        return []
    modes = found["modes"]
    separate, embedded = modes["separate"]["backlog"], modes["embedded"]["backlog"]
    rpa = embedded["requests_per_action"]
    ratio = found["summary"]["throughput_ratio"]
    return [
        {
            "target": "requests per delivered action <= 2.5 with ENGAGE_ACTION_DELIVERY=embedded",
            "measured": f"{_fmt(rpa, 2)} (separate {_fmt(separate['requests_per_action'], 2)})",
            "ratio": (2.5 / rpa) if rpa else None,
            "met": rpa is not None and rpa <= 2.5,
            "note": "same lifecycle workload, jobs and budget in both modes",
        },
        {
            "target": "delivered actions/s under a binding budget >= 1.8x separate (embedded)",
            "measured": f"{_fmt(embedded['actions_per_s'])} vs "
            f"{_fmt(separate['actions_per_s'])} actions/s",
            "ratio": (ratio / 1.8) if ratio else None,
            "met": ratio is not None and ratio >= 1.8,
            "note": f"ratio {_fmt(ratio, 2)}",
        },
    ]


def _delivery_lines(found: dict[str, Any], budget: float) -> list[str]:
    """The delivery section: both modes side by side, and what it means at 50 requests/s."""
    rows = [
        [
            "mode",
            "run",
            "actions/s",
            "requests/s",
            "requests/action",
            "action latency p50 / p95 ms",
            "CPU s/1k events",
            "embedded actions",
            "correct",
        ]
    ]
    for mode, figures in found["modes"].items():
        for kind in ("backlog", "paced"):
            run = figures.get(kind)
            if run is None:
                continue
            rows.append(
                [
                    mode,
                    kind,
                    _fmt(run["actions_per_s"]),
                    _fmt(run["requests_per_s"]),
                    _fmt(run["requests_per_action"], 2),
                    _fmt(run["action_latency_p50_ms"], 0)
                    + " / "
                    + _fmt(run["action_latency_p95_ms"], 0),
                    _fmt(run["cpu_s_per_1000_events"], 2),
                    str(run["embedded_actions"]),
                    "yes" if run["correct"] and not run["duplicate_actions"] else "NO",
                ]
            )
    summary = found["summary"]
    advised = summary["actions_per_s_at_advised_rate"]
    floor = found.get("floor") or {}
    return [
        "## Action delivery: separate against embedded",
        "",
        (
            f"Lifecycle workload ({floor.get('actions', '?')} actions, {floor.get('writes', '?')} "
            f"writes), ENGAGE_RATE_LIMIT={budget:g} binding both modes; the paced runs produce "
            f"at {_fmt(found.get('paced_rate'))} events/s (half of separate's throughput) for "
            "the latency, measured from when the consumer read the event to the action's "
            "outcome. Embedded first-polls a job nothing waits on at twice the typical job "
            "time (ENGAGE_OUTCOME_POLL_FACTOR=2): fewer polls, a later outcome; "
            "embedded-prompt (factor 1) polls as separate does, to show that trade-off."
        ),
        "",
        markdown_table(rows),
        "",
        (
            f"At Engage's advised 50 requests/s per API key, spent as here: "
            f"{_fmt(advised.get('separate'))} actions/s (separate) against "
            f"{_fmt(advised.get('embedded'))} actions/s (embedded) — customer messages a "
            "merchant gets out per second at peak. Throughput ratio under the budget: "
            f"{_fmt(summary['throughput_ratio'], 2)}x."
        ),
        "",
    ]


def _peer_targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    plan = data["plan"]
    out: list[dict[str, Any]] = []
    for level in plan["in_flight_levels"]:
        little = littles_bound(level, plan["latency"])
        ours = _runs(data, label=f"actions-ours-{level}")
        for peer, name in (("parallel", "Parallel Consumer"), ("faststream", "FastStream")):
            other = _runs(data, label=f"actions-{peer}-{level}")
            if not ours or not other:
                continue
            theirs = other[0]["actions_per_s"]
            ratio = ours[0]["actions_per_s"] / theirs if theirs else None
            required = peer == "faststream" or little <= 1000
            cpu = (
                f"CPU s/1000: ours {_fmt(ours[0]['cpu_s_per_1000_events'], 2)}, "
                f"{name} {_fmt(other[0]['cpu_s_per_1000_events'], 2)}"
            )
            cpu += _place_use(ours[0], level)
            aio = _runs(data, label=f"actions-ours-httpx-{level}")
            if aio and theirs:
                cpu += (
                    f"; ours-httpx {aio[0]['actions_per_s']:,.0f}/s = "
                    f"{aio[0]['actions_per_s'] / theirs:.2f}x, CPU s/1000 "
                    f"{_fmt(aio[0]['cpu_s_per_1000_events'], 2)}"
                )
            out.append(
                {
                    "target": f"action-only >= 1.0x {name} at in-flight {level} "
                    f"(Little {little:,.0f}/s)" + ("" if required else " — ratio reported only"),
                    "measured": f"{ours[0]['actions_per_s']:,.0f} vs "
                    f"{other[0]['actions_per_s']:,.0f} actions/s",
                    "ratio": ratio,
                    "met": (ratio is not None and ratio >= 1.0) if required else None,
                    "note": cpu,
                }
            )
    return out


def _place_use(run: dict[str, Any], level: int) -> str:
    """How busy our in-flight places were with Engage round trips: near 100 % means the bound
    is the round trip itself (simulator latency plus its own and the network's time), which
    no contender at the same concurrency can beat."""
    engage = (run.get("action_engage_ms") or {}).get("mean")
    if not engage or not run.get("actions_per_s"):
        return ""
    bound = level * 1000 / engage
    return (
        f"; ours kept its places {run['actions_per_s'] / bound:.0%} busy on round trips of "
        f"{engage:.1f} ms (bound {bound:,.0f}/s at that round trip)"
    )


_COLUMNS = (
    ("run", "label", None),
    ("events", "params.events", 0),
    ("events/s", "events_per_s", 1),
    ("actions/s", "actions_per_s", 1),
    ("req/s", "requests_per_s", 0),
    ("req/action", "requests_per_action", 2),
    ("e2e p50 ms", "e2e_ms.p50", 1),
    ("e2e p95 ms", "e2e_ms.p95", 1),
    ("e2e p99 ms", "e2e_ms.p99", 1),
    ("added p99 ms", "added_ms.p99", 1),
    ("CPU s/1k ev", "cpu_s_per_1000_events", 2),
    ("ev/CPU-s", "events_per_cpu_s", 0),
    ("cores", "cores_busy", 2),
    ("wait %", "runqueue_wait_pct", 0),
    ("core0 busy", "contender_core_busy", 2),
    ("peak RSS MB", "peak_rss_mb", 0),
    ("429s", "rate_limited", 0),
    ("correct", "correct", None),
)


def _cell(run: dict[str, Any], path: str) -> Any:  # noqa: ANN401
    if path == "peak_rss_mb":
        rss = run.get("peak_rss_bytes")
        return rss / 2**20 if rss else None
    if path == "events_per_cpu_s":
        per = run.get("cpu_s_per_1000_events")
        return 1000 / per if per else None
    if path == "runqueue_wait_pct":
        return 100 * run["runqueue_wait_share"]
    if path == "correct":
        return bool(run["audit"]["correct"] and run["completed"])
    value: Any = run
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def table_rows(data: dict[str, Any]) -> list[list[str]]:
    """The run table as text cells, header first."""
    rows = [[title for title, _path, _digits in _COLUMNS]]
    rows += [
        [_fmt(_cell(run, path), digits or 0) for _title, path, digits in _COLUMNS]
        for run in data.get("runs", [])
    ]
    return rows


def text_table(rows: list[list[str]]) -> str:
    """A fixed-width table for the terminal."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    """The same table in Markdown."""
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def targets_markdown(found: list[dict[str, Any]]) -> str:
    """The targets as a Markdown table."""
    lines = ["| target | measured | ratio | met | note |", "|---|---|---|---|---|"]
    for t in found:
        met = {True: "yes", False: "**no**", None: "n/a"}[t["met"]]
        lines.append(
            f"| {t['target']} | {t['measured']} | {_fmt(t['ratio'], 2)} | {met} | {t['note']} |"
        )
    return "\n".join(lines)


def _bounds_lines(data: dict[str, Any]) -> list[str]:
    plan = data["plan"]
    capacity = data.get("simulator_capacity") or {}
    broker = data.get("broker_consume") or {}
    littles = ", ".join(
        f"{k}: {v:,.0f}/s" for k, v in (data.get("littles_bound_per_level") or {}).items()
    )
    mean_ms = data.get("mean_latency_s", 0) * 1000
    return [
        (
            f"- Simulator latency {plan['latency']} (mean {mean_ms:.0f} ms); "
            f"Little's bound per in-flight level: {littles}"
        ),
        (
            f"- Rate budget on the lifecycle workload: {plan['lifecycle_rate_budget']:,.0f} "
            f"req/s (simulator limit {plan['lifecycle_sim_rate_limit']:,.0f}/s); action-only: "
            "unlimited."
        ),
        (
            f"- Simulator capacity: {_fmt(capacity.get('capacity_per_cpu_s'), 0)} requests per "
            f"simulator CPU-second ({capacity.get('client')}, achieved "
            f"{_fmt(capacity.get('achieved_per_s'), 0)} req/s)."
        ),
        (
            f"- Broker raw consume rate (ConsumerPerformance, {broker.get('records', '-')} "
            f"records): {_fmt(broker.get('records_per_s'), 0)} records/s."
        ),
    ]


def _clean(audited: dict[str, Any]) -> bool:
    return bool(audited["correct"]) and not audited["duplicate_actions"]


def _scale_out_lines(scale: dict[str, Any]) -> list[str]:
    """The scale-out section: replicas sharing one API key's budget, and rebalance GETs."""
    budget, limit = scale["budget"], scale["key_limit"]
    rows = [["replicas", "actions/s", "requests/s", "busiest second", "429s", "GETs", "correct"]]
    rows += [
        [
            str(run["replicas"]),
            _fmt(run["actions_per_s"]),
            _fmt(run["requests_per_s"]),
            str(run["busiest_second"]),
            str(run["rate_limited"]),
            str(run["gets"]),
            "yes" if _clean(run["audit"]) else "NO",
        ]
        for run in scale["runs"]
    ]
    lines = [
        "## Scale-out under one API key",
        "",
        (
            f"ENGAGE_RATE_LIMIT={budget:g} requests/s for the whole group (each member spends "
            f"its share), the simulator answering 429 above {limit:g}/s for the key. The budget "
            "binds: more replicas split it and add no throughput. One second may see the budget "
            "plus one process's burst (10 requests), as with one process."
        ),
        "",
        markdown_table(rows),
        "",
    ]
    rebalances = scale.get("rebalances") or []
    if rebalances:
        table = [
            [
                "state topic",
                "orders",
                "GETs: first phase",
                "after +1",
                "after -1",
                "GETs per rebalance",
                "correct",
            ]
        ]
        table += [
            [
                "yes" if run["state_topic"] else "no (STATE_TOPIC=)",
                str(run["orders"]),
                *(str(n) for n in run["gets_by_phase"]),
                _fmt(run["gets_per_rebalance"]),
                "yes" if _clean(run["audit"]) else "NO",
            ]
            for run in rebalances
        ]
        lines += [
            (
                "What a rebalance costs in GETs: two replicas write every order and act on it "
                "(its tag known), a third joins and a second action per order goes, it leaves "
                "and a third goes. One process would send the later actions without a GET."
            ),
            "",
            markdown_table(table),
            "",
        ]
    return lines


def write_report(data: dict[str, Any], out_dir: Path) -> Path:
    """Write report.json, report.md and the plots; returns the Markdown file's path."""
    from bench.plots import plot_delivery, plot_latency, plot_throughput  # noqa: PLC0415

    (out_dir / "report.json").write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    found = targets(data)
    data["targets"] = found
    figures = [
        plot_throughput(data, out_dir),
        plot_latency(data, out_dir),
        plot_delivery(data, out_dir),
    ]
    (out_dir / "report.json").write_bytes(
        orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    )
    plan, before, after = data["plan"], data["machine_before"], data["machine_after"]
    loads = [", ".join(f"{x:.2f}" for x in m["loadavg"]) for m in (before, after)]
    machine = (
        f"Machine: CPUs {before['cpus']}, Python {before['python']}; load average "
        f"{loads[0]} before and {loads[1]} after. Contenders were pinned to core 0, the Engage "
        "simulator (and this driver) to core 1; the Kafka broker was not pinned and shares both "
        "cores, as do other jobs on this machine, so figures are noisy."
    )
    parts = [
        f"# Benchmark report ({plan['name']})",
        "",
        machine,
        f"Run took {data['elapsed_s']:,.0f} s.",
        "",
        "## Targets",
        "",
        targets_markdown(found),
        "",
        "## Runs",
        "",
        markdown_table(table_rows(data)),
        "",
        "## Bounds measured in this run",
        "",
        *_bounds_lines(data),
        "",
        "## Figures",
        "",
        *[f"![{p.stem}]({p.name})" for p in figures if p is not None],
        "",
    ]
    if data.get("scale_out"):
        parts += _scale_out_lines(data["scale_out"])
    if data.get("delivery"):
        parts += _delivery_lines(data["delivery"], plan["delivery_budget"])
    if data.get("profiles"):
        parts += ["## Profiles (py-spy, action-only at the top in-flight level)", ""]
        for name, profile in data["profiles"].items():
            parts.append(f"### {name}: {profile.get('samples', 0)} samples")
            shares = profile.get("self_by_library") or {}
            parts.append(
                "Self time by library: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
            )
            inclusive = profile.get("inclusive") or {}
            parts.append("Inclusive: " + ", ".join(f"{k} {v:.0%}" for k, v in inclusive.items()))
            rate = _fmt(profile.get("events_per_s_under_profiler"), 0)
            parts.append(f"Throughput under the profiler: {rate} actions/s. Hottest frames:")
            parts += [f"- {share:.1%} `{frame}`" for frame, share in profile["top_leaf_frames"][:8]]
            parts.append("")
    if data.get("notes"):
        parts += ["## Notes", "", *[f"- {n}" for n in data["notes"]], ""]
    parts += [
        "## Parameters",
        "",
        "```json",
        orjson.dumps(plan, option=orjson.OPT_INDENT_2).decode(),
        "```",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(parts))
    return path
