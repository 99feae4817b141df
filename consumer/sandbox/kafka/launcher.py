"""Starting a local broker: find Java, resolve the jars, prepare storage, run it (``open_kafka``).

Imports no consumer code outside ``consumer.sandbox``.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from consumer.sandbox.kafka.broker import KafkaBroker
from consumer.sandbox.kafka.config import BrokerSettings
from consumer.sandbox.kafka.jars import ensure_kafka_jars
from consumer.sandbox.kafka.tools import find_java

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


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
