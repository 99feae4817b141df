"""``engage-consumer sandbox engage`` and ``python -m consumer.sandbox.engage``: the simulator."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TextIO

from consumer.sandbox.engage.settings import (
    DROP_WHEN,
    FAILURE_STATUS,
    OUTAGE_MODES,
    Delay,
    Faults,
    SimulatorSettings,
)
from consumer.sandbox.errors import SandboxError


def _say(line: str, stream: TextIO = sys.stdout) -> None:
    # Flushed at once: the child-process handle waits for the ready line on a pipe.
    stream.write(line + "\n")
    stream.flush()


def _delay(text: str) -> Delay:
    try:
        return Delay.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _describe(faults: Faults) -> str:
    changed = {
        key: value for key, value in faults.to_json().items() if value != Faults().to_json()[key]
    }
    return ", ".join(f"{key}={value}" for key, value in changed.items()) or "none"


def _optional_int(text: str) -> int | None:
    return None if text.strip().lower() in {"none", "off", ""} else int(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the flags of ``engage-consumer sandbox engage``."""
    d = SimulatorSettings()
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one (default)")
    parser.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"accepted apikey; repeat for several (default: {d.api_key})",
    )
    jobs = parser.add_argument_group("write jobs")
    jobs.add_argument(
        "--job-delay",
        type=_delay,
        default=d.job_delay,
        metavar="DIST",
        help="job duration: S, fixed:S, uniform:LOW,HIGH or exponential:MEAN[,CAP] "
        "(default: %(default)s)",
    )
    jobs.add_argument("--job-failure-rate", type=float, default=d.job_failure_rate, metavar="P")
    jobs.add_argument(
        "--job-failure-kinds",
        default=",".join(d.job_failure_kinds),
        metavar="K,K",
        help=f"failure kinds to draw from: {', '.join(FAILURE_STATUS)} (default: %(default)s)",
    )
    limits = parser.add_argument_group("rate limit")
    limits.add_argument(
        "--rate-limit",
        type=float,
        default=d.rate_limit,
        metavar="RPS",
        help="requests/s per key before 429; 0 = none (default: %(default)s)",
    )
    limits.add_argument("--rate-burst", type=int, default=None, metavar="N")
    limits.add_argument(
        "--retry-after",
        type=_optional_int,
        default=d.retry_after,
        metavar="S|none",
        help="Retry-After seconds on 429, or none to omit it (default: %(default)s)",
    )
    faults = parser.add_argument_group("faults (also settable at POST /_sim/faults)")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="P")
    faults.add_argument("--error-status", type=int, default=503, metavar="CODE")
    faults.add_argument("--latency", type=_delay, default=None, metavar="DIST")
    faults.add_argument("--drop-rate", type=float, default=0.0, metavar="P")
    faults.add_argument("--drop-when", choices=DROP_WHEN, default="before")
    faults.add_argument("--outage", type=float, default=0.0, metavar="SECONDS")
    faults.add_argument("--outage-mode", choices=OUTAGE_MODES, default="error")
    other = parser.add_argument_group("behaviour")
    other.add_argument("--strict-content-type", action="store_true")
    other.add_argument("--refuse-actions-while-writing", action="store_true")
    other.add_argument("--journal-limit", type=int, default=d.journal_limit, metavar="N")
    other.add_argument("--job-retention", type=int, default=d.job_retention, metavar="N")
    other.add_argument("--seed", type=int, default=None)
    other.add_argument(
        "--request-log",
        type=int,
        default=d.request_log,
        metavar="N",
        help="keep the last N requests with their client address, 0 = none (%(default)s)",
    )
    other.add_argument(
        "--embedded-action-field",
        default=d.embedded_action_field,
        metavar="NAME",
        help="order-body field of POST/PUT carrying an embedded order action "
        "(default: %(default)s)",
    )


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    """Build settings from parsed flags; raises ``ValueError`` naming a bad value."""
    faults = Faults(
        error_rate=args.error_rate,
        error_status=args.error_status,
        latency=args.latency,
        drop_rate=args.drop_rate,
        drop_when=args.drop_when,
        outage_seconds=args.outage,
        outage_mode=args.outage_mode,
    )
    kinds = tuple(kind.strip() for kind in args.job_failure_kinds.split(",") if kind.strip())
    return SimulatorSettings(
        api_keys=tuple(args.api_keys) if args.api_keys else SimulatorSettings().api_keys,
        job_delay=args.job_delay,
        job_failure_rate=args.job_failure_rate,
        job_failure_kinds=kinds,  # checked by SimulatorSettings
        rate_limit=args.rate_limit or None,
        rate_burst=args.rate_burst,
        retry_after=args.retry_after,
        faults=faults,
        strict_content_type=args.strict_content_type,
        refuse_actions_while_writing=args.refuse_actions_while_writing,
        journal_limit=args.journal_limit,
        job_retention=args.job_retention,
        seed=args.seed,
        request_log=args.request_log,
        embedded_action_field=args.embedded_action_field,
    )


async def _serve(settings: SimulatorSettings, host: str, port: int) -> None:
    from consumer.sandbox.engage.http import open_engage_simulator  # noqa: PLC0415 - heavy

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with open_engage_simulator(settings, host=host, port=port) as sim:
            rate = "none" if settings.rate_limit is None else f"{settings.rate_limit:g}/s"
            _say(
                f"engage simulator: job delay {settings.job_delay}, job failure rate "
                f"{settings.job_failure_rate:g}, rate limit {rate}, "
                f"faults: {_describe(settings.faults)}"
            )
            _say(f"engage simulator ready: base_url={sim.base_url} apikey={sim.api_key}")
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    _say("engage simulator stopped")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or SIGTERM; 0 on a clean stop, 2 on bad flags."""
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        _say(f"engage-consumer sandbox engage: {exc}", sys.stderr)
        return 2
    try:
        asyncio.run(_serve(settings, args.host, args.port))
    except SandboxError as exc:
        _say(f"engage-consumer sandbox engage: {exc}", sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run as ``python -m consumer.sandbox.engage`` (what the child-process handle does)."""
    parser = argparse.ArgumentParser(prog="python -m consumer.sandbox.engage")
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
