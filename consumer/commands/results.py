"""``engage-consumer results``: what the consumer published about each event, read back.

Reads the results topic (``RESULTS_TOPIC``, or ``--topic``) from the start to its current end,
joining no consumer group, and prints a table of the outcomes by operation and status, then the
reasons of those not accepted::

    operation   accepted    failed   skipped   total
    upsert           812         3        40     855
    action           640         5         0     645

An event handled more than once (a restart, a replay) has several records of one outcome id;
the table counts the latest of each (``--all``: every record), so an event a replay brought
to ``accepted`` no longer counts as failed. ``--order``, ``--status``, ``--since`` and
``--until`` filter; ``--json`` prints the outcomes themselves, one JSON document per line;
``--follow`` prints each outcome as it arrives until Ctrl-C.

Exit status: 0 (also after Ctrl-C when following), 1 when Kafka cannot be read, 2 for bad
flags or settings.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

from consumer.commands._operator import (
    add_kafka_arguments,
    load_kafka_settings,
    moment_flag,
    run_async,
    statuses_flag,
    union,
    usage_error,
)
from consumer.replay import position_of
from consumer.results import (
    OutcomeFilter,
    decode_outcome,
    latest_outcomes,
    render_line,
    render_summary,
    summarize,
)

if TYPE_CHECKING:
    import argparse
    from datetime import datetime

    from consumer.kafka import KafkaConnection
    from consumer.outcomes import Status
    from consumer.results import OutcomeRecord

#: Outcome time and record timestamp come from two clocks (the consumer's, the broker's or the
#: producer's): ``--since`` starts reading this much earlier, then filters on the outcome time.
_CLOCK_SLACK = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True, slots=True)
class ResultsOptions:
    """What to read and how to show it (the flags, checked)."""

    topic: str
    orders: frozenset[str] | None = None
    statuses: frozenset[Status] | None = None
    since: datetime | None = None
    until: datetime | None = None
    every_record: bool = False
    as_json: bool = False
    follow: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's flags."""
    parser.epilog = (
        "Kafka settings come from the environment as for `run` (KAFKA_BOOTSTRAP_SERVERS, "
        "KAFKA_SECURITY_PROTOCOL, KAFKA_SASL_*, KAFKA_SSL_*, RESULTS_TOPIC); no Engage setting "
        "is needed. Times are ISO 8601 (UTC unless an offset is given) or an age: 30m, 2h, 1d."
    )
    add_kafka_arguments(parser)
    parser.add_argument("--topic", help="results topic to read (default: RESULTS_TOPIC)")
    parser.add_argument(
        "--order", action="append", metavar="ORDER_ID", help="only this order (repeatable)"
    )
    parser.add_argument(
        "--status",
        action="append",
        type=statuses_flag,
        metavar="STATUS[,STATUS]",
        help="only these statuses (accepted, rejected, failed, skipped, unknown, invalid; "
        "repeatable)",
    )
    parser.add_argument("--since", type=moment_flag, metavar="TIME", help="outcomes from TIME on")
    parser.add_argument("--until", type=moment_flag, metavar="TIME", help="outcomes before TIME")
    parser.add_argument(
        "--all",
        action="store_true",
        dest="every_record",
        help="count every record, not only the latest of each outcome id",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        dest="as_json",
        help="print the outcomes, one JSON document per line, instead of the table",
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="print each outcome as it arrives (from the start, or --since) until Ctrl-C",
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Check the flags, read the settings, read and print; returns the exit status."""
    from consumer.errors import ConfigError  # noqa: PLC0415
    from consumer.logs import configure_logging  # noqa: PLC0415

    if args.since is not None and args.until is not None and args.since >= args.until:
        return usage_error("results", "--since must be before --until")
    if args.follow and args.until is not None:
        return usage_error("results", "--follow reads on past any --until: give one of them")
    try:
        settings, connection = load_kafka_settings(
            command="results",
            overrides={
                "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap_servers,
                "RESULTS_TOPIC": args.topic,
            },
        )
    except ConfigError as exc:
        sys.stderr.write(f"engage-consumer results: {exc}\n")
        return 2
    configure_logging(level="WARNING", secrets=settings.secrets())
    options = ResultsOptions(
        topic=settings.results_topic,
        orders=frozenset(args.order) if args.order else None,
        statuses=union(args.status),
        since=args.since,
        until=args.until,
        every_record=args.every_record,
        as_json=args.as_json,
        follow=args.follow,
    )
    return run_async("results", lambda: _run_until_interrupted(options, connection))


async def _run_until_interrupted(options: ResultsOptions, connection: KafkaConnection) -> int:
    """Show the results; with ``--follow``, until SIGINT or SIGTERM (then exit 0)."""
    import signal  # noqa: PLC0415

    import anyio  # noqa: PLC0415

    if not options.follow:
        return await show_results(options, connection, sys.stdout)
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _signum in signals:
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(stop_on_signal)
        sys.stderr.write(f"following {options.topic} (Ctrl-C to stop)\n")
        await show_results(options, connection, sys.stdout)
    return 0


async def show_results(
    options: ResultsOptions, connection: KafkaConnection, out: TextIO, err: TextIO = sys.stderr
) -> int:
    """Read the results topic and print the table, the JSON lines, or (following) each line.

    Following never returns by itself: cancel it (the command does so on Ctrl-C).
    """
    from consumer.kafka import open_topic_reader  # noqa: PLC0415

    since_ms = None
    if options.since is not None:
        since_ms = int((options.since - _CLOCK_SLACK).timestamp() * 1000)
    window = OutcomeFilter(since=options.since, until=options.until)
    chosen = OutcomeFilter(orders=options.orders, statuses=options.statuses)
    records: list[OutcomeRecord] = []
    read = unreadable = 0
    async with open_topic_reader(connection) as reader:
        partitions = await reader.partitions(options.topic)
        async for record in reader.read(options.topic, since_ms=since_ms, follow=options.follow):
            read += 1
            outcome = decode_outcome(record.value, at=position_of(record), keep_raw=options.as_json)
            if outcome is None:
                unreadable += 1
                continue
            if not window.matches(outcome):
                continue
            if options.follow:
                if chosen.matches(outcome):
                    _print_one(outcome, out, as_json=options.as_json)
                continue
            records.append(outcome)
    if unreadable:
        err.write(f"{unreadable} of {read} records are not outcomes this reader understands\n")
    _print_all(records, options, chosen, out, heading=(len(partitions), read))
    return 0


def _print_one(outcome: OutcomeRecord, out: TextIO, *, as_json: bool) -> None:
    """One outcome as its JSON document or its line, flushed (a follow shows it at once)."""
    if as_json and outcome.raw is not None:
        out.write(outcome.raw.decode() + "\n")
    else:
        out.write(render_line(outcome) + "\n")
    out.flush()


def _print_all(
    records: list[OutcomeRecord],
    options: ResultsOptions,
    chosen: OutcomeFilter,
    out: TextIO,
    *,
    heading: tuple[int, int],
) -> None:

    latest = latest_outcomes(records)
    # Filters after deduplication: --status failed asks for events whose latest is failed.
    shown = [r for r in (records if options.every_record else latest) if chosen.matches(r)]
    if options.as_json:
        for record in sorted(shown, key=lambda r: (r.time, r.at)):
            _print_one(record, out, as_json=True)
        return
    partitions, read = heading
    if options.every_record:
        counted = "counting every record"
    else:
        counted = (
            f"counting the latest of each outcome id ({len(records) - len(latest)} earlier "
            "records of an id: restarts, replays; --all counts them)"
        )
    out.write(f"{options.topic}: {read} records in {partitions} partitions; {counted}\n")
    filters = _describe(options)
    if filters:
        out.write(f"only {filters}\n")
    out.write("\n" + render_summary(summarize(shown)))


def _describe(options: ResultsOptions) -> str:
    parts = []
    if options.orders:
        parts.append("orders " + ", ".join(sorted(options.orders)))
    if options.statuses:
        parts.append("status " + ", ".join(sorted(options.statuses)))
    if options.since:
        parts.append(f"from {options.since.isoformat()}")
    if options.until:
        parts.append(f"before {options.until.isoformat()}")
    return "; ".join(parts)
