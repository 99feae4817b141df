"""`engage-consumer results` against a real broker: the outcomes of real runs, read back.

The consumer runs in this event loop (``harness.running``) against the simulator over HTTP;
``show_results`` reads its results topic as the command does. The command line itself runs
as a child process: its settings, exit status and Ctrl-C.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import pytest

from consumer.commands.results import ResultsOptions, show_results
from consumer.kafka import KafkaConnection
from consumer.outcomes import outcome_problem
from consumer.sandbox.workload import lifecycle_stream
from tests.integration.harness import (
    as_records,
    consumer_settings,
    make_topics,
    produce,
    read_outcomes,
    running,
    wait_for,
)

if TYPE_CHECKING:
    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.kafka import TopicFactory
    from tests.integration.harness import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

BROKEN = [(b"ORD-BAD-1", b"{not json"), (b"ORD-BAD-2", orjson.dumps({"specversion": "1.0"}))]


async def results_of(broker: KafkaBroker, options: ResultsOptions) -> str:
    """What the command prints for ``options``."""
    out = io.StringIO()
    connection = KafkaConnection(bootstrap_servers=broker.bootstrap_servers)
    assert await show_results(options, connection, out, io.StringIO()) == 0
    return out.getvalue()


def table_counts(text: str) -> dict[str, dict[str, int]]:
    """The printed table read back as {operation: {status: count}} (zeros left out)."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("operation"))
    statuses = lines[start].split()[1:-1]
    counts: dict[str, dict[str, int]] = {}
    for line in lines[start + 2 :]:
        if line.startswith("total") or not line.strip():
            break
        operation, *cells = line.split()
        counts[operation] = {
            s: int(n) for s, n in zip(statuses, cells[:-1], strict=True) if n != "0"
        }
    return counts


def counted(outcomes: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """The same counts, straight from the outcome documents."""
    pairs = Counter((o["data"]["operation"] or "(invalid)", o["data"]["status"]) for o in outcomes)
    table: dict[str, dict[str, int]] = {}
    for (operation, status), n in pairs.items():
        table.setdefault(operation, {})[status] = n
    return table


async def finished_run(
    broker: KafkaBroker, sim: EngageSimulator, new_topic: TopicFactory
) -> tuple[Topics, list[dict[str, Any]]]:
    """A small lifecycle stream and two broken records through the consumer, to the end."""
    topics = await make_topics(new_topic, partitions=2)
    events = lifecycle_stream(12, seed=5)
    await produce(broker, topics.inputs[0], [*as_records(events), *BROKEN])
    async with running(consumer_settings(broker, sim, topics)) as service:
        await wait_for(service, finished=len(events) + len(BROKEN))
    outcomes = await read_outcomes(broker, topics, at_least=len(events) + 1)
    return topics, outcomes


async def test_the_table_json_lines_and_filters_show_what_the_consumer_published(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """The table counts every outcome by operation and status; filters and JSON agree."""
    topics, outcomes = await finished_run(kafka_broker, engage_sim, new_topic)
    table = await results_of(kafka_broker, ResultsOptions(topic=topics.results))
    assert table.splitlines()[0] == (
        f"{topics.results}: {len(outcomes)} records in 2 partitions; counting the latest of "
        "each outcome id (0 earlier records of an id: restarts, replays; --all counts them)"
    )
    assert table_counts(table) == counted(outcomes)
    assert "  invalid   (invalid)  schema" in table  # the reasons of what was not accepted

    lines = await results_of(kafka_broker, ResultsOptions(topic=topics.results, as_json=True))
    printed = [orjson.loads(line) for line in lines.splitlines()]
    assert sorted(o["id"] for o in printed) == sorted(o["id"] for o in outcomes)
    assert [problem for o in printed if (problem := outcome_problem(o))] == []

    order = outcomes[0]["data"]["orderId"]
    mine = ResultsOptions(topic=topics.results, orders=frozenset({order}), as_json=True)
    printed = [orjson.loads(line) for line in (await results_of(kafka_broker, mine)).splitlines()]
    assert sorted(o["id"] for o in printed) == sorted(
        o["id"] for o in outcomes if o["data"]["orderId"] == order
    )

    skipped = ResultsOptions(topic=topics.results, statuses=frozenset({"skipped", "invalid"}))
    assert table_counts(await results_of(kafka_broker, skipped)) == counted(
        [o for o in outcomes if o["data"]["status"] in {"skipped", "invalid"}]
    )


async def test_follow_prints_each_outcome_as_it_arrives(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """Following from before the run: one line per outcome as the consumer publishes it."""
    topics = await make_topics(new_topic, partitions=2)
    events = lifecycle_stream(6, seed=8)
    out = io.StringIO()
    connection = KafkaConnection(bootstrap_servers=kafka_broker.bootstrap_servers)
    options = ResultsOptions(topic=topics.results, follow=True)
    settings = consumer_settings(kafka_broker, engage_sim, topics)
    async with running(settings) as service, anyio.create_task_group() as tg:
        tg.start_soon(show_results, options, connection, out, io.StringIO())
        await produce(kafka_broker, topics.inputs[0], as_records(events))
        await wait_for(service, finished=len(events))
        with anyio.fail_after(20):
            while out.getvalue().count("\n") < len(events):
                await anyio.sleep(0.05)
        tg.cancel_scope.cancel()
    lines = out.getvalue().splitlines()
    outcomes = await read_outcomes(kafka_broker, topics, at_least=len(events))
    assert sorted(line.split()[4] for line in lines) == sorted(
        o["data"]["eventId"] for o in outcomes
    )
    assert {line.split()[1] for line in lines} == {o["data"]["status"] for o in outcomes}


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "consumer.cli", "results", *args]


def _environment(broker: KafkaBroker, topics: Topics) -> dict[str, str]:
    """The consumer's own variables for Kafka, and none for Engage: results needs none."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ENGAGE_"))}
    return env | {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "RESULTS_TOPIC": topics.results,
    }


async def test_the_command_reads_the_environment_and_ctrl_c_ends_a_follow_with_0(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """As a process: the table from KAFKA_* and RESULTS_TOPIC; ``--follow`` until SIGINT."""
    topics, outcomes = await finished_run(kafka_broker, engage_sim, new_topic)
    env = _environment(kafka_broker, topics)
    done = await anyio.run_process(_command("--status", "accepted"), env=env, check=False)
    assert (done.returncode, done.stderr.decode()) == (0, "")
    assert table_counts(done.stdout.decode()) == counted(
        [o for o in outcomes if o["data"]["status"] == "accepted"]
    )

    async with await anyio.open_process(
        _command("--follow", "--json"), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        received = b""
        with anyio.fail_after(30):
            while received.count(b"\n") < len(outcomes):
                received += await process.stdout.receive()
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(15):
            status = await process.wait()
    assert status == 0
    assert sorted(orjson.loads(line)["id"] for line in received.splitlines()) == sorted(
        o["id"] for o in outcomes
    )


async def test_a_missing_topic_is_a_setting_to_fix(kafka_broker: KafkaBroker) -> None:
    """A results topic the cluster does not have: exit status 2, and which topic."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ENGAGE_"))}
    done = await anyio.run_process(
        _command("--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", "no-such"),
        env=env,
        check=False,
    )
    assert done.returncode == 2
    assert f"topic 'no-such' does not exist on {kafka_broker.bootstrap_servers}" in (
        done.stderr.decode()
    )
