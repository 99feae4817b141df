"""``engage-consumer demo``: the whole service end to end on this machine, in one command.

It starts the local Apache Kafka broker and the Engage simulator (jobs taking 0.1-2 s), publishes
a realistic stream — a few hundred orders through create → confirm → ship → deliver, some
cancelled, some custom actions, one order without a contact, a few invalid records — runs the
consumer with a progress bar, then prints the outcomes by operation and status, checks them and
the simulator's journal against the input (every event answered, every action with the tag of
its write, in order, once), and shows how to read the results topic.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

import anyio
import orjson

from consumer.commands._operator import Progress
from consumer.config import Secret, Settings
from consumer.logs import configure_logging
from consumer.sandbox.kafka import read_topic

if TYPE_CHECKING:
    import argparse

    from consumer.sandbox.audit import AuditReport
    from consumer.sandbox.workload import GeneratedEvent

INPUT_TOPIC = "orders"
RESULTS_TOPIC = "engage.order-outcomes"
DEAD_LETTER_TOPIC = "engage.order-events.dlq"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Demo options: size, partitions, job times, and whether to keep the sandbox up after."""
    parser.add_argument("--orders", type=int, default=300, help="orders to simulate (300)")
    parser.add_argument("--partitions", type=int, default=6, help="input partitions (6)")
    parser.add_argument(
        "--job-delay", default="uniform:0.1,2", help="simulator job time (uniform:0.1,2)"
    )
    parser.add_argument("--seed", type=int, default=1, help="workload seed (1)")
    parser.add_argument("--keep", action="store_true", help="keep the broker running until Ctrl-C")


def _invalid_records(order_prefix: str) -> list[tuple[bytes | None, bytes]]:
    """A few records that break the contract in the ways producers really do."""
    return [
        (b"BROKEN-1", b"{not json"),
        (f"{order_prefix}-BAD-2".encode(), orjson.dumps({"specversion": "1.0", "id": "bad-2"})),
        (
            b"SOMEONE-ELSE",
            orjson.dumps(
                {
                    "specversion": "1.0",
                    "id": "bad-3",
                    "source": "/demo",
                    "type": "order.action",
                    "subject": f"{order_prefix}-BAD-3",
                    "time": "2026-01-01T00:00:00Z",
                    "data": {"action": "ConfirmOrder"},
                }
            ),
        ),
        (None, b"\xff\xfe binary"),
    ]


