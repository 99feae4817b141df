"""``engage-consumer sandbox kafka``: run the local broker until Ctrl-C or SIGTERM."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import anyio

from consumer.sandbox.errors import SandboxError
from consumer.sandbox.kafka.config import BrokerSettings
from consumer.sandbox.kafka.jars import KAFKA_VERSION
from consumer.sandbox.kafka.launcher import open_kafka

if TYPE_CHECKING:
    import argparse

    from anyio.abc import TaskStatus


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
