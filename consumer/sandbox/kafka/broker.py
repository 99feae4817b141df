"""Runs one Apache Kafka broker+controller JVM on loopback: format, start, wait, stop, restart.

The data directory holds everything the broker owns, so stopping and starting again (even from
another process) finds the same topics, offsets and ports::

    data_dir/sandbox.json       ports and cluster id chosen at the first start
    data_dir/server.properties  rewritten on every start from BrokerSettings
    data_dir/log4j2.properties  (and tools-log4j2.properties for ``tool_command``)
    data_dir/server.log         the broker's own log (log4j2); tools.log for Kafka's tools
    data_dir/console.log        the JVM's stdout/stderr (crashes before logging starts)
    data_dir/kraft/             log.dirs: the metadata log and every partition

A start waits until the broker answers a metadata request that lists itself; a stop sends SIGTERM
(Kafka's controlled shutdown) and SIGKILLs after ``stop_timeout``. On Linux the JVM is started
through ``setpriv --pdeathsig TERM`` so it dies with the Python process that started it even when
that process is SIGKILLed and gets no chance to stop it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Any

import anyio

from consumer.sandbox.errors import SandboxError
from consumer.sandbox.kafka.cds import archive_options, archive_path, keep_archive
from consumer.sandbox.kafka.config import (
    HOST,
    NODE_ID,
    BrokerSettings,
    new_cluster_id,
    render_log4j2,
    render_server_properties,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path
    from typing import IO

    from anyio.abc import Process

    from consumer.sandbox.kafka.jars import ResolvedJars
    from consumer.sandbox.kafka.tools import JavaRuntime

_POLL_INTERVAL = 0.1
# C1 only: on two shared cores the C2 compiler threads slow a start by seconds.
_C1_ONLY = "-XX:TieredStopAtLevel=1"
_FORMAT_TIMEOUT = 120.0
_TOPIC_TIMEOUT = 30.0


def free_ports(count: int) -> list[int]:
    """Ask the kernel for ``count`` distinct free TCP ports on 127.0.0.1.

    The sockets stay open until all are chosen so the same port is not handed out twice; another
    program could still take one before the broker binds it, which is rare enough on loopback.
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _tail_lines(path: Path, count: int) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    # Kafka prints its whole configuration as one log record; keep each line readable.
    return [line[:400] for line in lines[-count:]]


