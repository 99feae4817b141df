"""SASL_SSL with SCRAM-SHA-512: the consumer authenticates, bad credentials or CA fail fast and say
why, and neither the Engage API key nor the SASL password reaches a log line.

One broker for the module, beside the session's: its SASL_SSL listener serves a certificate of a
throwaway CA made here, and its one SCRAM user gets a random password. Events are produced and
outcomes read over SASL_SSL too, with the consumer's own connection settings.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import signal
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson
import pytest
import structlog

from consumer.config import Secret, Settings
from consumer.kafka import connection_kwargs
from consumer.logs import configure_logging
from consumer.sandbox.audit import audit
from consumer.sandbox.kafka import (
    BrokerSettings,
    KafkaBroker,
    SaslSslListener,
    TlsFiles,
    make_throwaway_ca,
    open_kafka,
)
from consumer.sandbox.workload import lifecycle_stream
from consumer.service import kafka_connection
from tests.fixtures.engage import FAST_SETTINGS
from tests.integration.harness import (
    ConsumerProcess,
    Record,
    Topics,
    as_records,
    consumer_settings,
    running,
    settings_env,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator, Sequence
    from pathlib import Path

    from consumer.sandbox.engage import EngageSimulator
    from tests.fixtures.engage import EngageSimFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

USER = "engage-consumer"
MECHANISM = "SCRAM-SHA-512"
# A failed start must end well within this (measured: about 1 s).
FAIL_FAST_SECONDS = 30.0


@dataclass(frozen=True, kw_only=True)
class SecureKafka:
    """The module's broker with its SASL_SSL listener, the CA it trusts, and the one user."""

    broker: KafkaBroker
    tls: TlsFiles
    #: an unrelated CA: trusting it instead of ``tls.ca_file`` must fail verification
    other_ca: TlsFiles
    password: str

    @property
    def address(self) -> str:
        """The SASL_SSL listener's ``host:port``."""
        return self.broker.listener_address("SASL_SSL")


@pytest.fixture(scope="module")
async def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecureKafka]:
    """A broker with a SASL_SSL listener (SCRAM-SHA-512, throwaway CA) for this module."""
    pki = tmp_path_factory.mktemp("pki")
    tls = make_throwaway_ca(pki / "ca")
    other_ca = make_throwaway_ca(pki / "other-ca")
    password = f"sasl-{secrets.token_urlsafe(18)}"
    listener = SaslSslListener(keystore=tls.keystore, users={USER: password}, mechanism=MECHANISM)
    async with open_kafka(BrokerSettings(sasl_ssl=listener)) as broker:
        yield SecureKafka(broker=broker, tls=tls, other_ca=other_ca, password=password)


@pytest.fixture
async def api_key_sim(engage_sim_factory: EngageSimFactory) -> EngageSimulator:
    """A simulator that accepts only a random API key (so a log scan can look for it)."""
    key = f"apikey-{secrets.token_urlsafe(18)}"
    return await engage_sim_factory(replace(FAST_SETTINGS, api_keys=(key,)))


