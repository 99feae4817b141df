"""``python -m bench [--smoke] [options]``: run the benchmark, write the report, print the table.

Exit status 0 when every run completed and passed the audit (speed targets never fail the
command: they are reported), 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

from bench.plan import PRESETS, with_overrides
from bench.report import table_rows, targets_markdown, text_table, write_report
from bench.runs import CONTENDERS

RESULTS = Path(__file__).with_name("results")


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = set(names) - set(CONTENDERS)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown contenders: {', '.join(sorted(unknown))}")
    return names


def _parts(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = set(names) - {"memory", "capacity", "lifecycle", "actions", "scaleout", "delivery"}
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown parts: {', '.join(sorted(unknown))}")
    return names


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options; every size has a preset in bench/plan.py."""
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (well under a minute)")
    parser.add_argument("--out", type=Path, help="results folder (default bench/results/<time>)")
    parser.add_argument("--latency", help="simulator latency per request (fixed:0.02)")
    parser.add_argument("--orders", dest="lifecycle_orders", type=int, help="lifecycle orders")
    parser.add_argument("--naive-orders", type=int, help="orders for the naive baseline")
    parser.add_argument("--job-delay", dest="lifecycle_job_delay", help="lifecycle job time")
    parser.add_argument("--rate-budget", dest="lifecycle_rate_budget", type=float)
    parser.add_argument("--actions", type=int, help="action-only: actions")
    parser.add_argument("--keys", dest="action_keys", type=int, help="action-only: order keys")
    parser.add_argument(
        "--in-flight", dest="in_flight_levels", type=_levels, help="sweep, e.g. 8,16,20,40,100"
    )
    parser.add_argument("--memory-orders", type=int, help="idle orders for the memory probe")
    parser.add_argument(
        "--parts",
        type=_parts,
        help="subset of memory,capacity,lifecycle,actions,scaleout,delivery (default: all)",
    )
    parser.add_argument(
        "--lifecycle-in-flight", type=int, help="ENGAGE_MAX_IN_FLIGHT on the lifecycle workload"
    )
    parser.add_argument(
        "--polls-in-flight",
        dest="lifecycle_polls_in_flight",
        type=int,
        help="ENGAGE_MAX_POLLS_IN_FLIGHT on the lifecycle workload",
    )
    parser.add_argument(
        "--contenders",
        type=_names,
        help=f"subset of {','.join(c for c in CONTENDERS if c != 'ours-httpx')}",
    )
    parser.add_argument(
        "--no-transport-comparison",
        dest="transport_comparison",
        action="store_false",
        default=None,
        help="skip the runs of our consumer on the httpx transport",
    )
    parser.add_argument(
        "--no-profile", dest="profile", action="store_false", default=None, help="skip py-spy"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; see the module docstring for the exit status."""
    args = build_parser().parse_args(argv)
    from bench.suite import run_suite  # noqa: PLC0415 - heavy imports after argument errors

    # aiokafka logs retried produce errors on brand-new topics; they are not the benchmark's.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)

    base = PRESETS["smoke" if args.smoke else "full"]
    overrides = {k: v for k, v in vars(args).items() if k not in {"smoke", "out"}}
    plan = with_overrides(base, **overrides)
    out_dir = args.out or RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{plan.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = asyncio.run(run_suite(plan, out_dir))
    report = write_report(data, out_dir)
    sys.stdout.write(text_table(table_rows(data)) + "\n\n")
    sys.stdout.write(targets_markdown(data["targets"]) + "\n\n")
    sys.stdout.write(f"report: {report}\n")
    runs = data.get("runs", [])
    correct = all(r["audit"]["correct"] and r["completed"] for r in runs)
    return 0 if correct else 1
