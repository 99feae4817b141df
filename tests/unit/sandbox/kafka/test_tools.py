"""Finding Java and Maven, resolving the jar cache atomically, and rendering the broker config.

No broker runs here. Missing tools are shown by handing in a PATH that lacks them; old or failing
tools are small shell scripts that print what the real ones print (fakes, not mocks).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from consumer.sandbox.errors import MissingToolError, SandboxError
from consumer.sandbox.kafka.cds import archive_options, keep_archive
from consumer.sandbox.kafka.config import (
    BrokerSettings,
    ExtraListener,
    new_cluster_id,
    render_server_properties,
)
from consumer.sandbox.kafka.jars import KAFKA_VERSION, cache_root, ensure_kafka_jars
from consumer.sandbox.kafka.tools import find_java, find_maven, java_major

CLI = [sys.executable, "-m", "consumer.cli", "sandbox", "kafka"]

# A stand-in for `mvn`: answers --version, and for copy-dependencies drops two jars into the
# output directory, then exits with $FAKE_MVN_STATUS (to play a failed or interrupted download).
FAKE_MVN = """#!/bin/sh
PATH="/usr/bin:/bin:$PATH"  # the tests' PATH holds only the fakes
out=""
for arg in "$@"; do
  case "$arg" in
    --version) echo "Apache Maven ${FAKE_MVN_VERSION:-3.9.9}"; exit 0 ;;
    -DoutputDirectory=*) out="${arg#-DoutputDirectory=}" ;;
  esac
done
echo "[INFO] resolving into $out (JAVA_HOME=$JAVA_HOME)"
mkdir -p "$out"
touch "$out/kafka_2.13-${FAKE_KAFKA:-4.4.0}.jar" "$out/kafka-clients-${FAKE_KAFKA:-4.4.0}.jar"
echo "[ERROR] fake failure" >&2
exit ${FAKE_MVN_STATUS:-0}
"""


def _program(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _fake_java(directory: Path, version: str) -> Path:
    # Real launchers print their version to stderr, in this exact shape.
    line = f'openjdk version "{version}" 2024-01-16'
    return _program(directory / "jdk" / "bin", "java", f"#!/bin/sh\necho '{line}' >&2\n")


def _tools_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A PATH with a fake Java 21 and a fake Maven, and nothing else."""
    bin_dir = tmp_path / "bin"
    _program(bin_dir, "mvn", FAKE_MVN)
    java = _fake_java(tmp_path, "21.0.2")
    (bin_dir / "java").symlink_to(java)
    return {"PATH": str(bin_dir), **extra}


@pytest.mark.parametrize(
    ("version", "major"),
    [("17.0.15", 17), ("21", 21), ("1.8.0_381", 8), ("11.0.2+9", 11), ("25-ea", 25)],
)
def test_java_major_reads_old_and_new_version_schemes(version: str, major: int) -> None:
    """Both the 1.x scheme (Java 8) and the modern one give the feature release."""
    assert java_major(version) == major


def test_missing_java_says_which_tool_and_how_to_install(tmp_path: Path) -> None:
    """With no java on PATH nor JAVA_HOME, the error names Java 17+ and the install commands."""
    with pytest.raises(MissingToolError) as missing:
        find_java(env={"PATH": str(tmp_path)})
    message = str(missing.value)
    assert "Java 17+ is needed" in message
    assert "no `java` was found on PATH or in JAVA_HOME" in message
    assert "apt-get install openjdk-17-jre-headless" in message
    assert "brew install openjdk@17" in message


def test_explicit_java_that_does_not_exist_is_named(tmp_path: Path) -> None:
    """An explicit java path that is not there is reported by that path."""
    wanted = tmp_path / "nowhere" / "java"
    with pytest.raises(MissingToolError, match=f"no `java` was found at {wanted}"):
        find_java(wanted, env={"PATH": ""})


def test_too_old_java_is_refused_with_its_version(tmp_path: Path) -> None:
    """Java 11 on PATH is refused: the message names its path, version and the fix."""
    java = _fake_java(tmp_path, "11.0.22")
    with pytest.raises(MissingToolError) as old:
        find_java(env={"PATH": str(java.parent)})
    assert f"but {java} is Java 11 (11.0.22)" in str(old.value)
    assert "set JAVA_HOME to a JDK 17+" in str(old.value)


def test_java_home_wins_over_path(tmp_path: Path) -> None:
    """JAVA_HOME's java is used even when an older one comes first on PATH."""
    new = _fake_java(tmp_path / "new", "21.0.2")
    old = _fake_java(tmp_path / "old", "1.8.0_381")
    java = find_java(env={"PATH": str(old.parent), "JAVA_HOME": str(new.parent.parent)})
    assert (java.path, java.version, java.major) == (new, "21.0.2", 21)
    assert java.home == new.parent.parent