@pytest.fixture
def _restore_logging() -> Iterator[None]:
    """Put structlog and the root logger back after a test that configured them."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


async def secure_topics(kafka: SecureKafka, name: str) -> Topics:
    """Fresh topics on the secure broker (created over its PLAINTEXT admin listener)."""
    suffix = secrets.token_hex(4)
    topics = Topics(
        inputs=(f"{name}-in-{suffix}",),
        results=f"{name}-results-{suffix}",
        dead_letter=f"{name}-dlq-{suffix}",
    )
    await kafka.broker.create_topics([*topics.inputs, topics.results, topics.dead_letter])
    return topics


def secure_settings(
    kafka: SecureKafka,
    sim: EngageSimulator,
    topics: Topics,
    *,
    password: str | None = None,
    ca_file: str | None = None,
) -> Settings:
    """Consumer settings for the SASL_SSL listener; the right password and CA unless given."""
    return consumer_settings(
        kafka.broker,
        sim,
        topics,
        kafka_bootstrap_servers=kafka.address,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=MECHANISM,
        kafka_sasl_username=USER,
        kafka_sasl_password=Secret(kafka.password if password is None else password),
        kafka_ssl_cafile=str(kafka.tls.ca_file) if ca_file is None else ca_file,
    )


def process_env(settings: Settings, *, log_level: str = "INFO") -> dict[str, str]:
    """The environment of ``engage-consumer run`` for ``settings``, security included."""
    password = settings.kafka_sasl_password
    assert password is not None
    assert settings.kafka_sasl_mechanism is not None
    assert settings.kafka_sasl_username is not None
    assert settings.kafka_ssl_cafile is not None
    return settings_env(settings) | {
        "KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "KAFKA_SASL_PASSWORD": password.reveal(),
        "KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "LOG_LEVEL": log_level,
    }


async def produce_secure(settings: Settings, topic: str, records: Sequence[Record]) -> None:
    """Publish records over the consumer's own (SASL_SSL) connection settings."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(
        **connection_kwargs(kafka_connection(settings)), acks="all", linger_ms=5
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in records]
        for future in futures:
            await future
    finally:
        await producer.stop()


