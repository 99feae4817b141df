"""The settings of the local Kafka broker and the files they become (server and log4j2 config).

Pure: nothing here starts a process or opens a socket, so the rendered configuration is checked
by unit tests. One node is both broker and controller (KRaft ``process.roles=broker,controller``);
every setting that a multi-broker cluster would need (replication factors, min ISR) is pinned to 1,
and the ones that only slow tests down (the initial rebalance delay, 50 offsets partitions) are cut.

``SaslSslListener`` adds a SASL_SSL listener (SCRAM over TLS, as production clusters run it) beside
PLAINTEXT, which stays the inter-broker listener and the one the sandbox's own admin calls use::

    tls = make_throwaway_ca(tmp_path)  # consumer.sandbox.kafka.tls
    BrokerSettings(sasl_ssl=SaslSslListener(keystore=tls.keystore, users={"alice": "pw"}))
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from consumer.sandbox.kafka.jars import KAFKA_VERSION

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

NODE_ID = 1
HOST = "127.0.0.1"
BROKER_LISTENER = "PLAINTEXT"
CONTROLLER_LISTENER = "CONTROLLER"
_LISTENER_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# The storage tool's SCRAM argument is `MECH=[name=...,...]`: no separators or quotes in a name.
_SCRAM_USER = re.compile(r"^[A-Za-z0-9._@-]+$")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
# Kafka refuses fewer (ScramMechanism.minIterations); more only slows every client's login.
SCRAM_MIN_ITERATIONS = 4096
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"

# Broker-wide defaults for a one-node test cluster; BrokerSettings.extra_config overrides any.
_TEST_DEFAULTS: dict[str, str] = {
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    # 50 by default: creating them delays the first consumer group by seconds.
    "offsets.topic.num.partitions": "5",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "5",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    # Tests join groups constantly; the 3 s default wait for more members is pure delay here.
    "group.initial.rebalance.delay.ms": "0",
    # Lets tests use short session timeouts to see a dead member evicted quickly.
    "group.min.session.timeout.ms": "1000",
    # Topics exist only when a test or the demo creates them, as in production clusters.
    "auto.create.topics.enable": "false",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ExtraListener:
    """A listener beside PLAINTEXT (e.g. the SASL_SSL one), bound and advertised on ``host``.

    ``config`` holds the full broker property names it needs (``listener.name.sasl_ssl.…``,
    ``ssl.keystore.location``, ``sasl.enabled.mechanisms``, …), merged into server.properties.
    ``host`` is 127.0.0.1 unless a test gives a network namespace an address of its own to
    reach the broker on (the address of a veth the test made).
    """

    name: str
    security_protocol: str
    port: int = 0
    config: Mapping[str, str] = field(default_factory=dict)
    host: str = HOST


@dataclass(frozen=True, kw_only=True, slots=True)
class SaslSslListener:
    """A SASL_SSL listener: TLS with a PEM keystore, SCRAM logins for ``users``.

    ``keystore`` is a PEM file holding the broker's unencrypted PKCS#8 key and its certificate
    (``kafka_tls.make_throwaway_ca`` writes one). ``users`` maps a user name to its password; the
    credentials are written into the metadata log when the storage is formatted (salted there, so
    no password reaches a command line, server.properties or the broker's log). A data directory
    that is already formatted keeps the users it was formatted with.
    """

    keystore: Path
    users: Mapping[str, str] = field(repr=False)
    mechanism: str = "SCRAM-SHA-512"
    name: str = "SASL_SSL"
    port: int = 0
    iterations: int = SCRAM_MIN_ITERATIONS

    def __post_init__(self) -> None:
        if self.mechanism not in SCRAM_MECHANISMS:
            raise ValueError(f"mechanism {self.mechanism!r} must be one of {SCRAM_MECHANISMS}")
        if not self.users:
            raise ValueError("a SASL_SSL listener needs at least one user")
        for user, password in self.users.items():
            if not _SCRAM_USER.match(user):
                raise ValueError(f"SCRAM user name {user!r} must match {_SCRAM_USER.pattern}")
            if not password:
                raise ValueError(f"SCRAM user {user!r} needs a non-empty password")
        if self.iterations < SCRAM_MIN_ITERATIONS:
            raise ValueError(f"iterations must be at least {SCRAM_MIN_ITERATIONS}")

    def listener(self) -> ExtraListener:
        """The listener and its own settings, all under ``listener.name.<name>.``."""
        prefix = f"listener.name.{self.name.lower()}."
        return ExtraListener(
            name=self.name,
            security_protocol="SASL_SSL",
            port=self.port,
            config={
                f"{prefix}ssl.keystore.type": "PEM",
                f"{prefix}ssl.keystore.location": str(self.keystore),
                f"{prefix}sasl.enabled.mechanisms": self.mechanism,
                f"{prefix}{self.mechanism.lower()}.sasl.jaas.config": _SCRAM_LOGIN,
            },
        )

    def scram_arguments(self, salts: Mapping[str, bytes]) -> list[str]:
        """The storage tool's ``--add-scram`` arguments, one per user, with the given salts.

        Salted here (RFC 5802's ``Hi``: PBKDF2-HMAC over the mechanism's hash) so that the tool
        receives what Kafka stores, never the password itself.
        """
        digest = self.mechanism.removeprefix("SCRAM-").replace("-", "").lower()
        arguments = []
        for user, password in self.users.items():
            salt = salts[user]
            salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, self.iterations)
            arguments += [
                "--add-scram",
                (
                    f"{self.mechanism}=[name={user},iterations={self.iterations},"
                    f'salt="{_b64(salt)}",saltedpassword="{_b64(salted)}"]'
                ),
            ]
        return arguments


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, kw_only=True, slots=True)
class BrokerSettings:
    """How to start the local broker. Port 0 means "a free port, kept across restarts"."""

    version: str = KAFKA_VERSION
    port: int = 0
    controller_port: int = 0
    partitions: int = 3
    heap: str = "512m"
    # C1-only JIT starts faster on two shared cores but caps peak speed: a benchmark turns it off.
    c1_only: bool = True
    # Map the classes a previous broker recorded (kafka_cds): about a second off every start.
    class_archive: bool = True
    jvm_options: tuple[str, ...] = ()
    extra_config: Mapping[str, str] = field(default_factory=dict)
    extra_listeners: tuple[ExtraListener, ...] = ()
    sasl_ssl: SaslSslListener | None = None
    start_timeout: float = 120.0
    stop_timeout: float = 30.0
    java: str | Path | None = None
    maven: str | Path | None = None
    cache_dir: Path | None = None
    env: Mapping[str, str] | None = None

    @property
    def listeners(self) -> tuple[ExtraListener, ...]:
        """Every listener beside PLAINTEXT and CONTROLLER: the extra ones, then SASL_SSL."""
        sasl_ssl = () if self.sasl_ssl is None else (self.sasl_ssl.listener(),)
        return (*self.extra_listeners, *sasl_ssl)

    def __post_init__(self) -> None:
        names = [listener.name for listener in self.listeners]
        for name in names:
            if not _LISTENER_NAME.match(name) or name in (BROKER_LISTENER, CONTROLLER_LISTENER):
                raise ValueError(f"listener name {name!r} must be upper case and not reserved")
        if len(set(names)) != len(names):
            raise ValueError(f"listener names must be unique: {names}")
        if self.partitions < 1:
            raise ValueError("partitions must be at least 1")


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64 without padding.

    Kafka's own ``Uuid.randomUuid`` also never returns an id starting with ``-``: the storage
    tool would read it as an option.
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def render_server_properties(
    *,
    port: int,
    controller_port: int,
    log_dir: Path,
    partitions: int,
    extra_listeners: Mapping[str, tuple[str, int]] | None = None,
    extra_config: Mapping[str, str] | None = None,
    listener_hosts: Mapping[str, str] | None = None,
) -> str:
    """Render server.properties for one combined broker+controller node on 127.0.0.1.

    ``extra_listeners`` maps a listener name to (security protocol, port); their own settings
    arrive through ``extra_config`` like any other override. ``listener_hosts`` binds (and
    advertises) a listener elsewhere than 127.0.0.1.
    """
    extras = dict(extra_listeners or {})
    hosts = dict(listener_hosts or {})
    listeners = {BROKER_LISTENER: port, CONTROLLER_LISTENER: controller_port}
    listeners |= {name: extra_port for name, (_, extra_port) in extras.items()}
    protocols = {BROKER_LISTENER: "PLAINTEXT", CONTROLLER_LISTENER: "PLAINTEXT"}
    protocols |= {name: protocol for name, (protocol, _) in extras.items()}
    advertised = {name: p for name, p in listeners.items() if name != CONTROLLER_LISTENER}

    def where(name: str, listener_port: int) -> str:
        return f"{name}://{hosts.get(name, HOST)}:{listener_port}"

    properties: dict[str, str] = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.bootstrap.servers": f"{HOST}:{controller_port}",
        "listeners": ",".join(where(name, p) for name, p in listeners.items()),
        "advertised.listeners": ",".join(where(name, p) for name, p in advertised.items()),
        "listener.security.protocol.map": ",".join(f"{n}:{p}" for n, p in protocols.items()),
        "controller.listener.names": CONTROLLER_LISTENER,
        "inter.broker.listener.name": BROKER_LISTENER,
        "log.dirs": str(log_dir),
        "num.partitions": str(partitions),
        **_TEST_DEFAULTS,
        **(extra_config or {}),
    }
    lines = ["# Written by consumer.sandbox.kafka.config; rewritten on every start."]
    lines += [f"{key}={_escape(value)}" for key, value in properties.items()]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    # java.util.Properties treats backslashes as escapes and a newline as the end of the value.
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def render_log4j2(log_file: Path) -> str:
    """Render a log4j2 configuration sending the broker's log to ``log_file``, rolled at 20 MB."""
    return "\n".join(
        [
            "status = warn",
            "appender.file.type = RollingFile",
            "appender.file.name = file",
            f"appender.file.fileName = {log_file}",
            f"appender.file.filePattern = {log_file}.%i",
            "appender.file.layout.type = PatternLayout",
            "appender.file.layout.pattern = [%d] %p %m (%c)%n",
            "appender.file.policies.type = Policies",
            "appender.file.policies.size.type = SizeBasedTriggeringPolicy",
            "appender.file.policies.size.size = 20MB",
            "appender.file.strategy.type = DefaultRolloverStrategy",
            "appender.file.strategy.max = 2",
            "rootLogger.level = info",
            "rootLogger.appenderRef.file.ref = file",
            # One line per request and per partition state change: useless noise for a sandbox.
            "logger.request.name = kafka.request.logger",
            "logger.request.level = warn",
            "logger.state.name = state.change.logger",
            "logger.state.level = warn",
            "",
        ]
    )
