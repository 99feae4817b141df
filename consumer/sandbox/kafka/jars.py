"""Resolves the Apache Kafka broker and tools jars with Maven and caches them outside the repo.

The jars of one Kafka version live in ``$XDG_CACHE_HOME/engage-consumer/kafka-<version>/``
(``~/.cache/...`` by default), flat, so ``java -cp '<dir>/*'`` runs the broker (``kafka.Kafka``),
the storage tool (``kafka.tools.StorageTool``) and Kafka's own tools
(``org.apache.kafka.tools.ConsumerPerformance``). Maven copies them into a partial directory beside
the cache that is renamed into place only once everything is there, so an interrupted download
never leaves a half cache; partial directories of dead processes are swept on the next run.
A warm cache needs neither Maven nor the network.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from consumer.sandbox.errors import SandboxError
from consumer.sandbox.kafka.tools import JavaRuntime, find_java, find_maven, maven_env

if TYPE_CHECKING:
    from collections.abc import Mapping

# The newest 4.x on Maven Central when this was written; aiokafka 0.14 passes every check in
# tests/integration/test_kafka_sandbox.py against it (see consumer/sandbox/kafka/__init__.py).
KAFKA_VERSION = "4.4.0"
SCALA_BINARY = "2.13"
MAVEN_TIMEOUT = 900.0

_MANIFEST = "jars.txt"
_PARTIAL = ".partial-"
_VERSION = re.compile(r"^4\.\d+\.\d+$")


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedJars:
    """The cached jars of one Kafka version, and whether this call had to download them."""

    version: str
    directory: Path
    downloaded: bool
    seconds: float

    @property
    def classpath(self) -> str:
        """A ``java -cp`` value holding the broker, the storage tool and Kafka's tools."""
        return str(self.directory / "*")

    @property
    def tools_classpath(self) -> str:
        """The classpath for ``org.apache.kafka.tools.*`` (same directory: kafka-tools is in it)."""
        return self.classpath

    @property
    def jars(self) -> tuple[Path, ...]:
        """Every jar in the cache, sorted by name."""
        return tuple(sorted(self.directory.glob("*.jar")))


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    """The engage-consumer cache: ``$XDG_CACHE_HOME/engage-consumer``, else ``~/.cache/...``."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "engage-consumer"


def _check_version(version: str) -> None:
    # The broker start-up (KRaft-only, `format --standalone`) is written for 4.x.
    if not _VERSION.match(version):
        raise SandboxError(f"Kafka version {version!r} is not supported: use a 4.x.y release")


def _is_complete(directory: Path) -> bool:
    manifest = directory / _MANIFEST
    if not manifest.is_file():
        return False
    names = manifest.read_text(encoding="utf-8").split()
    return bool(names) and all((directory / name).is_file() for name in names)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_partials(root: Path) -> None:
    """Remove partial downloads left by processes that died (SIGKILL, power loss)."""
    for entry in root.glob(f".kafka-*{_PARTIAL}*"):
        pid_text = entry.name.split(_PARTIAL, 1)[1].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:])


def _run_maven(argv: list[str], *, env: Mapping[str, str], log: Path, timeout: float) -> None:
    with log.open("ab") as out:
        try:
            done = subprocess.run(  # noqa: S603 - located mvn plus arguments we build
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SandboxError(
                f"Maven did not finish within {timeout:.0f}s; its output ends with:\n{_tail(log)}"
            ) from None
    if done.returncode != 0:
        raise SandboxError(
            f"Maven failed (exit {done.returncode}) resolving the Kafka jars; "
            f"its output ends with:\n{_tail(log)}"
        )


def _logging_binding(jars: Path) -> str | None:
    """The slf4j->log4j2 binding matching the log4j and slf4j versions Kafka brought, if any.

    Kafka's pom brings slf4j-api and log4j-core but no binding between them (its distribution adds
    one), and without a binding the broker logs nothing at all, not even why it failed to start.
    """
    log4j = next(iter(jars.glob("log4j-core-*.jar")), None)
    slf4j = next(iter(jars.glob("slf4j-api-*.jar")), None)
    if log4j is None or slf4j is None:
        return None
    log4j_version = log4j.name.removeprefix("log4j-core-").removesuffix(".jar")
    slf4j_major = slf4j.name.removeprefix("slf4j-api-").split(".", 1)[0]
    artifact = "log4j-slf4j2-impl" if slf4j_major == "2" else "log4j-slf4j-impl"
    return f"org.apache.logging.log4j:{artifact}:{log4j_version}"


def _download(
    version: str, target: Path, *, java: JavaRuntime, maven: Path, env: Mapping[str, str]
) -> None:
    root = target.parent
    root.mkdir(parents=True, exist_ok=True)
    _sweep_partials(root)
    work = Path(tempfile.mkdtemp(prefix=f".kafka-{version}{_PARTIAL}{os.getpid()}-", dir=root))
    try:
        pom = work / "pom.xml"
        pom.write_bytes(
            importlib.resources.files("consumer.sandbox.kafka").joinpath("pom.xml").read_bytes()
        )
        jars = work / "jars"
        log = work / "maven.log"
        run_env = maven_env(env, java)
        base = [str(maven), "-B", "--no-transfer-progress", "-f", str(pom)]
        _run_maven(
            [
                *base,
                f"-Dkafka.version={version}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={jars}",
                "-DincludeScope=runtime",
            ],
            env=run_env,
            log=log,
            timeout=MAVEN_TIMEOUT,
        )
        if binding := _logging_binding(jars):
            _run_maven(
                [
                    *base,
                    "dependency:copy",
                    f"-Dartifact={binding}",
                    "-Dtransitive=false",
                    f"-DoutputDirectory={jars}",
                ],
                env=run_env,
                log=log,
                timeout=MAVEN_TIMEOUT,
            )
        names = sorted(path.name for path in jars.glob("*.jar"))
        if f"kafka_{SCALA_BINARY}-{version}.jar" not in names:
            raise SandboxError(f"Maven finished but kafka_{SCALA_BINARY}-{version}.jar is missing")
        # The manifest is written last: a directory without it is never trusted as a cache.
        (jars / _MANIFEST).write_text("\n".join(names) + "\n", encoding="utf-8")
        try:
            jars.rename(target)
        except OSError:
            # Another process finished the same download first; its cache is as good as ours.
            if not _is_complete(target):
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ensure_kafka_jars(
    version: str = KAFKA_VERSION,
    *,
    cache_dir: Path | None = None,
    java: str | Path | None = None,
    maven: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedJars:
    """Return the cached jars of Kafka ``version``, downloading them with Maven if needed.

    Args:
        version: a Kafka 4.x.y release on Maven Central.
        cache_dir: where ``kafka-<version>/`` lives; default ``cache_root()``.
        java: the ``java`` Maven runs on (checked to be 17+); default JAVA_HOME, then PATH.
        maven: the ``mvn`` to use; default from PATH. Only looked for when downloading.
        env: the environment to find tools in and run Maven with; default ``os.environ``.

    Raises:
        MissingToolError: a download is needed and Java 17+ or Maven is missing.
        SandboxError: Maven failed; the message ends with the tail of its output.
    """
    _check_version(version)
    env = os.environ if env is None else env
    root = cache_dir if cache_dir is not None else cache_root(env)
    target = root / f"kafka-{version}"
    started = time.monotonic()
    if _is_complete(target):
        return ResolvedJars(
            version=version, directory=target, downloaded=False, seconds=time.monotonic() - started
        )
    runtime = find_java(java, env=env)
    mvn = find_maven(maven, java=runtime, env=env)
    if target.exists():
        # Not ours to trust (no manifest, or files gone): start over rather than run on half a set.
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(target)
    _download(version, target, java=runtime, maven=mvn.path, env=env)
    return ResolvedJars(
        version=version, directory=target, downloaded=True, seconds=time.monotonic() - started
    )
