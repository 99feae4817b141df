"""Finds the programs the local Kafka broker needs (Java 17+, Maven) and explains how to get them.

Both lookups read one environment mapping (``JAVA_HOME`` and ``PATH``), by default the process's
own, so a test can prove the messages by handing in a ``PATH`` that lacks a tool. Maven is only
needed the first time a Kafka version is downloaded; Java is needed to run the broker at all.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from consumer.sandbox.errors import MissingToolError, SandboxError

if TYPE_CHECKING:
    from collections.abc import Mapping

# Kafka 4.x brokers are built for Java 17 (KIP-750); clients alone would run on 11.
MIN_JAVA_MAJOR = 17
# maven-dependency-plugin 3.8 needs Maven 3.6.3.
MIN_MAVEN = (3, 6, 3)

JAVA_HINT = (
    "Install a Java 17+ runtime: on Debian/Ubuntu `sudo apt-get install openjdk-17-jre-headless`, "
    "on macOS `brew install openjdk@17`, anywhere `sdk install java 17.0.15-tem` (sdkman); "
    "or set JAVA_HOME to a JDK 17+."
)
MAVEN_HINT = (
    "Install Maven 3.6.3+: on Debian/Ubuntu `sudo apt-get install maven`, "
    "on macOS `brew install maven`, anywhere `sdk install maven` (sdkman)."
)

# `java -version` prints e.g. `openjdk version "17.0.15" 2025-04-15` or `java version "1.8.0_381"`.
_JAVA_VERSION = re.compile(r'version "(?P<version>[^"]+)"')
_MAVEN_VERSION = re.compile(r"Apache Maven (?P<version>\d+(?:\.\d+)*)")
_PROBE_TIMEOUT = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class JavaRuntime:
    """A ``java`` launcher that is new enough to run the broker."""

    path: Path
    version: str
    major: int

    @property
    def home(self) -> Path:
        """The JDK/JRE directory (what JAVA_HOME should be for Maven), symlinks resolved."""
        return self.path.resolve().parent.parent


@dataclass(frozen=True, kw_only=True, slots=True)
class MavenTool:
    """An ``mvn`` launcher that is new enough to resolve the Kafka jars."""

    path: Path
    version: str


def java_major(version: str) -> int:
    """Return the feature release of a Java version (``1.8.0_381`` -> 8, ``17.0.2`` -> 17)."""
    parts = re.split(r"[._+-]", version)
    try:
        first = int(parts[0])
        return int(parts[1]) if first == 1 and len(parts) > 1 else first
    except ValueError:
        raise SandboxError(f"cannot read the Java version from {version!r}") from None


def _locate(
    explicit: str | Path | None, name: str, env: Mapping[str, str], home_var: str | None
) -> Path | None:
    if explicit is not None:
        found = shutil.which(str(explicit))
        return Path(found) if found else None
    if home_var and (home := env.get(home_var)):
        candidate = Path(home) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(name, path=env.get("PATH", ""))
    return Path(found) if found else None


def _probe(argv: list[str], env: Mapping[str, str]) -> str:
    """Run a version probe and return everything it printed (java writes to stderr)."""
    try:
        done = subprocess.run(  # noqa: S603 - argv is a located executable plus fixed flags
            argv,
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            env=dict(env),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxError(f"`{' '.join(argv)}` could not run: {exc}") from exc
    return done.stdout + done.stderr


def find_java(
    java: str | Path | None = None, *, env: Mapping[str, str] | None = None
) -> JavaRuntime:
    """Locate Java 17+: the explicit path if given, else ``$JAVA_HOME/bin/java``, else ``PATH``.

    Raises:
        MissingToolError: no ``java`` was found, or it is older than 17.
    """
    env = os.environ if env is None else env
    path = _locate(java, "java", env, "JAVA_HOME")
    if path is None:
        where = f"at {java}" if java is not None else "on PATH or in JAVA_HOME"
        raise MissingToolError(
            f"Java {MIN_JAVA_MAJOR}+ is needed to run the local Kafka broker, "
            f"but no `java` was found {where}. {JAVA_HINT}"
        )
    output = _probe([str(path), "-version"], env)
    match = _JAVA_VERSION.search(output)
    if match is None:
        raise MissingToolError(
            f"`{path} -version` did not print a Java version ({output.strip()[:200]!r}); "
            f"Java {MIN_JAVA_MAJOR}+ is needed to run the local Kafka broker. {JAVA_HINT}"
        )
    version = match["version"]
    major = java_major(version)
    if major < MIN_JAVA_MAJOR:
        raise MissingToolError(
            f"Java {MIN_JAVA_MAJOR}+ is needed to run the local Kafka broker, "
            f"but {path} is Java {major} ({version}). {JAVA_HINT}"
        )
    return JavaRuntime(path=path, version=version, major=major)


def find_maven(
    maven: str | Path | None = None, *, java: JavaRuntime, env: Mapping[str, str] | None = None
) -> MavenTool:
    """Locate Maven 3.6.3+: the explicit path if given, else ``PATH``.

    Maven runs on ``java`` (passed as JAVA_HOME), so a Maven that only finds an old Java elsewhere
    cannot sneak in.

    Raises:
        MissingToolError: no ``mvn`` was found, or it is older than 3.6.3.
    """
    env = os.environ if env is None else env
    path = _locate(maven, "mvn", env, None)
    if path is None:
        where = f"at {maven}" if maven is not None else "on PATH"
        raise MissingToolError(
            "Maven is needed once per Kafka version to download the broker's jars, "
            f"but no `mvn` was found {where}. {MAVEN_HINT}"
        )
    output = _probe([str(path), "-B", "--version"], maven_env(env, java))
    match = _MAVEN_VERSION.search(output)
    if match is None:
        raise MissingToolError(
            f"`{path} --version` did not print a Maven version ({output.strip()[:200]!r}). "
            f"{MAVEN_HINT}"
        )
    version = match["version"]
    numbers = tuple(int(part) for part in version.split("."))
    if numbers < MIN_MAVEN:
        minimum = ".".join(map(str, MIN_MAVEN))
        raise MissingToolError(
            f"Maven {minimum}+ is needed to download the Kafka jars, "
            f"but {path} is Maven {version}. {MAVEN_HINT}"
        )
    return MavenTool(path=path, version=version)


def maven_env(env: Mapping[str, str], java: JavaRuntime) -> dict[str, str]:
    """The environment Maven runs in: the caller's, with JAVA_HOME pinned to the checked Java."""
    return {**env, "JAVA_HOME": str(java.home)}