def test_missing_maven_says_which_tool_and_how_to_install(tmp_path: Path) -> None:
    """With no mvn on PATH, the error names Maven, why it is needed and the install commands."""
    java = find_java(_fake_java(tmp_path, "17.0.15"), env={})
    with pytest.raises(MissingToolError) as missing:
        find_maven(java=java, env={"PATH": str(tmp_path)})
    message = str(missing.value)
    assert "Maven is needed once per Kafka version" in message
    assert "no `mvn` was found on PATH" in message
    assert "apt-get install maven" in message
    assert "brew install maven" in message


def test_too_old_maven_is_refused_with_its_version(tmp_path: Path) -> None:
    """Maven 3.3.9 is refused with its version and the fix."""
    env = _tools_env(tmp_path, FAKE_MVN_VERSION="3.3.9")
    java = find_java(env=env)
    with pytest.raises(MissingToolError, match=r"Maven 3\.6\.3\+ is needed .* is Maven 3\.3\.9"):
        find_maven(java=java, env=env)


def test_cold_cache_without_java_or_maven_names_the_missing_tool(tmp_path: Path) -> None:
    """An empty cache needs a download: the first missing tool (Java, then Maven) is reported."""
    with pytest.raises(MissingToolError, match="Java 17"):
        ensure_kafka_jars(cache_dir=tmp_path / "cache", env={"PATH": str(tmp_path)})
    java = _fake_java(tmp_path, "17.0.15")
    with pytest.raises(MissingToolError, match="Maven is needed"):
        ensure_kafka_jars(cache_dir=tmp_path / "cache", java=java, env={"PATH": str(tmp_path)})
    assert list((tmp_path / "cache").glob("*")) == []


def test_download_lands_whole_and_is_reused_without_maven(tmp_path: Path) -> None:
    """A finished download is renamed into place with its manifest; the next call skips Maven."""
    cache = tmp_path / "cache"
    first = ensure_kafka_jars(cache_dir=cache, env=_tools_env(tmp_path))
    assert (first.downloaded, first.directory) == (True, cache / f"kafka-{KAFKA_VERSION}")
    assert [jar.name for jar in first.jars] == [
        f"kafka-clients-{KAFKA_VERSION}.jar",
        f"kafka_2.13-{KAFKA_VERSION}.jar",
    ]
    assert first.classpath == f"{first.directory}/*"
    assert sorted(entry.name for entry in cache.iterdir()) == [f"kafka-{KAFKA_VERSION}"]

    second = ensure_kafka_jars(cache_dir=cache, env={"PATH": str(tmp_path / "empty")})
    assert (second.downloaded, second.directory) == (False, first.directory)


def test_failed_download_leaves_no_cache_and_shows_maven_output(tmp_path: Path) -> None:
    """Maven failing halfway leaves neither a cache nor a partial directory behind."""
    cache = tmp_path / "cache"
    with pytest.raises(SandboxError) as failed:
        ensure_kafka_jars(cache_dir=cache, env=_tools_env(tmp_path, FAKE_MVN_STATUS="1"))
    message = str(failed.value)
    assert message.startswith("Maven failed (exit 1) resolving the Kafka jars")
    assert "[ERROR] fake failure" in message
    assert f"JAVA_HOME={tmp_path / 'jdk'}" in message
    assert list(cache.iterdir()) == []


def test_download_without_the_broker_jar_is_not_cached(tmp_path: Path) -> None:
    """A Maven run that did not bring kafka_2.13-<version>.jar is an error, not a cache."""
    cache = tmp_path / "cache"
    env = _tools_env(tmp_path, FAKE_KAFKA="9.9.9")
    with pytest.raises(SandboxError, match=f"kafka_2.13-{KAFKA_VERSION}.jar is missing"):
        ensure_kafka_jars(cache_dir=cache, env=env)
    assert list(cache.iterdir()) == []


def test_partials_of_dead_processes_are_swept_and_half_caches_replaced(tmp_path: Path) -> None:
    """Leftovers of a killed download are removed; a cache without manifest is redone."""
    cache = tmp_path / "cache"
    dead = cache / f".kafka-{KAFKA_VERSION}.partial-999999999-abc"
    alive = cache / f".kafka-{KAFKA_VERSION}.partial-{os.getpid()}-def"
    half = cache / f"kafka-{KAFKA_VERSION}"
    for directory in (dead, alive, half):
        directory.mkdir(parents=True)
    (half / "kafka-clients.jar").touch()
    resolved = ensure_kafka_jars(cache_dir=cache, env=_tools_env(tmp_path))
    assert resolved.downloaded
    assert sorted(entry.name for entry in cache.iterdir()) == sorted([alive.name, half.name])
    assert (half / "jars.txt").is_file()


