"""The local Apache Kafka broker, exercised with aiokafka as the service will use it."""

from __future__ import annotations

import importlib
import pkgutil
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from consumer.sandbox.errors import SandboxError
from consumer.sandbox.kafka import (
    KAFKA_VERSION,
    BrokerSettings,
    KafkaBroker,
    ensure_kafka_jars,
    open_kafka,
)
from consumer.sandbox.kafka.cds import archive_path

if TYPE_CHECKING:
    from pathlib import Path

    from tests.fixtures.kafka import TopicFactory

pytestmark = pytest.mark.kafka

CLI = [sys.executable, "-m", "consumer.cli", "sandbox", "kafka"]

_SEEN_BROKERS: list[tuple[int, int | None]] = []


async def _consume(
    consumer: AIOKafkaConsumer, count: int, *, seconds: float = 20.0
) -> list[tuple[int, bytes]]:
    """Fetch until ``count`` records arrived (or fail after ``seconds``): (partition, value)."""
    got: list[tuple[int, bytes]] = []
    with anyio.fail_after(seconds):
        while len(got) < count:
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                got += [(tp.partition, record.value) for record in records]
    return got


async def _drain(consumer: AIOKafkaConsumer, *, seconds: float) -> list[bytes]:
    """Everything the consumer can fetch within ``seconds``."""
    got: list[bytes] = []
    with anyio.move_on_after(seconds):
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            got += [record.value for records in batches.values() for record in records]
    return got


@pytest.mark.parametrize("attempt", [1, 2])
async def test_session_fixture_starts_one_broker(kafka_broker: KafkaBroker, attempt: int) -> None:
    """Every test of the session gets the same running broker process on loopback."""
    _SEEN_BROKERS.append((id(kafka_broker), kafka_broker.pid))
    assert kafka_broker.running
    assert kafka_broker.bootstrap_servers == f"127.0.0.1:{kafka_broker.port}"
    assert kafka_broker.version == KAFKA_VERSION
    assert len(set(_SEEN_BROKERS)) == 1, (attempt, _SEEN_BROKERS)


async def test_new_topic_has_the_requested_partitions(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """new_topic creates a fresh, led topic with the partition count and config asked for."""
    name = await new_topic("orders", partitions=4, config={"cleanup.policy": "compact"})
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([name])
    finally:
        await admin.close()
    assert name.startswith("orders-test_new_topic_has_the_requested_partitions-")
    assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2, 3]
    assert name in await kafka_broker.list_topics()


