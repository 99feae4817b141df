"""Helpers for end-to-end tests: produce events, run the consumer, read what it published.

Everything is real: the session's Kafka broker, the test's Engage simulator over HTTP, and the
consumer's own ``Service`` in the test's event loop (or ``engage-consumer run`` as a process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import orjson

from consumer.config import Secret, Settings
from consumer.sandbox.audit import AuditReport, audit
from consumer.sandbox.kafka import read_topic
from consumer.service import Service

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker
    from consumer.sandbox.workload import GeneratedEvent
    from tests.fixtures.kafka import TopicFactory

Record = tuple[bytes | None, bytes | None]


@dataclass(frozen=True, kw_only=True)
class Topics:
    """The topics of one test: inputs, results, dead letters."""

    inputs: tuple[str, ...]
    results: str
    dead_letter: str
    #: made by the consumer itself at start; by default named after the results topic
    state: str = ""


async def make_topics(new_topic: TopicFactory, *, inputs: int = 1, partitions: int = 4) -> Topics:
    """Fresh topics for one test."""
    names = [await new_topic(f"in{n}", partitions=partitions) for n in range(inputs)]
    return Topics(
        inputs=tuple(names),
        results=await new_topic("results", partitions=2),
        dead_letter=await new_topic("dlq", partitions=1),
    )


def consumer_settings(
    broker: KafkaBroker, sim: EngageSimulator, topics: Topics, **overrides: Any
) -> Settings:
    """Settings for a consumer in a test: fast deadlines and commits, its own group."""
    base = Settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_group_id=f"test-{uuid.uuid4().hex[:8]}",
        input_topics=topics.inputs,
        results_topic=topics.results,
        dead_letter_topic=topics.dead_letter,
        state_topic=topics.state or f"{topics.results}-state",
        engage_base_url=sim.base_url,
        engage_api_key=Secret(sim.api_key),
        engage_rate_limit=500.0,
        commit_interval_seconds=0.2,
        event_deadline_seconds=30.0,
        job_deadline_seconds=20.0,
        revision_wait_seconds=1.0,
        drain_timeout_seconds=10.0,
        kafka_session_timeout_ms=6_000,
        kafka_heartbeat_interval_ms=500,
        http_port=0,
    )
    return replace(base, **overrides)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes ``engage-consumer run`` use ``settings``."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "KAFKA_GROUP_ID": settings.kafka_group_id,
        "INPUT_TOPICS": ",".join(settings.input_topics),
        "RESULTS_TOPIC": settings.results_topic,
        "DEAD_LETTER_TOPIC": settings.dead_letter_topic,
        "STATE_TOPIC": settings.state_topic or "",
        "INPUT_PARTITIONS_MISMATCH": settings.input_partitions_mismatch,
        "ENGAGE_BASE_URL": settings.engage_base_url,
        "ENGAGE_API_KEY": settings.engage_api_key.reveal(),
        "ENGAGE_RATE_LIMIT": str(settings.engage_rate_limit),
        "COMMIT_INTERVAL_SECONDS": str(settings.commit_interval_seconds),
        "EVENT_DEADLINE_SECONDS": str(settings.event_deadline_seconds),
        "DRAIN_TIMEOUT_SECONDS": str(settings.drain_timeout_seconds),
        "REVISION_WAIT_SECONDS": str(settings.revision_wait_seconds),
        "HTTP_PORT": "0",
        "KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
        "KAFKA_HEARTBEAT_INTERVAL_MS": str(settings.kafka_heartbeat_interval_ms),
        "ENGAGE_MAX_IN_FLIGHT": str(settings.engage_max_in_flight),
        "MAX_BUFFERED_EVENTS": str(settings.max_buffered_events),
        "JOB_DEADLINE_SECONDS": str(settings.job_deadline_seconds),
        "ENGAGE_READ_TIMEOUT_SECONDS": str(settings.engage_read_timeout_seconds),
        "ENGAGE_ACTION_DELIVERY": settings.engage_action_delivery,
        **(
            {"KAFKA_GROUP_INSTANCE_ID": settings.kafka_group_instance_id}
            if settings.kafka_group_instance_id
            else {}
        ),
        **(
            {"KAFKA_TRANSACTIONAL_ID": settings.kafka_transactional_id}
            if settings.kafka_transactional_id
            else {}
        ),
        "LOG_LEVEL": "INFO",
    }


async def produce(broker: KafkaBroker, topic: str, records: Sequence[Record]) -> None:
    """Publish records in order (one partition per key keeps each order's order)."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in records]
        for future in futures:
            await future
    finally:
        await producer.stop()


def as_records(events: Sequence[GeneratedEvent]) -> list[Record]:
    """Generated events as (key, value) records."""
    return [(e.key, e.value) for e in events]


async def read_all(
    broker: KafkaBroker, topic: str, *, at_least: int, wait_seconds: float = 30.0
) -> list[Any]:
    """Read a topic from the start until ``at_least`` records arrived (or time ran out).

    Anything beyond the expected count (a duplicate) shows up within a short grace.
    """
    return await read_topic(
        broker.bootstrap_servers,
        topic,
        at_least=at_least,
        wait_seconds=wait_seconds,
        grace_seconds=0.3,
    )


async def read_outcomes(
    broker: KafkaBroker, topics: Topics, *, at_least: int, wait_seconds: float = 30.0
) -> list[dict[str, Any]]:
    """The outcome events on the results topic, decoded."""
    records = await read_all(broker, topics.results, at_least=at_least, wait_seconds=wait_seconds)
    return [orjson.loads(r.value) for r in records]


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Service]:
    """Run the consumer's ``Service`` in this event loop; drain and stop it on exit."""
    service = Service(settings)
    async with anyio.create_task_group() as tg:
        tg.start_soon(service.run)
        try:
            yield service
        finally:
            service.stopping.set()