async def read_outcomes_secure(
    settings: Settings, topic: str, *, count: int, wait_seconds: float = 30.0
) -> list[dict[str, Any]]:
    """Read ``count`` outcomes over SASL_SSL (fewer if time runs out), decoded."""
    import anyio  # noqa: PLC0415
    from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

    reader = AIOKafkaConsumer(
        topic,
        **connection_kwargs(kafka_connection(settings)),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await reader.start()
    out: list[dict[str, Any]] = []
    try:
        with anyio.move_on_after(wait_seconds):
            while len(out) < count:
                batch = await reader.getmany(timeout_ms=100)
                out += [orjson.loads(r.value) for rs in batch.values() for r in rs]
    finally:
        await reader.stop()
    return out


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a process's output (anything else is left out)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


async def test_consumer_authenticates_over_sasl_ssl(
    secure_kafka: SecureKafka, engage_sim: EngageSimulator
) -> None:
    """Over SASL_SSL with SCRAM-SHA-512 and the CA file, every event gets its correct outcome."""
    topics = await secure_topics(secure_kafka, "auth")
    settings = secure_settings(secure_kafka, engage_sim, topics)
    events = lifecycle_stream(8, seed=41)
    await produce_secure(settings, topics.inputs[0], as_records(events))
    async with running(settings) as service:
        await wait_for(service, finished=len(events))
    outcomes = await read_outcomes_secure(settings, topics.results, count=len(events))
    report = audit(events=events, journal=await engage_sim.journal(), outcomes=outcomes)
    assert report.correct, report.summary()
    assert report.outcomes == len(events)


async def runner_errors_of_a_fast_failure(
    settings: Settings, log_path: Path
) -> tuple[list[str], str]:
    """Run ``run`` expecting it to fail at once: status 1 within ``FAIL_FAST_SECONDS``.

    Returns the runner's error lines and the whole log.
    """
    began = time.monotonic()
    process = ConsumerProcess(process_env(settings), str(log_path))
    try:
        status = await process.wait(FAIL_FAST_SECONDS + 5)
    finally:
        process.close()
    took = time.monotonic() - began
    text = log_path.read_text()
    assert status == 1, text
    assert took < FAIL_FAST_SECONDS
    ours = [line for line in json_lines(text) if line.get("component") == "runner"]
    return [line["event"] for line in ours if line["level"] == "error"], text


async def test_wrong_password_exits_fast_naming_the_credentials(
    secure_kafka: SecureKafka, engage_sim: EngageSimulator, tmp_path: Path
) -> None:
    """A wrong SASL password ends `run` within seconds, status 1, one line naming the settings."""
    topics = await secure_topics(secure_kafka, "badpw")
    wrong = f"wrong-{secrets.token_urlsafe(12)}"
    settings = secure_settings(secure_kafka, engage_sim, topics, password=wrong)
    errors, text = await runner_errors_of_a_fast_failure(settings, tmp_path / "consumer.log")
    assert len(errors) == 1, text
    assert errors[0].startswith(f"kafka authentication failed for user {USER!r} with {MECHANISM}")
    assert errors[0].endswith("check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD")
    assert "Traceback" not in text
    assert "Unclosed" not in text
    assert wrong not in text


async def test_untrusted_ca_exits_fast_with_a_tls_error(
    secure_kafka: SecureKafka, engage_sim: EngageSimulator, tmp_path: Path
) -> None:
    """Trusting a CA that did not sign the broker ends `run` within seconds with a TLS line."""
    topics = await secure_topics(secure_kafka, "badca")
    other_ca = str(secure_kafka.other_ca.ca_file)
    settings = secure_settings(secure_kafka, engage_sim, topics, ca_file=other_ca)
    errors, text = await runner_errors_of_a_fast_failure(settings, tmp_path / "consumer.log")
    expected = (
        f"kafka TLS certificate verification failed at {secure_kafka.address}: unable to get "
        "local issuer certificate; check KAFKA_SSL_CAFILE (the CA that signed the broker's "
        "certificate) and that the certificate names the host in KAFKA_BOOTSTRAP_SERVERS"
    )
    assert errors == [expected], text
    assert "Traceback" not in text


async def test_debug_run_logs_neither_the_api_key_nor_the_sasl_password(
    secure_kafka: SecureKafka, api_key_sim: EngageSimulator, tmp_path: Path
) -> None:
    """`run` at DEBUG over SASL_SSL: no output line, nor the broker's log, holds a secret."""
    topics = await secure_topics(secure_kafka, "debuglog")
    settings = secure_settings(secure_kafka, api_key_sim, topics)
    events = lifecycle_stream(6, seed=43)
    await produce_secure(settings, topics.inputs[0], as_records(events))
    log_path = tmp_path / "consumer.log"
    process = ConsumerProcess(process_env(settings, log_level="DEBUG"), str(log_path))
    try:
        outcomes = await read_outcomes_secure(settings, topics.results, count=len(events))
        process.signal(signal.SIGTERM)
        status = await process.wait(30)
    finally:
        process.close()
    text = log_path.read_text()
    assert status == 0, text
    assert len(outcomes) == len(events)
    # The run really logged at DEBUG: one "outcome" line per event.
    assert sum(line["event"] == "outcome" for line in json_lines(text)) == len(events)
    broker_logs = "".join(
        path.read_text(errors="replace")
        for path in (secure_kafka.broker.server_log, secure_kafka.broker.console_log)
    )
    for secret in (api_key_sim.api_key, secure_kafka.password):
        assert secret not in text
        assert secret not in broker_logs


@pytest.mark.usefixtures("_restore_logging")
async def test_service_debug_logs_hold_no_secret_even_without_the_scrubber(
    secure_kafka: SecureKafka, api_key_sim: EngageSimulator
) -> None:
    """In-process at DEBUG, with no secret registered to scrub, no structlog line holds one."""
    topics = await secure_topics(secure_kafka, "inproc")
    settings = secure_settings(secure_kafka, api_key_sim, topics)
    stream = io.StringIO()
    # No secrets registered: this proves nothing logs them, not that the scrubber hid them.
    configure_logging(level="DEBUG", secrets=(), stream=stream)
    events = lifecycle_stream(6, seed=47)
    await produce_secure(settings, topics.inputs[0], as_records(events))
    async with running(settings) as service:
        await wait_for(service, finished=len(events))
    text = stream.getvalue()
    assert sum(line["event"] == "outcome" for line in json_lines(text)) == len(events)
    assert api_key_sim.api_key not in text
    assert secure_kafka.password not in text
