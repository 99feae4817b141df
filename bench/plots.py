"""PNG plots of a benchmark run (matplotlib, Agg backend), each titled with its parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt

from bench.bounds import littles_bound

if TYPE_CHECKING:
    from pathlib import Path

_NAMES = {
    "ours": "engage-consumer",
    "ours-httpx": "engage-consumer, ENGAGE_HTTP_TRANSPORT=httpx",
    "parallel": "Parallel Consumer (Java, KEY)",
    "faststream": "FastStream concurrent",
    "naive": "naive baseline",
}


def plot_throughput(data: dict[str, Any], out_dir: Path) -> Path | None:
    """Action-only throughput against the in-flight bound, with Little's bound."""
    plan = data["plan"]
    runs = [r for r in data["runs"] if r["label"].startswith("actions-")]
    if not runs:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    levels = sorted({r["params"]["in_flight"] for r in runs})
    ax.plot(
        levels,
        [littles_bound(level, plan["latency"]) for level in levels],
        "k--",
        label="Little's bound (in-flight / mean latency)",
    )
    for contender in ("ours", "ours-httpx", "parallel", "faststream"):
        mine = sorted(
            (r["params"]["in_flight"], r["actions_per_s"])
            for r in runs
            if r["contender"] == contender
        )
        if mine:
            ax.plot(*zip(*mine, strict=True), "o-", label=_NAMES[contender])
    ax.set_xlabel("in-flight bound (concurrent Engage requests)")
    ax.set_ylabel("actions accepted by Engage per second")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(levels, [str(level) for level in levels])
    ax.grid(visible=True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(
        f"action-only: {plan['actions']:,} actions over {plan['action_keys']:,} keys, "
        f"{plan['partitions']} partitions\nsimulator latency {plan['latency']}, "
        "contender on 1 core, simulator on the other",
        fontsize=9,
    )
    path = out_dir / "throughput_vs_in_flight.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_latency(data: dict[str, Any], out_dir: Path) -> Path | None:
    """Event → outcome latency percentiles per run, and what our consumer added."""
    runs = [r for r in data["runs"] if not r["label"].startswith("profile-")]
    if not runs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 1]})
    labels = [r["label"] for r in runs]
    xs = range(len(runs))
    width = 0.27
    for offset, q in enumerate(("p50", "p95", "p99")):
        values = [r["e2e_ms"][q] or 0 for r in runs]
        axes[0].bar([x + (offset - 1) * width for x in xs], values, width, label=q)
    axes[0].set_yscale("log")
    axes[0].set_xticks(list(xs), labels, rotation=60, ha="right", fontsize=7)
    axes[0].set_ylabel("event produced → outcome produced, ms (log)")
    axes[0].legend()
    axes[0].set_title(
        "end-to-end latency (Kafka timestamps); every run but paced-* is a backlog\n"
        "produced at once, so its latency is mostly queueing",
        fontsize=9,
    )
    paced = [r for r in runs if r["label"].startswith("paced-")]
    if paced:
        qs = ("p50", "p95", "p99")
        bars = [
            (f"{run['label']} {kind}", [run[key][q] or 0 for q in qs])
            for run in paced
            for kind, key in (("end to end", "e2e_ms"), ("consumer-added", "action_added_ms"))
        ]
        step = 0.8 / len(bars)
        for n, (name, values) in enumerate(bars):
            axes[1].bar([x - 0.4 + step * (n + 0.5) for x in range(3)], values, step, label=name)
        axes[1].axhline(10, color="red", linestyle=":", label="target 10 ms (added p99)")
        axes[1].set_xticks(range(3), qs)
        axes[1].set_yscale("log")
        axes[1].set_ylabel("ms (log)")
        axes[1].legend(fontsize=7)
        rates = "\n".join(
            f"{r['label']}: {r['params']['produce_rate']:,.0f}/s "
            f"(half of {r.get('saturation_events_per_s', 0):,.0f}), "
            f"in-flight {r['params']['in_flight']}"
            for r in paced
        )
        axes[1].set_title(
            f"paced at half of saturation, latency {paced[0]['params']['latency']}\n{rates}",
            fontsize=8,
        )
    else:
        axes[1].axis("off")
    path = out_dir / "latency_percentiles.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_delivery(data: dict[str, Any], out_dir: Path) -> Path | None:
    """Requests per action and actions/s under the budget, separate against embedded."""
    found = data.get("delivery")
    if not found:
        return None
    modes = [m for m, figures in found["modes"].items() if "backlog" in figures]
    backlog = [found["modes"][m]["backlog"] for m in modes]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.5))
    colors = ["tab:gray", "tab:green"]
    axes[0].bar(modes, [r["requests_per_action"] or 0 for r in backlog], color=colors)
    axes[0].axhline(2.5, color="red", linestyle=":", label="target 2.5 (embedded)")
    axes[0].set_ylabel("Engage requests per delivered action")
    axes[0].legend(fontsize=8)
    axes[1].bar(modes, [r["actions_per_s"] for r in backlog], color=colors)
    axes[1].set_ylabel("delivered actions per second")
    advised = found["summary"]["actions_per_s_at_advised_rate"]
    axes[2].bar(modes, [advised[m] or 0 for m in modes], color=colors)
    axes[2].set_ylabel("actions/s per API key at Engage's advised 50 req/s")
    for ax in axes:
        ax.grid(visible=True, axis="y", alpha=0.3)
    fig.suptitle(
        f"lifecycle workload, jobs {data['plan']['lifecycle_job_delay']}, one budget of "
        f"{data['plan']['delivery_budget']:g} requests/s binding both modes",
        fontsize=9,
    )
    path = out_dir / "delivery.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