class KafkaBroker:
    """One local broker process over one data directory; ``start()`` and ``stop()`` repeat."""

    def __init__(
        self, *, settings: BrokerSettings, jars: ResolvedJars, java: JavaRuntime, data_dir: Path
    ) -> None:
        self.settings = settings
        self.jars = jars
        self.java = java
        self.data_dir = data_dir
        self.started_in: float | None = None
        self._process: Process | None = None
        self._console: IO[bytes] | None = None
        self._recording: Path | None = None
        self._ready = False
        state = self._load_state()
        self.cluster_id: str = state.get("cluster_id") or new_cluster_id()
        saved: dict[str, int] = state.get("ports", {})
        wanted = {"PLAINTEXT": settings.port, "CONTROLLER": settings.controller_port}
        wanted |= {listener.name: listener.port for listener in settings.listeners}
        # The controller port is written into the formatted voter set, so a formatted directory
        # keeps its own; the other ports follow the settings, else what was used last time.
        if self.formatted and "CONTROLLER" in saved:
            wanted["CONTROLLER"] = saved["CONTROLLER"]
        ports = {name: port or saved.get(name, 0) for name, port in wanted.items()}
        fresh = iter(free_ports(sum(1 for port in ports.values() if port == 0)))
        self.ports: dict[str, int] = {name: port or next(fresh) for name, port in ports.items()}

    @property
    def version(self) -> str:
        """The Kafka version this broker runs."""
        return self.jars.version

    @property
    def port(self) -> int:
        """The PLAINTEXT listener's port."""
        return self.ports["PLAINTEXT"]

    @property
    def bootstrap_servers(self) -> str:
        """The PLAINTEXT bootstrap address for clients, ``127.0.0.1:<port>``."""
        return f"{HOST}:{self.port}"

    def listener_address(self, name: str) -> str:
        """The ``host:port`` of a listener by name (``PLAINTEXT`` or an extra listener)."""
        hosts = {listener.name: listener.host for listener in self.settings.listeners}
        return f"{hosts.get(name, HOST)}:{self.ports[name]}"

    @property
    def server_log(self) -> Path:
        """The broker's log file (log4j2)."""
        return self.data_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """The JVM's captured stdout and stderr."""
        return self.data_dir / "console.log"

    @property
    def formatted(self) -> bool:
        """Whether the KRaft storage in the data directory has been formatted."""
        return (self.data_dir / "kraft" / "meta.properties").is_file()

    @property
    def pid(self) -> int | None:
        """The broker JVM's process id while it runs (for a test that kills it), else None."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.returncode is None

    def _load_state(self) -> dict[str, Any]:
        path = self.data_dir / "sandbox.json"
        if not path.is_file():
            return {}
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return state

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        state = {"cluster_id": self.cluster_id, "ports": self.ports, "version": self.version}
        (self.data_dir / "sandbox.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
        extra_config: dict[str, str] = {}
        extra_listeners: dict[str, tuple[str, int]] = {}
        for listener in self.settings.listeners:
            extra_listeners[listener.name] = (listener.security_protocol, self.ports[listener.name])
            extra_config |= listener.config
        extra_config |= self.settings.extra_config
        properties = render_server_properties(
            port=self.port,
            controller_port=self.ports["CONTROLLER"],
            log_dir=self.data_dir / "kraft",
            partitions=self.settings.partitions,
            extra_listeners=extra_listeners,
            extra_config=extra_config,
            listener_hosts={listener.name: listener.host for listener in self.settings.listeners},
        )
        (self.data_dir / "server.properties").write_text(properties, encoding="utf-8")
        log4j2 = render_log4j2(self.server_log)
        (self.data_dir / "log4j2.properties").write_text(log4j2, encoding="utf-8")
        # Kafka's own tools (tool_command) log apart: two JVMs appending to one file interleave.
        tools = render_log4j2(self.data_dir / "tools.log")
        (self.data_dir / "tools-log4j2.properties").write_text(tools, encoding="utf-8")

    def _java_command(
        self,
        main_class: str,
        *args: str,
        heap: str,
        jit: list[str],
        cds: list[str],
        log_config: str = "log4j2.properties",
    ) -> list[str]:
        return [
            str(self.java.path),
            f"-Xmx{heap}",
            # One core's worth of GC threads is plenty for a test broker on a shared machine.
            "-XX:+UseSerialGC",
            *jit,
            *cds,
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / log_config}",
            f"-Dkafka.logs.dir={self.data_dir}",
            *self.settings.jvm_options,
            "-cp",
            self.jars.classpath,
            main_class,
            *args,
        ]

    def tool_command(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        """A command running one of Kafka's own tools against this broker's jars and Java.

        For example ``tool_command("org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server", broker.bootstrap_servers, "--topic", "t", "--num-records", "1000")``.
        It logs into ``data_dir/tools.log`` and runs with the full JIT: tools measure things.
        """
        return self._java_command(
            main_class, *args, heap=heap, jit=[], cds=[], log_config="tools-log4j2.properties"
        )

    async def _format(self) -> None:
        archive = archive_path(self.jars, self.java)
        sasl_ssl = self.settings.sasl_ssl
        # SCRAM users go into the metadata log with the format: no admin round trip (aiokafka
        # has no AlterUserScramCredentials) and no second JVM after the broker is up.
        scram = (
            []
            if sasl_ssl is None
            else sasl_ssl.scram_arguments({user: os.urandom(16) for user in sasl_ssl.users})
        )
        command = self._java_command(
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={self.cluster_id}",
            f"--config={self.data_dir / 'server.properties'}",
            # One voter, this node: the dynamic quorum of KIP-853, which `kafka.Kafka` then runs.
            "--standalone",
            *scram,
            heap="256m",
            # A one-shot tool: C2 would only compete for the CPU and never pay off.
            jit=[_C1_ONLY],
            # Same classpath, so the broker's archive fits; the tool never records its own.
            cds=[f"-XX:SharedArchiveFile={archive}"] if archive.is_file() else [],
        )
        with anyio.fail_after(_FORMAT_TIMEOUT):
            done = await anyio.run_process(command, check=False, env=self._env())
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode("utf-8", errors="replace")
            raise SandboxError(f"formatting KRaft storage failed: {output.strip()[-2000:]}")

    def _env(self) -> dict[str, str]:
        env = dict(os.environ if self.settings.env is None else self.settings.env)
        return env | {"JAVA_HOME": str(self.java.home)}

    async def start(self) -> float:
        """Start the broker (formatting storage the first time) and wait until it answers.

        Returns the seconds it took. Raises ``SandboxError`` with the end of the broker's log when
        the JVM exits or does not answer within ``settings.start_timeout``.
        """
        if self.running:
            return 0.0
        began = time.monotonic()
        self._ready = False
        self._write_config()
        if not self.formatted:
            await self._format()
        cds: list[str] = []
        if self.settings.class_archive:
            cds, self._recording = archive_options(archive_path(self.jars, self.java))
        command = self._java_command(
            "kafka.Kafka",
            str(self.data_dir / "server.properties"),
            heap=self.settings.heap,
            jit=[_C1_ONLY] if self.settings.c1_only else [],
            cds=cds,
        )
        if setpriv := shutil.which("setpriv"):
            command = [setpriv, "--pdeathsig", "TERM", "--", *command]
        self._console = self.console_log.open("ab")
        try:
            self._process = await anyio.open_process(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._console,
                stderr=subprocess.STDOUT,
                env=self._env(),
                # Its own session: a terminal's Ctrl-C reaches us, and we stop the broker in order.
                start_new_session=True,
            )
            await self._wait_ready(began + self.settings.start_timeout)
        except BaseException:
            await self.stop()
            raise
        self.started_in = time.monotonic() - began
        self._ready = True
        return self.started_in

    async def _wait_ready(self, deadline: float) -> None:
        while True:
            process = self._process
            if process is None or process.returncode is not None:
                status = None if process is None else process.returncode
                raise SandboxError(
                    self.failure_report(f"did not start: the JVM exited with status {status}")
                )
            if time.monotonic() > deadline:
                raise SandboxError(
                    self.failure_report(
                        f"did not start: no answer within {self.settings.start_timeout:.0f}s"
                    )
                )
            if await self._answers_metadata():
                return
            await anyio.sleep(_POLL_INTERVAL)

    async def _answers_metadata(self) -> bool:
        # A bare TCP connect first: until the listener is bound aiokafka would log every refusal.
        try:
            stream = await anyio.connect_tcp(HOST, self.port)
        except OSError:
            return False
        await stream.aclose()
        from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415 - heavy, needed late
        from aiokafka.errors import KafkaError  # noqa: PLC0415

        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, request_timeout_ms=2000
        )
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
        except KafkaError:
            return False
        finally:
            await admin.close()
        # The broker lists itself once the controller has unfenced it: then it takes writes.
        return any(broker["node_id"] == NODE_ID for broker in cluster["brokers"])

    def failure_report(self, what: str) -> str:
        """Explain a failure: ``what`` happened, then the end of the broker log and JVM output."""
        log = _tail_lines(self.server_log, 400)
        errors = _error_lines(log)[-12:]
        parts = [f"Kafka {self.version} on {self.bootstrap_servers}: {what}."]
        if errors:
            parts += [f"--- errors in {self.server_log} ---", *errors]
        parts += [f"--- end of {self.server_log} ---", *(log[-10:] or ["(empty)"])]
        parts += [f"--- end of {self.console_log} ---"]
        parts += _tail_lines(self.console_log, 20) or ["(empty)"]
        return "\n".join(parts)

    async def wait(self) -> int | None:
        """Wait until the broker process exits; its exit status, or None if it was not started."""
        if self._process is None:
            return None
        return await self._process.wait()

    async def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``settings.stop_timeout``. Idempotent."""
        process, self._process = self._process, None
        recording, self._recording = self._recording, None
        killed = False
        # Shielded: a cancelled caller must still not leave a JVM behind.
        with anyio.CancelScope(shield=True):
            try:
                if process is not None and process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    with anyio.move_on_after(self.settings.stop_timeout):
                        await process.wait()
                    if process.returncode is None:
                        killed = True
                        process.kill()
                        await process.wait()
                if process is not None:
                    await process.aclose()
            finally:
                if self._console is not None:
                    self._console.close()
                    self._console = None
                if recording is not None:
                    # Only a broker that got ready and exited on its own wrote a whole archive.
                    complete = self._ready and not killed
                    keep_archive(recording, archive_path(self.jars, self.java), complete=complete)

    async def restart(self) -> float:
        """Stop and start again on the same data directory and ports; returns the start seconds."""
        await self.stop()
        return await self.start()

    async def create_topics(
        self,
        names: Iterable[str],
        *,
        partitions: int | None = None,
        config: Mapping[str, str] | None = None,
        exist_ok: bool = False,
    ) -> None:
        """Create topics (replication factor 1) and wait until every partition has a leader.

        Raises ``SandboxError`` naming each topic Kafka refused (and why).
        """
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415
        from aiokafka.errors import for_code  # noqa: PLC0415

        wanted = list(names)
        count = partitions or self.settings.partitions
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            await admin.start()
            new = [NewTopic(name, count, 1, topic_configs=dict(config or {})) for name in wanted]
            response = await admin.create_topics(new)
            problems = []
            for entry in response.to_object()["topic_errors"]:
                code = entry["error_code"]
                error = for_code(code)
                if code == 0 or (exist_ok and error.__name__ == "TopicAlreadyExistsError"):
                    continue
                problems.append(f"{entry['topic']}: {error.__name__} {entry.get('error_message')}")
            if problems:
                raise SandboxError("Kafka refused to create topics: " + "; ".join(problems))
            with anyio.fail_after(_TOPIC_TIMEOUT):
                while True:
                    if _all_led(await admin.describe_topics(wanted)):
                        break
                    await anyio.sleep(_POLL_INTERVAL)
        finally:
            await admin.close()

    async def list_topics(self) -> set[str]:
        """The names of all topics, internal ones (``__consumer_offsets``) included."""
        from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap_servers)
        try:
            await admin.start()
            return set(await admin.list_topics())
        finally:
            await admin.close()


def _error_lines(log: list[str]) -> list[str]:
    """The ERROR/FATAL records of a log with the exception lines under them, stack frames cut.

    The cause ("Address already in use") is in the exception text, not in the record's own line.
    """
    picked: list[str] = []
    in_error = False
    for line in log:
        if line.startswith("["):
            in_error = " ERROR " in line or " FATAL " in line
            if in_error:
                picked.append(line)
        elif in_error and not line.lstrip().startswith(("at ", "...")):
            picked.append(line)
    return picked


def _all_led(topics: list[dict[str, Any]]) -> bool:
    return all(
        topic["error_code"] == 0
        and topic["partitions"]
        and all(partition["leader"] >= 0 for partition in topic["partitions"])
        for topic in topics
    )
