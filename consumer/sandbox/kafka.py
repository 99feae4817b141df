"""A real Apache Kafka broker on loopback for tests, the demo and the benchmark.

``open_kafka()`` resolves the broker's jars from Maven Central once (cached in
``~/.cache/engage-consumer/kafka-<version>/``), formats KRaft storage in a temporary directory,
starts one combined broker+controller JVM on free 127.0.0.1 ports and yields a ``KafkaBroker``::

    async with open_kafka() as broker:
        await broker.create_topics(["orders"], partitions=3)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        ...
        await broker.restart()  # same data directory, same ports

A SASL_SSL listener (SCRAM over TLS, as production clusters run it) sits beside PLAINTEXT when
asked for, with a certificate from a throwaway CA (``kafka_tls``, needs the dev dependency
``cryptography``)::

    tls = make_throwaway_ca(directory)
    listener = SaslSslListener(keystore=tls.keystore, users={"alice": password})
    async with open_kafka(BrokerSettings(sasl_ssl=listener)) as broker:
        broker.listener_address("SASL_SSL")  # clients trust tls.ca_file

``engage-consumer sandbox kafka`` runs the same broker until Ctrl-C or SIGTERM.
``ensure_kafka_jars()`` alone gives the cached jars (``.classpath`` also holds Kafka's tools),
and ``broker.tool_command("org.apache.kafka.tools.ConsumerPerformance", ...)`` runs one.

Version: Kafka 4.4.0, the newest 4.x on Maven Central when written, pinned in ``kafka_jars``.
Kafka 4.0 removed the protocol versions that clients older than Kafka 2.1 spoke (KIP-896);
aiokafka 0.14 picks each request's version from the broker's ApiVersions answer, and
tests/integration/test_kafka_sandbox.py checks that every request aiokafka ships still has a
version 4.4.0 accepts, then runs produce, consume in a group, commit and a transactional produce
(read_committed sees the commits, not the abort) against it. Nothing needed pinning back.

Start time, measured here (2 shared cores, JDK 17.0.15, other jobs keeping the load at 3 to 6),
from ``open_kafka()`` to the first answered metadata request, as printed by
``engage-consumer sandbox kafka``: warm (jars and class archive cached) 1.9 to 3.5 s, median
3.2 s, of which formatting KRaft storage (a JVM of its own) is about 1.1 s and a restart on an
existing directory about 2.4 s; stop 0.4 s. Cold (empty ~/.m2 and cache: Maven downloads 92 jars,
54 MB) 18 s; the first stop then takes 2.6 s while the JVM writes the class archive (kafka_cds).
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
from consumer.sandbox.kafka_config import BrokerSettings, ExtraListener, SaslSslListener
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
    "SaslSslListener",
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