async def wait_for(service: Service, *, finished: int, wait_seconds: float = 60.0) -> None:
    """Wait until ``finished`` records have acknowledged outcomes (fails the test otherwise)."""
    with anyio.move_on_after(wait_seconds):
        while service.count("finished") < finished:
            await anyio.sleep(0.05)
    got = service.count("finished")
    assert got >= finished, f"only {got} of {finished} records finished in {wait_seconds}s"


async def check(
    broker: KafkaBroker,
    sim: EngageSimulator,
    topics: Topics,
    events: Sequence[GeneratedEvent],
    *,
    extra_outcomes: int = 0,
) -> tuple[AuditReport, list[dict[str, Any]]]:
    """Audit a finished run: outcomes on the results topic against the simulator's journal."""
    outcomes = await read_outcomes(broker, topics, at_least=len(events) + extra_outcomes)
    report = audit(events=events, journal=await sim.journal(), outcomes=outcomes)
    return report, outcomes


def by_event(outcomes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Outcome data keyed by input event id (asserting there is exactly one per event)."""
    counts = Counter(o["data"]["eventId"] for o in outcomes)
    assert [k for k, n in counts.items() if n > 1] == []
    return {o["data"]["eventId"]: o["data"] for o in outcomes}


def journal_of(journal: list[dict[str, Any]], order_id: str, kind: str) -> list[dict[str, Any]]:
    """The simulator's journal entries of one kind (``action``, ``processed``, …) for an order."""
    return [e for e in journal if e["kind"] == kind and e["orderId"] == order_id]


class ConsumerProcess:
    """``engage-consumer run`` as a child process, with its log lines kept for assertions."""

    def __init__(self, env: dict[str, str], log_path: str, *, prefix: Sequence[str] = ()) -> None:
        """``prefix`` runs the command through another (``ip netns exec NAME``)."""
        self.log_path = log_path
        self._log = Path(log_path).open("ab")  # noqa: SIM115 - lives as long as the child
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "consumer.cli", "run"],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def signal(self, signum: signal.Signals) -> None:
        """Send a signal to the child."""
        self.proc.send_signal(signum)

    def peak_rss_mib(self) -> float:
        """The child's peak resident memory so far (VmHWM), in MiB; 0 once it has exited."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0.0
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    async def wait(self, wait_seconds: float = 60.0) -> int:
        """Wait for the child to exit and return its status (kill it if it hangs)."""
        with anyio.move_on_after(wait_seconds):
            while self.proc.poll() is None:
                await anyio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def close(self) -> None:
        """Kill the child if it still runs (for test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._log.closed:
            self._log.close()


async def actions_reach(sim: EngageSimulator, count: int, wait_seconds: float = 120) -> None:
    """Wait until the simulator has accepted ``count`` actions."""
    with anyio.fail_after(wait_seconds):
        while (await sim.stats())["actionsAccepted"] < count:
            await anyio.sleep(0.02)


async def drained(broker: KafkaBroker, group: str, topic: str, wait_seconds: float) -> None:
    """Wait until the group has committed every record of ``topic``."""
    with anyio.fail_after(wait_seconds):
        while await committed_lag(broker, group, topic):
            await anyio.sleep(0.5)


def assert_guarantees(report: AuditReport, outcomes: list[dict[str, Any]]) -> None:
    """Nothing lost, no wrong tag, nothing out of order, no action twice, nothing failed."""
    assert report.missing_outcomes == []
    assert report.wrong_tag == []
    assert report.out_of_order == []
    assert report.writes_out_of_order == []
    assert report.unexpected_actions == 0
    assert report.duplicate_actions == 0
    assert {o["data"]["status"] for o in outcomes} <= {"accepted", "skipped", "unknown"}


async def kill_after_actions(
    sim: EngageSimulator, env: dict[str, str], log_path: str, *, more: int
) -> int:
    """Run a consumer process and SIGKILL it once Engage accepted ``more`` further actions.

    Returns how many actions Engage had accepted when the process was gone.
    """
    target = (await sim.stats())["actionsAccepted"] + more
    process = ConsumerProcess(env, log_path)
    try:
        await actions_reach(sim, target)
        process.signal(signal.SIGKILL)
        await process.wait()
    finally:
        process.close()
    return int((await sim.stats())["actionsAccepted"])


async def run_until_committed(
    broker: KafkaBroker, settings: Settings, env: dict[str, str], log_path: str
) -> None:
    """Run a consumer process until its group committed every input record, then stop it.

    Asserts the SIGTERM drain exits 0.
    """
    process = ConsumerProcess(env, log_path)
    try:
        await drained(broker, settings.kafka_group_id, settings.input_topics[0], 600)
        process.signal(signal.SIGTERM)
        assert await process.wait() == 0
    finally:
        process.close()


async def committed_lag(broker: KafkaBroker, group: str, topic: str) -> int:
    """How many records of ``topic`` the group has not committed yet (all partitions)."""
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415
    from aiokafka.structs import TopicPartition  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        committed = await _group_offsets(admin, group, tps)
    finally:
        await admin.close()
    reader = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    await reader.start()
    try:
        # Assigned, so that stop() finds a subscription (aiokafka's group-less consumer
        # otherwise leaks a CancelledError from its reset task on stop).
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
    finally:
        await reader.stop()
    return sum(ends[tp] - max(0, committed[tp].offset if tp in committed else 0) for tp in tps)


async def _group_offsets(admin: Any, group: str, tps: list[Any]) -> dict[Any, Any]:
    """The group's committed offsets, waiting out a coordinator that is still being elected."""
    from aiokafka.errors import GroupCoordinatorNotAvailableError  # noqa: PLC0415

    for _ in range(50):
        try:
            result: dict[Any, Any] = await admin.list_consumer_group_offsets(group, partitions=tps)
        except GroupCoordinatorNotAvailableError:
            await anyio.sleep(0.2)
        else:
            return result
    raise AssertionError(f"no group coordinator for {group} after 10 s")
