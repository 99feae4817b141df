"""``engage-consumer replay``: republish the events to do again, each once, in per-order order.

    engage-consumer replay --status failed --since 2h --dry-run
    engage-consumer replay --status failed --reason deadline,job_timeout
    engage-consumer replay --status unknown --include-unknown        # asks to confirm

It reads the results topic (every outcome names its input's topic, partition and offset) and,
for ``--status invalid``, the dead-letter topic; chooses events by the latest outcome of each
(``consumer.replay`` decides, and says why it leaves any out); fetches each original record
from its input topic by position (assign and seek: no consumer group, nothing committed); and
republishes it to its own topic and partition (or ``--to-topic``), with its key and headers
and an ``x-replay-of: topic/partition/offset`` header naming the original. The running
consumer then handles the copy as a new record, and its outcome carries the same outcome id.

Running it twice replays each event once: a position an earlier replay republished (a record
with its ``x-replay-of`` on the target topic) is left out, and so is an event with a later
``accepted`` outcome. An action whose outcome is ``unknown`` may have run in Engage: it goes
only with ``--include-unknown`` and a confirmation (a prompt, or ``--yes``). A write that a later
accepted write of its order supersedes is left out (``--include-superseded`` to send it): it
would put the older order back in Engage. Nothing is sent when anything is wrong with the
flags, the settings or the topics; a publish that fails part-way stops there and says what
went: the same command then sends the rest.

Exit status: 0 when everything planned was sent (or nothing was to be sent, or a dry run),
1 when the confirmation was refused or a publish failed, 2 for bad flags or settings, 130
after Ctrl-C.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TextIO

from consumer.commands._operator import (
    Progress,
    add_kafka_arguments,
    load_kafka_settings,
    moment_flag,
    run_async,
    statuses_flag,
    union,
    usage_error,
    words_flag,
)
from consumer.logs import get_logger
from consumer.replay import (
    Criteria,
    plan_replay,
    position_of,
    read_dead_letter,
    render_plan,
    render_summary,
    replayed_from,
    select_candidates,
)
from consumer.results import RecordPosition, decode_outcome

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterable

    from aiokafka import AIOKafkaProducer

    from consumer.kafka import KafkaConnection, TopicReader, TopicRecord
    from consumer.replay import DeadLetter, Plan, Replay, Selection
    from consumer.results import OutcomeRecord

log = get_logger("replay")

#: A copy is made after its original's outcome was read, so marks are looked for from the
#: earliest candidate's outcome time on, less this much for the clocks of other hosts.
_CLOCK_SLACK = timedelta(hours=1)
#: Records sent before their acknowledgements are awaited (the producer keeps their order).
_SEND_BATCH = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class ReplayOptions:
    """The command's flags, checked: what to read, what to choose, where to send."""

    results_topic: str
    dead_letter_topic: str
    criteria: Criteria
    to_topic: str | None = None
    dry_run: bool = False
    yes: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's flags."""
    parser.epilog = (
        "Kafka settings come from the environment as for `run` (KAFKA_*, RESULTS_TOPIC, "
        "DEAD_LETTER_TOPIC); no Engage setting is needed. Times are ISO 8601 (UTC unless an "
        "offset is given) or an age: 30m, 2h, 1d; they select by the outcome's time."
    )
    add_kafka_arguments(parser)
    parser.add_argument("--results-topic", help="default: RESULTS_TOPIC")
    parser.add_argument("--dead-letter-topic", help="default: DEAD_LETTER_TOPIC")
    chosen = parser.add_argument_group("what to replay (by each event's latest outcome)")
    chosen.add_argument(
        "--status",
        action="append",
        type=statuses_flag,
        metavar="STATUS[,STATUS]",
        help="outcome statuses to replay (default: failed; invalid also reads the dead-letter "
        "topic; repeatable)",
    )
    chosen.add_argument(
        "--reason",
        action="append",
        type=words_flag,
        metavar="REASON[,REASON]",
        help="only outcomes with these reasons, e.g. deadline,job_timeout,write_failed",
    )
    chosen.add_argument("--order", action="append", metavar="ORDER_ID", help="only this order")
    chosen.add_argument("--topic", help="only records of this input topic")
    chosen.add_argument("--partition", type=_natural, help="only this partition (with --topic)")
    chosen.add_argument("--from-offset", type=_natural, metavar="N", help="from offset N on")
    chosen.add_argument("--to-offset", type=_natural, metavar="N", help="up to offset N (incl.)")
    chosen.add_argument("--since", type=moment_flag, metavar="TIME", help="outcomes from TIME on")
    chosen.add_argument("--until", type=moment_flag, metavar="TIME", help="outcomes before TIME")
    chosen.add_argument(
        "--include-unknown",
        action="store_true",
        help="also actions whose outcome is unknown (Engage may have run them: asks to confirm)",
    )
    chosen.add_argument(
        "--include-superseded",
        action="store_true",
        help="also writes a later accepted write of the order supersedes (rolls Engage back)",
    )
    parser.add_argument("--to-topic", help="republish to this topic (default: each record's own)")
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would go and what not, send nothing"
    )
    parser.add_argument("--yes", action="store_true", help="confirm unknown actions unasked")


