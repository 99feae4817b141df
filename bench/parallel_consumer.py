"""Confluent's Parallel Consumer from Maven Central: resolve its jars once, build the command.

``parallel-consumer-core`` and its dependencies (kafka-clients among them) are copied by Maven
into ``~/.cache/engage-consumer/parallel-consumer-<version>/`` the first time, like the broker's
jars; the harness itself is one Java source file run directly by ``java`` (JEP 330), with
Jackson taken from the broker's jar directory.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from consumer.sandbox.kafka import cache_root

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The newest release that resolves from Maven Central with its dependencies (checked here).
PC_VERSION = "0.5.3.3"
HARNESS = Path(__file__).with_name("ParallelConsumerHarness.java")

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>engage-consumer.bench</groupId><artifactId>pc-jars</artifactId><version>1</version>
  <dependencies>
    <dependency>
      <groupId>io.confluent.parallelconsumer</groupId>
      <artifactId>parallel-consumer-core</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def ensure_parallel_consumer(version: str = PC_VERSION) -> Path:
    """The directory holding Parallel Consumer's jars; resolves them with Maven when missing.

    Raises ``RuntimeError`` when Maven is missing or the resolution fails.
    """
    target = cache_root() / f"parallel-consumer-{version}"
    if (target / "complete").exists():
        return target
    maven = shutil.which("mvn")
    if maven is None:
        raise RuntimeError("Maven (mvn) is needed once to fetch Parallel Consumer's jars")
    with tempfile.TemporaryDirectory(prefix="pc-pom-") as work:
        pom = Path(work) / "pom.xml"
        pom.write_text(_POM.format(version=version))
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        command = [
            maven,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={partial}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(
                f"mvn could not resolve parallel-consumer-core {version}:\n"
                f"{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
        (partial / "complete").write_text(version)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return target


def harness_command(
    *,
    jars: Path,
    kafka_jars: Path,
    java: str,
    args: Sequence[str],
) -> list[str]:
    """``java -cp ... ParallelConsumerHarness.java ARGS`` with PC's jars before Jackson's."""
    jackson = sorted(str(p) for p in kafka_jars.glob("jackson-*.jar"))
    classpath = ":".join([*(str(p) for p in sorted(jars.glob("*.jar"))), *jackson])
    return [java, "-cp", classpath, str(HARNESS), *args]