async def _produce(bootstrap: str, records: list[tuple[bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=10)
    await producer.start()
    try:
        futures = [await producer.send(INPUT_TOPIC, key=k, value=v) for k, v in records]
        for future in futures:
            await future
    finally:
        await producer.stop()


def _print_summary(report: AuditReport, stream: TextIO) -> None:
    from consumer.sandbox.audit import group_statuses  # noqa: PLC0415

    table = group_statuses(report)
    statuses = sorted({s for row in table.values() for s in row})
    header = f"{'operation':<10}" + "".join(f"{s:>10}" for s in statuses) + f"{'total':>10}"
    stream.write("\n" + header + "\n" + "-" * len(header) + "\n")
    for operation, row in table.items():
        cells = "".join(f"{row.get(s, 0):>10}" for s in statuses)
        label = "(invalid)" if operation == "None" else operation
        stream.write(f"{label:<10}{cells}{sum(row.values()):>10}\n")
    stream.write("\n")


def _report(
    report: AuditReport,
    stream: TextIO,
    *,
    records: int,
    elapsed: float,
    dead: int,
    invalid: list[tuple[bytes | None, bytes]],
) -> bool:
    """Print the summary table and the checks; True when every check passed."""
    _print_summary(report, stream)
    summary = report.summary()
    stream.write(
        f"{records} records in {elapsed:.1f}s; {summary['outcomes']} outcomes, "
        f"{dead} dead-lettered, {summary['actions_accepted']} actions accepted by Engage\n"
    )
    checks = [
        ("every event has an outcome", not report.missing_outcomes),
        ("every action carried its write's versionTag", not report.wrong_tag),
        ("actions reached Engage in each order's stream order", not report.out_of_order),
        ("no action was sent twice", report.duplicate_actions == 0),
        ("invalid records were dead-lettered", dead == len(invalid)),
    ]
    stream.writelines(f"  {'ok ' if passed else 'FAIL'}  {label}\n" for label, passed in checks)
    return all(passed for _label, passed in checks)


async def run_demo(args: argparse.Namespace, stream: TextIO = sys.stdout) -> int:
    """The demo itself; returns 0 when the summary agrees with the journal."""
    from consumer.sandbox.audit import audit  # noqa: PLC0415
    from consumer.sandbox.engage import (  # noqa: PLC0415
        Delay,
        SimulatorSettings,
        open_engage_simulator,
    )
    from consumer.sandbox.kafka import open_kafka  # noqa: PLC0415
    from consumer.sandbox.workload import EventFactory, lifecycle_stream  # noqa: PLC0415
    from consumer.service import Service  # noqa: PLC0415

    say = stream.write
    say("starting the local Apache Kafka broker (the first run downloads its jars)…\n")
    started = time.monotonic()
    async with open_kafka() as broker:
        bootstrap = broker.bootstrap_servers
        say(f"kafka ready at {bootstrap} in {time.monotonic() - started:.1f}s\n")
        await broker.create_topics([INPUT_TOPIC], partitions=args.partitions)
        await broker.create_topics([RESULTS_TOPIC, DEAD_LETTER_TOPIC], partitions=3)
        sim_settings = SimulatorSettings(job_delay=Delay.parse(args.job_delay), seed=args.seed)
        async with open_engage_simulator(sim_settings) as sim:
            say(f"engage simulator at {sim.base_url} (jobs take {args.job_delay} s)\n")
            events: list[GeneratedEvent] = lifecycle_stream(args.orders, seed=args.seed)
            factory = EventFactory(prefix="nocontact")
            no_contact = [
                factory.upserted("ORD-NOCONTACT", 1, contact=False),
                factory.lifecycle("confirmed", "ORD-NOCONTACT", revision=1),
            ]
            events = events + no_contact
            records: list[tuple[bytes | None, bytes]] = [(e.key, e.value) for e in events]
            invalid = _invalid_records("ORD")
            records += invalid
            await _produce(bootstrap, records)
            # Invalid records whose orderId can be read get an `invalid` outcome too.
            expected = len(events) + 3
            say(
                f"published {len(events)} events of {args.orders + 1} orders "
                f"and {len(invalid)} invalid records to '{INPUT_TOPIC}'\n"
            )
            settings = Settings(
                kafka_bootstrap_servers=bootstrap,
                kafka_group_id="engage-consumer-demo",
                input_topics=(INPUT_TOPIC,),
                results_topic=RESULTS_TOPIC,
                dead_letter_topic=DEAD_LETTER_TOPIC,
                engage_base_url=sim.base_url,
                engage_api_key=Secret(sim.api_key),
                engage_rate_limit=150.0,
                engage_max_in_flight=64,
                revision_wait_seconds=2.0,
                event_deadline_seconds=120.0,
                http_port=0,
            )
            service = Service(settings)
            progress = Progress(expected, label="outcomes")
            t0 = time.monotonic()
            async with anyio.create_task_group() as tg:
                tg.start_soon(service.run)
                with anyio.move_on_after(300):
                    while service.count("finished") < len(records):
                        progress.show(service.count("outcomes"))
                        await anyio.sleep(0.1)
                progress.show(service.count("outcomes"), final=True)
                service.stopping.set()
            elapsed = time.monotonic() - t0
            outcomes = [
                orjson.loads(r.value)
                for r in await read_topic(bootstrap, RESULTS_TOPIC, at_least=expected)
                if r.value
            ]
            journal = await sim.journal()
            report = audit(events=events, journal=journal, outcomes=outcomes)
            dead = await read_topic(
                bootstrap, DEAD_LETTER_TOPIC, at_least=len(invalid), wait_seconds=10
            )
        ok = _report(
            report, stream, records=len(records), elapsed=elapsed, dead=len(dead), invalid=invalid
        )
        say(
            "\nread the results topic (while a broker runs, e.g. with --keep):\n"
            f"  engage-consumer results --bootstrap-servers {bootstrap} --topic {RESULTS_TOPIC}"
            "   # --follow, --status failed, --order ID, --json\n"
        )
        if args.keep:
            say("broker kept running; Ctrl-C to stop\n")
            await anyio.sleep_forever()
        return 0 if ok else 1


def run_from_args(args: argparse.Namespace) -> int:
    """Run the demo with quiet logs (warnings only) so the summary stays readable."""
    configure_logging(level="WARNING")
    try:
        return anyio.run(run_demo, args)
    except KeyboardInterrupt:
        return 130