async def test_creating_an_existing_topic_is_refused_unless_allowed(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """A second create names the topic and Kafka's reason; exist_ok=True accepts it."""
    name = await new_topic()
    with pytest.raises(SandboxError, match=f"{name}: TopicAlreadyExistsError"):
        await kafka_broker.create_topics([name])
    await kafka_broker.create_topics([name], exist_ok=True)


async def test_produce_consume_in_group_and_commit(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """Records produced to 3 partitions are consumed by a group; its commit survives the member."""
    topic = await new_topic(partitions=3)
    bootstrap = kafka_broker.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        for i in range(12):
            await producer.send(topic, f"v{i}".encode(), key=f"order-{i % 4}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    group = f"group-{topic}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        got = await _consume(consumer, 12)
        await consumer.commit()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = await consumer.end_offsets(partitions)
        committed = {tp.partition: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()
    assert sorted(value for _, value in got) == sorted(f"v{i}".encode() for i in range(12))
    # Keys pin records to partitions, and the commit covers exactly what was there.
    assert committed == {tp.partition: ends[tp] for tp in partitions}
    assert sum(committed.values()) == 12

    # A new member of the same group starts from the commit: nothing is read twice.
    again = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await again.start()
    try:
        assert await _drain(again, seconds=2.0) == []
    finally:
        await again.stop()


async def test_transactional_produce_hides_aborted_records_from_read_committed(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """read_committed sees committed transactions only; read_uncommitted also sees the abort."""
    topic = await new_topic(partitions=1)
    bootstrap = kafka_broker.bootstrap_servers
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"tx-{topic}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-2")
    finally:
        await producer.stop()

    seen: dict[str, list[bytes]] = {}
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"{isolation}-{topic}",
            isolation_level=isolation,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            seen[isolation] = [value for _, value in await _consume(consumer, 2)]
            seen[isolation] += await _drain(consumer, seconds=1.0)
        finally:
            await consumer.stop()
    assert seen == {
        "read_committed": [b"committed-1", b"committed-2"],
        "read_uncommitted": [b"committed-1", b"aborted", b"committed-2"],
    }


def _aiokafka_requests() -> list[Any]:
    """Every request builder aiokafka ships (aiokafka.protocol.api.Request subclasses)."""
    import aiokafka.protocol  # noqa: PLC0415
    from aiokafka.protocol.api import Request  # noqa: PLC0415

    for module in pkgutil.iter_modules(aiokafka.protocol.__path__):
        importlib.import_module(f"aiokafka.protocol.{module.name}")
    found: list[Any] = []
    pending: list[Any] = [Request]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.append(sub)
            pending.append(sub)
    return found


async def test_every_aiokafka_request_has_a_version_the_broker_accepts(
    kafka_broker: KafkaBroker,
) -> None:
    """KIP-896 (Kafka 4.0 dropped old protocol versions) leaves aiokafka a version of every API."""
    from aiokafka.conn import create_conn  # noqa: PLC0415
    from aiokafka.protocol.admin import ApiVersionRequest  # noqa: PLC0415

    conn = await create_conn("127.0.0.1", kafka_broker.port)
    try:
        response = await conn.send(ApiVersionRequest())
    finally:
        conn.close()
    accepted = {key: (low, high) for key, low, high in response.api_versions}
    unusable = []
    for request in _aiokafka_requests():
        ours = [struct.API_VERSION for struct in request._CLASSES]
        low, high = accepted.get(request.API_KEY, (1, 0))
        if not any(low <= version <= high for version in ours):
            unusable.append(f"{request.__name__} {ours} vs broker {low}..{high}")
    assert len(_aiokafka_requests()) > 20
    assert unusable == []


def test_second_resolution_reuses_the_cache_without_maven(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """With the jars cached, ensure_kafka_jars neither downloads nor needs Maven or Java."""
    cache_dir = kafka_broker.jars.directory.parent
    again = ensure_kafka_jars(
        kafka_broker.version, cache_dir=cache_dir, env={"PATH": str(tmp_path)}
    )
    assert (again.directory, again.downloaded) == (kafka_broker.jars.directory, False)
    assert (again.directory / f"kafka_2.13-{KAFKA_VERSION}.jar") in again.jars
    assert (again.directory / f"kafka-tools-{KAFKA_VERSION}.jar") in again.jars


async def test_kafka_tools_run_from_the_cached_jars(
    kafka_broker: KafkaBroker, new_topic: TopicFactory
) -> None:
    """ConsumerPerformance (for the benchmark) runs from the jar cache and reads every record."""
    topic = await new_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
    await producer.start()
    try:
        for i in range(50):
            await producer.send(topic, b"%d" % i)
        await producer.flush()
    finally:
        await producer.stop()
    command = kafka_broker.tool_command(
        "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server",
        kafka_broker.bootstrap_servers,
        "--topic",
        topic,
        "--num-records",
        "50",
        "--timeout",
        "30000",
    )
    with anyio.fail_after(120):
        done = await anyio.run_process(command, check=False)
    header, row = done.stdout.decode().strip().splitlines()[-2:]
    report = dict(zip(header.split(", "), row.split(", "), strict=True))
    assert (done.returncode, report["data.consumed.in.nMsg"]) == (0, "50"), done.stderr


async def test_restart_keeps_data_port_and_committed_offsets() -> None:
    """After restart() the same address serves the same topic, records and group offsets."""
    async with open_kafka() as broker:
        await broker.create_topics(["kept"], partitions=1)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        await producer.start()
        try:
            for value in (b"a", b"b", b"c"):
                await producer.send_and_wait("kept", value)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            "kept",
            bootstrap_servers=broker.bootstrap_servers,
            group_id="kept-group",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            await _consume(consumer, 3)
            await consumer.commit({TopicPartition("kept", 0): 2})
        finally:
            await consumer.stop()
        address, pid = broker.bootstrap_servers, broker.pid

        await broker.restart()

        assert (broker.bootstrap_servers, broker.running) == (address, True)
        assert broker.pid != pid
        # The clean stop left a class archive for every later start (recorded now, or before).
        assert archive_path(broker.jars, broker.java).stat().st_size > 0
        assert "kept" in await broker.list_topics()
        resumed = AIOKafkaConsumer(
            "kept",
            bootstrap_servers=broker.bootstrap_servers,
            group_id="kept-group",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await resumed.start()
        try:
            assert [value for _, value in await _consume(resumed, 1)] == [b"c"]
        finally:
            await resumed.stop()
    assert not broker.running


async def test_reopening_a_data_dir_keeps_topics_and_ports(tmp_path: Path) -> None:
    """A broker opened again on the same data_dir (a later process) finds its topics and ports."""
    data_dir = tmp_path / "kafka"
    async with open_kafka(data_dir=data_dir) as first:
        await first.create_topics(["survivor"], partitions=2)
        ports = dict(first.ports)
    async with open_kafka(data_dir=data_dir) as second:
        assert second.ports == ports
        assert "survivor" in await second.list_topics()
    assert (data_dir / "server.log").is_file()


async def test_a_failed_start_explains_itself_with_the_broker_log() -> None:
    """When the port is taken, the error carries Kafka's own reason from its log."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SandboxError) as failure:
            async with open_kafka(BrokerSettings(port=port)):
                pytest.fail("the broker started on a port that was taken")
    message = str(failure.value)
    assert message.startswith(f"Kafka {KAFKA_VERSION} on 127.0.0.1:{port}: did not start")
    assert "Address already in use" in message


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_cli_prints_the_address_and_stops_cleanly(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """`sandbox kafka` prints its bootstrap address; Ctrl-C or SIGTERM stops the broker, exit 0."""
    data_dir = tmp_path / "cli-kafka"
    with subprocess.Popen(
        [*CLI, "--data-dir", str(data_dir), "--partitions", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        ready = process.stdout.readline()
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=60)
    assert ready.startswith("kafka ready: bootstrap=127.0.0.1:"), (ready, err)
    assert f"version={KAFKA_VERSION} (started in " in ready
    assert (process.returncode, out.splitlines()[-1]) == (0, "kafka stopped"), err
    assert "num.partitions=2" in (data_dir / "server.properties").read_text()
    # The broker went with it: nothing listens on the printed port any more.
    port = int(ready.split("bootstrap=127.0.0.1:", 1)[1].split()[0])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