def test_only_kafka_4_versions_are_accepted(tmp_path: Path) -> None:
    """The KRaft-only start-up is written for 4.x; other versions are refused before Maven runs."""
    with pytest.raises(SandboxError, match=r"'3\.9\.0' is not supported"):
        ensure_kafka_jars("3.9.0", cache_dir=tmp_path)


def test_cache_root_follows_xdg_cache_home(tmp_path: Path) -> None:
    """XDG_CACHE_HOME moves the cache; without it the cache is under ~/.cache."""
    assert cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "engage-consumer"
    assert cache_root({}) == Path.home() / ".cache" / "engage-consumer"


def test_server_properties_for_one_loopback_node(tmp_path: Path) -> None:
    """The rendered config is one broker+controller on 127.0.0.1 with one-node test settings."""
    text = render_server_properties(
        port=9092, controller_port=9093, log_dir=tmp_path / "kraft", partitions=3
    )
    properties = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert {key: properties[key] for key in properties if "listener" in key} == {
        "listeners": "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:9092",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
    }
    assert properties["process.roles"] == "broker,controller"
    assert properties["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert properties["log.dirs"] == str(tmp_path / "kraft")
    assert properties["num.partitions"] == "3"
    assert properties["auto.create.topics.enable"] == "false"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    for key in ("offsets.topic", "transaction.state.log"):
        assert properties[f"{key}.replication.factor"] == "1"
    assert properties["transaction.state.log.min.isr"] == "1"


def test_extra_listener_and_overrides_are_rendered(tmp_path: Path) -> None:
    """An extra listener is bound, advertised and mapped; extra config overrides the defaults."""
    text = render_server_properties(
        port=1,
        controller_port=2,
        log_dir=tmp_path,
        partitions=1,
        extra_listeners={"SASL_SSL": ("SASL_SSL", 3)},
        extra_config={"auto.create.topics.enable": "true", "sasl.enabled.mechanisms": "PLAIN"},
    )
    properties = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert properties["listeners"].endswith(",SASL_SSL://127.0.0.1:3")
    assert properties["advertised.listeners"] == ("PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:3")
    assert properties["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert properties["auto.create.topics.enable"] == "true"
    assert properties["sasl.enabled.mechanisms"] == "PLAIN"
    assert text.count("auto.create.topics.enable=") == 1


def test_listener_names_must_be_new_and_upper_case() -> None:
    """Reserved, lower-case or repeated extra listener names are refused when settings are built."""
    for names in (["PLAINTEXT"], ["sasl"], ["SASL_SSL", "SASL_SSL"]):
        listeners = tuple(ExtraListener(name=n, security_protocol="SASL_SSL") for n in names)
        with pytest.raises(ValueError, match="listener name"):
            BrokerSettings(extra_listeners=listeners)


def test_cluster_ids_are_kafka_uuids_the_storage_tool_accepts() -> None:
    """Ids are 22 URL-safe base64 characters and never start with '-' (read as an option)."""
    ids = {new_cluster_id() for _ in range(500)}
    assert len(ids) == 500
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)


def test_cli_without_java_prints_the_fix_and_exits_non_zero(tmp_path: Path) -> None:
    """`sandbox kafka` on a machine without Java prints the install hint and exits 1."""
    env = {"PATH": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = subprocess.run(
        CLI,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("engage-consumer sandbox kafka: Java 17+ is needed")
    assert "apt-get install openjdk-17-jre-headless" in done.stderr


def test_class_archive_is_recorded_privately_then_mapped(tmp_path: Path) -> None:
    """Without an archive the JVM records to a private partial; once kept, it is mapped next."""
    archive = tmp_path / "broker.jsa"
    options, partial = archive_options(archive)
    assert partial is not None
    assert partial.name.startswith(f".broker.jsa.partial-{os.getpid()}-")
    assert options == [f"-XX:ArchiveClassesAtExit={partial}"]
    partial.write_bytes(b"classes")
    keep_archive(partial, archive, complete=True)
    assert (archive.read_bytes(), partial.exists()) == (b"classes", False)
    assert archive_options(archive) == ([f"-XX:SharedArchiveFile={archive}"], None)


def test_class_archive_of_a_killed_broker_is_dropped(tmp_path: Path) -> None:
    """An archive whose JVM was killed (maybe mid-write) is deleted, as are dead runs' partials."""
    archive = tmp_path / "broker.jsa"
    stale = tmp_path / ".broker.jsa.partial-999999999-abc"
    stale.write_bytes(b"half")
    _, partial = archive_options(archive)
    assert partial is not None
    assert not stale.exists()
    partial.write_bytes(b"half")
    keep_archive(partial, archive, complete=False)
    assert list(tmp_path.iterdir()) == []
