"""A real Apache Kafka broker on loopback for tests, the demo and the benchmark.

``open_kafka()`` resolves the broker's jars from Maven Central once (cached in
``~/.cache/engage-consumer/kafka-<version>/``), formats KRaft storage in a temporary directory,
starts one combined broker+controller JVM on free 127.0.0.1 ports and yields a ``KafkaBroker``::

    async with open_kafka() as broker:
        await broker.create_topics(["orders"], partitions=3)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        ...
        await broker.restart()  # same data directory, same ports

``engage-consumer sandbox kafka`` runs the same broker until Ctrl-C or SIGTERM.

Version: Kafka 4.4.0, the newest 4.x on Maven Central when written. Kafka 4.0 dropped the
protocol versions older than Kafka 2.1 spoke (KIP-896); aiokafka 0.14 negotiates per request with
the broker's ApiVersions, and tests/integration/test_kafka_sandbox.py checks that every request
aiokafka knows has a version 4.4.0 still accepts, then runs produce, consume in a group, commit
and a transactional produce (read_committed sees commits, not aborts) against it.

Measured here (2 cores, JDK 17, jars cached): start to first answered metadata request WARM_TIME;
the first run adds the download, COLD_TIME with a fresh ~/.m2.
"""

from __future__ import annotations

import shutil
import signal
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio
import anyio.to_thread

from consumer.errors import SandboxError
from consumer.sandbox.kafka_broker import KafkaBroker
from consumer.sandbox.kafka_config import BrokerSettings, ExtraListener
from consumer.sandbox.kafka_jars import KAFKA_VERSION, ResolvedJars, cache_root, ensure_kafka_jars
from consumer.sandbox.kafka_tools import find_java

if TYPE_CHECKING:
    import argparse
    from collections.abc import AsyncIterator

    from anyio.abc import TaskStatus

__all__ = [
    "KAFKA_VERSION",
    "BrokerSettings",
    "ExtraListener",
    "KafkaBroker",
    "ResolvedJars",
    "add_arguments",
    "cache_root",
    "ensure_kafka_jars",
    "open_kafka",
    "run_from_args",
]


@asynccontextmanager
async def open_kafka(
    settings: BrokerSettings | None = None, *, data_dir: Path | None = None
) -> AsyncIterator[KafkaBroker]:
    """Start a local broker, yield it ready for clients, and stop it on exit.

    Args:
        settings: ports, version, heap, extra listeners and config; defaults suit tests.
        data_dir: keep the broker's data here (and reuse it if it is already formatted);
            by default a temporary directory that is deleted on exit.

    Raises:
        MissingToolError: Java 17+ is missing, or Maven is missing and the jars are not cached.
        SandboxError: the jars could not be resolved, or the broker did not start.
    """
    settings = settings or BrokerSettings()
    # Java first: with cached jars a missing Java would otherwise only show as a failed start.
    java = await anyio.to_thread.run_sync(partial(find_java, settings.java, env=settings.env))
    jars = await anyio.to_thread.run_sync(
        partial(
            ensure_kafka_jars,
            settings.version,
            cache_dir=settings.cache_dir,
            java=java.path,
            maven=settings.maven,
            env=settings.env,
        )
    )
    owned = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="engage-kafka-")) if data_dir is None else data_dir
    try:
        broker = KafkaBroker(settings=settings, jars=jars, java=java, data_dir=directory)
        try:
            await broker.start()
            yield broker
        finally:
            await broker.stop()
    finally:
        if owned:
            shutil.rmtree(directory, ignore_errors=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``engage-consumer sandbox kafka``."""
    parser.add_argument(
        "--port", type=int, default=0, help="PLAINTEXT port on 127.0.0.1 (default: a free one)"
    )
    parser.add_argument(
        "--kafka-version",
        "--version",
        dest="kafka_version",
        default=KAFKA_VERSION,
        help=f"Apache Kafka 4.x version from Maven Central (default: {KAFKA_VERSION})",
    )
    parser.add_argument(
        "--partitions", type=int, default=3, help="partitions of a topic created without a count"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the broker's data here and reuse it next time (default: a temporary directory)",
    )
    parser.add_argument("--java", default=None, help="java 17+ to run (default: JAVA_HOME, PATH)")
    parser.add_argument("--maven", default=None, help="mvn to download with (default: PATH)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run the broker until Ctrl-C or SIGTERM; 0 after a clean stop, 1 if it failed or died."""
    settings = BrokerSettings(
        version=args.kafka_version,
        port=args.port,
        partitions=args.partitions,
        java=args.java,
        maven=args.maven,
    )
    try:
        return anyio.run(_serve, settings, args.data_dir, backend="asyncio")
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130


async def _serve(settings: BrokerSettings, data_dir: Path | None) -> int:
    status = 0
    async with anyio.create_task_group() as group:
        # Signals are caught before the broker starts, so Ctrl-C during start-up also stops it.
        await group.start(_cancel_on_signal, group.cancel_scope)
        began = time.monotonic()
        try:
            async with open_kafka(settings, data_dir=data_dir) as broker:
                _say(
                    f"kafka ready: bootstrap={broker.bootstrap_servers} version={broker.version} "
                    f"(started in {time.monotonic() - began:.1f}s)\n"
                    f"  data: {broker.data_dir}\n"
                    f"  log:  {broker.server_log}\n"
                    f"  jars: {broker.jars.directory}\n"
                    "  Ctrl-C stops it"
                )
                exit_status = await broker.wait()
                report = broker.failure_report(f"stopped unexpectedly with status {exit_status}")
                _say(report, stream=sys.stderr)
                status = 1
        except SandboxError as exc:
            _say(f"engage-consumer sandbox kafka: {exc}", stream=sys.stderr)
            status = 1
        group.cancel_scope.cancel()
    if status == 0:
        _say("kafka stopped")
    return status


def _say(text: str, *, stream: TextIO | None = None) -> None:
    # Looked up per call (pytest swaps sys.stdout); flushed at once because scripts wait for
    # the "kafka ready" line on a pipe.
    out = sys.stdout if stream is None else stream
    out.write(text + "\n")
    out.flush()


async def _cancel_on_signal(
    scope: anyio.CancelScope, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        task_status.started()
        async for _ in signals:
            scope.cancel()
            return