def _natural(text: str) -> int:
    import argparse  # noqa: PLC0415

    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a non-negative integer")
    return int(text)


def run_from_args(args: argparse.Namespace) -> int:
    """Check the flags, read the settings, plan, confirm, publish; returns the exit status."""
    from consumer.errors import ConfigError  # noqa: PLC0415
    from consumer.logs import configure_logging  # noqa: PLC0415

    problem = _flag_problem(args)
    if problem is not None:
        return usage_error("replay", problem)
    try:
        settings, connection = load_kafka_settings(
            command="replay",
            overrides={
                "KAFKA_BOOTSTRAP_SERVERS": args.bootstrap_servers,
                "RESULTS_TOPIC": args.results_topic,
                "DEAD_LETTER_TOPIC": args.dead_letter_topic,
            },
        )
    except ConfigError as exc:
        sys.stderr.write(f"engage-consumer replay: {exc}\n")
        return 2
    if args.to_topic in {settings.results_topic, settings.dead_letter_topic}:
        return usage_error("replay", "--to-topic must be an input topic, not an output topic")
    # JSON logs on stderr say what was republished (an audit trail); the listing is stdout's.
    configure_logging(level="INFO", secrets=settings.secrets())
    statuses = union(args.status)
    options = ReplayOptions(
        results_topic=settings.results_topic,
        dead_letter_topic=settings.dead_letter_topic,
        criteria=Criteria(
            statuses=frozenset({"failed"}) if statuses is None else statuses,
            reasons=union(args.reason),
            orders=frozenset(args.order) if args.order else None,
            topic=args.topic,
            partition=args.partition,
            from_offset=args.from_offset,
            to_offset=args.to_offset,
            since=args.since,
            until=args.until,
            include_unknown=args.include_unknown,
            include_superseded=args.include_superseded,
        ),
        to_topic=args.to_topic,
        dry_run=args.dry_run,
        yes=args.yes,
    )
    return run_async(
        "replay",
        lambda: run_replay(options, connection),
        interrupted="What Kafka acknowledged carries its mark: the same command sends the rest.",
    )


