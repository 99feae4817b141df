"""Class data sharing for the broker JVM: the first run records its classes, later runs map them.

Loading and verifying Kafka's ~6,000 classes is most of a broker's start-up. JDK 17's dynamic
CDS archive (JEP 350) stores them parsed: the first broker of a jar cache runs with
``-XX:ArchiveClassesAtExit`` and writes the archive when it exits; every later broker starts with
``-XX:SharedArchiveFile``. The archive lives inside the jar cache (the ``dir/*`` classpath only
expands ``*.jar``), so a re-download drops it with the jars it describes; it is named after the
Java build because an archive only fits the JVM that wrote it. A JVM that cannot use an archive
prints a warning to the console log and starts normally, so this never stops a broker.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from consumer.sandbox.kafka.jars import ResolvedJars
    from consumer.sandbox.kafka.tools import JavaRuntime

_PARTIAL = ".partial-"


def archive_path(jars: ResolvedJars, java: JavaRuntime) -> Path:
    """Where the broker's class archive for this jar cache and this Java build lives."""
    build = hashlib.sha256(str(java.path.resolve()).encode()).hexdigest()[:8]
    return jars.directory / f"broker-java{java.version}-{build}.jsa"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def archive_options(archive: Path) -> tuple[list[str], Path | None]:
    """JVM options that use ``archive``, or record one; the second item is the file to keep.

    Recording writes to a private partial file (several brokers may start at once on a fresh
    cache); ``keep_archive`` moves it into place after the JVM exited.
    """
    if archive.is_file():
        return [f"-XX:SharedArchiveFile={archive}"], None
    for stale in archive.parent.glob(f".{archive.name}{_PARTIAL}*"):
        pid = stale.name.split(_PARTIAL, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            stale.unlink(missing_ok=True)
    partial = archive.with_name(f".{archive.name}{_PARTIAL}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    return [f"-XX:ArchiveClassesAtExit={partial}"], partial


def keep_archive(partial: Path, archive: Path, *, complete: bool) -> None:
    """Move a recorded archive into place, or drop it when the JVM was killed while writing it."""
    if complete and partial.is_file() and partial.stat().st_size > 0:
        with contextlib.suppress(OSError):  # the cache may be read-only; the broker still runs
            partial.replace(archive)
    partial.unlink(missing_ok=True)