def _flag_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of flags (argparse checked each one alone)."""
    if args.partition is not None and args.topic is None:
        return "--partition needs --topic (partition numbers repeat across topics)"
    if (args.from_offset is not None or args.to_offset is not None) and args.partition is None:
        return "--from-offset and --to-offset need --topic and --partition"
    if None not in (args.from_offset, args.to_offset) and args.from_offset > args.to_offset:
        return "--from-offset must not be above --to-offset"
    if args.since is not None and args.until is not None and args.since >= args.until:
        return "--since must be before --until"
    return None


def ask_on_terminal(question: str) -> bool:
    """Ask on the terminal; False (refused) when standard input is not one."""
    if not sys.stdin.isatty():
        sys.stderr.write(f"{question}\nnot asked: standard input is not a terminal (--yes)\n")
        return False
    sys.stderr.write(f"{question} Type yes to go on: ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() == "yes"


async def run_replay(
    options: ReplayOptions,
    connection: KafkaConnection,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
    confirm: Callable[[str], bool] = ask_on_terminal,
) -> int:
    """Plan the replay, print it, and unless a dry run, confirm what needs it and publish."""
    from consumer.kafka import open_topic_reader  # noqa: PLC0415

    async with open_topic_reader(connection) as reader:
        plan = await make_plan(reader, options)
    out.write(render_plan(plan, dry_run=options.dry_run))
    if options.dry_run or not plan.replays:
        out.write(render_summary(plan, sent=None if options.dry_run else 0))
        return 0
    unknown = plan.unknown_actions
    if unknown and not options.yes:
        question = (
            f"{len(unknown)} of these actions have an unknown outcome: Engage may have run them "
            "already, and a replay would run them again (a second message to the customer)."
        )
        if not confirm(question):
            err.write("nothing sent: the unknown actions were not confirmed\n")
            return 1
    sent = await publish(plan.replays, connection, err)
    out.write(render_summary(plan, sent=sent))
    log.info(
        "replay published",
        sent=sent,
        planned=len(plan.replays),
        excluded=len(plan.excluded),
        unknownActions=len(unknown),
        topics=sorted({r.topic for r in plan.replays}),
    )
    return 0 if sent == len(plan.replays) else 1


async def make_plan(reader: TopicReader, options: ReplayOptions) -> Plan:
    """Read the outcomes (and dead letters), fetch the candidates' records, find the marks."""
    criteria = options.criteria
    outcomes = await _read_outcomes(reader, options.results_topic, criteria.orders)
    dead_letters: list[DeadLetter] = []
    if "invalid" in criteria.statuses:
        dead_letters = await _read_dead_letters(reader, options.dead_letter_topic)
    selection = select_candidates(outcomes, dead_letters, criteria)
    await _check_targets(reader, selection, options.to_topic)
    wanted = {c.position for c in selection.candidates} | selection.to_peek
    records, missing = await _fetch(reader, wanted)
    copies = await _copies(reader, selection, options.to_topic)
    return plan_replay(
        selection,
        records=records,
        missing=missing,
        copies=copies,
        criteria=criteria,
        to_topic=options.to_topic,
    )


async def _read_outcomes(
    reader: TopicReader, topic: str, orders: frozenset[str] | None
) -> list[OutcomeRecord]:
    """Every outcome of the results topic (of ``orders`` only, when given)."""
    outcomes: list[OutcomeRecord] = []
    async for record in reader.read(topic):
        # The key is the order id: other orders' records need not be decoded at all.
        if orders is not None and (record.key or b"").decode(errors="replace") not in orders:
            continue
        outcome = decode_outcome(record.value, at=position_of(record))
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


async def _read_dead_letters(reader: TopicReader, topic: str) -> list[DeadLetter]:
    """Every readable dead letter of the dead-letter topic."""
    letters: list[DeadLetter] = []
    async for record in reader.read(topic):
        letter = read_dead_letter(record)
        if letter is not None:
            letters.append(letter)
    return letters


async def _fetch(
    reader: TopicReader, positions: Iterable[RecordPosition]
) -> tuple[dict[RecordPosition, TopicRecord], dict[RecordPosition, str]]:
    """The records at ``positions``, and why each one missing is."""
    wanted: dict[tuple[str, int], list[int]] = {}
    for position in positions:
        wanted.setdefault(position.tp, []).append(position.offset)
    if not wanted:
        return {}, {}
    found, missing = await reader.fetch(wanted)

    def at(key: tuple[str, int, int]) -> RecordPosition:
        return RecordPosition(topic=key[0], partition=key[1], offset=key[2])

    return (
        {at(key): record for key, record in found.items()},
        {at(key): why for key, why in missing.items()},
    )


async def _check_targets(reader: TopicReader, selection: Selection, to_topic: str | None) -> None:
    """``--to-topic`` must exist and have each partition a copy goes to (ConfigError if not)."""
    from consumer.errors import ConfigError  # noqa: PLC0415

    if to_topic is None:
        return
    partitions = set(await reader.partitions(to_topic))
    lacking = sorted({c.position.partition for c in selection.candidates} - partitions)
    if lacking:
        raise ConfigError(
            [
                (
                    f"--to-topic {to_topic} has no partition {', '.join(map(str, lacking))}: a "
                    "copy goes to its original's partition number, so that each order stays on "
                    "one partition (and co-partitioned input topics stay so)"
                )
            ]
        )


async def _copies(
    reader: TopicReader, selection: Selection, to_topic: str | None
) -> dict[RecordPosition, RecordPosition]:
    """The copies earlier replays made on the target topics: original position → copy."""
    copies: dict[RecordPosition, RecordPosition] = {}
    if not selection.candidates:
        return copies
    earliest = min(c.time for c in selection.candidates) - _CLOCK_SLACK
    topics = {to_topic} if to_topic else {c.position.topic for c in selection.candidates}
    for topic in sorted(topics):
        async for record in reader.read(topic, since_ms=int(earliest.timestamp() * 1000)):
            of = replayed_from(record.headers)
            if of is not None:
                copies.setdefault(of, position_of(record))
    return copies


async def publish(replays: list[Replay], connection: KafkaConnection, err: TextIO) -> int:
    """Send the copies in order and return how many Kafka acknowledged.

    One idempotent producer keeps each partition's order through retries. A record Kafka
    refuses stops the run there: what follows it (maybe of the same order) is not sent, and
    the same replay run again sends it (what was acknowledged carries its mark by then).
    """
    from consumer.kafka import make_producer  # noqa: PLC0415

    progress = Progress(len(replays), err, label="republished")
    producer = make_producer(connection)
    await producer.start()
    sent = 0
    try:
        for start in range(0, len(replays), _SEND_BATCH):
            acknowledged, failure = await _send_batch(
                producer, replays[start : start + _SEND_BATCH], progress, sent
            )
            sent += acknowledged
            if failure is not None:
                replay, exc = failure
                err.write(
                    f"\nrepublishing {replay.candidate.position} failed: {exc!r}; {sent} of "
                    f"{len(replays)} sent. Run the same replay again to send the rest.\n"
                )
                log.error("replay failed", at=str(replay.candidate.position), error=repr(exc))
                return sent
    finally:
        progress.show(sent, final=True)
        await producer.stop()
    return sent


async def _send_batch(
    producer: AIOKafkaProducer, batch: list[Replay], progress: Progress, sent: int
) -> tuple[int, tuple[Replay, Exception] | None]:
    """Send one batch, await every acknowledgement; how many came, and the first failure."""
    pending = []
    failure: tuple[Replay, Exception] | None = None
    for replay in batch:
        try:
            future = await producer.send(
                replay.topic,
                key=replay.key,
                value=replay.value,
                headers=replay.headers,
                partition=replay.partition,
            )
        except Exception as exc:  # noqa: BLE001 - the boundary: say what went, then stop
            failure = (replay, exc)
            break
        pending.append((replay, future))
    acknowledged = 0
    for replay, future in pending:
        try:
            await future
        except Exception as exc:  # noqa: BLE001 - the same boundary
            failure = failure or (replay, exc)
            continue
        acknowledged += 1
        progress.show(sent + acknowledged)
        log.debug("republished", of=str(replay.candidate.position), to=replay.topic)
    return acknowledged, failure
