"""Typed settings, read from the environment in one place.

``load_settings(environ)`` parses every variable, collects every problem and raises one
``ConfigError`` listing them all, so an operator fixes a broken Deployment in one round trip.
Secrets (the Engage API key, the SASL password) are wrapped in ``Secret`` whose ``repr`` and
``str`` never show the value.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, TypeVar
from urllib.parse import urlsplit

import orjson

from consumer import __version__
from consumer.errors import ConfigError
from consumer.events import DEFAULT_ACTION_MAP

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_PROTOCOLS: Final[tuple[SecurityProtocol, ...]] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS: Final[tuple[SaslMechanism, ...]] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")
_MISMATCH: Final[tuple[Literal["error", "warn"], ...]] = ("error", "warn")
_Num = TypeVar("_Num", int, float)
_Choice = TypeVar("_Choice", bound=str)


class Secret:
    """A string that must never reach a log line: ``repr``/``str`` are redacted."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one call that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    """Everything the consumer can be told; defaults suit one replica beside a small shop."""

    # Kafka
    kafka_bootstrap_servers: str
    kafka_group_id: str = "engage-consumer"
    kafka_client_id: str = "engage-consumer"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: Secret | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_transactional_id: str | None = None
    kafka_group_instance_id: str | None = None
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 3_000
    input_topics: tuple[str, ...]
    #: input topics with different partition counts: refuse to start, or only warn
    input_partitions_mismatch: Literal["error", "warn"] = "error"
    results_topic: str = "engage.order-outcomes"
    dead_letter_topic: str = "engage.order-events.dlq"
    #: compacted topic of what the group knows per order; None: keep none (re-learn by GET).
    #: By default ``<KAFKA_GROUP_ID>.order-state``: the state belongs to the group's work.
    state_topic: str | None = "engage-consumer.order-state"
    # Engage
    engage_base_url: str
    engage_api_key: Secret
    engage_user_agent: str = f"engage-consumer/{__version__}"
    engage_max_in_flight: int = 64
    engage_max_polls_in_flight: int = 32
    engage_rate_limit: float = 50.0
    engage_connect_timeout_seconds: float = 5.0
    engage_read_timeout_seconds: float = 30.0
    engage_retry_ambiguous_actions: bool = False
    engage_read_every_tag: bool = False
    engage_max_attempts: int = 100
    engage_http_transport: str = "aiohttp"
    action_intents: bool = True
    job_deadline_seconds: float = 120.0
    # Processing
    event_deadline_seconds: float = 300.0
    revision_wait_seconds: float = 30.0
    max_tracked_orders: int = 100_000
    max_buffered_events: int = 10_000
    max_record_bytes: int = 1_000_000
    action_map: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTION_MAP))
    commit_interval_seconds: float = 1.0
    drain_timeout_seconds: float = 25.0
    # Operations
    http_port: int = 8080
    log_level: str = "INFO"

    def secrets(self) -> tuple[str, ...]:
        """The secret values, for the log redactor's last line of defence."""
        values = [self.engage_api_key.reveal()]
        if self.kafka_sasl_password is not None:
            values.append(self.kafka_sasl_password.reveal())
        return tuple(v for v in values if v)


class _Reader:
    """Reads variables one by one, remembering every problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def required(self, name: str, what: str) -> str:
        value = self.raw(name)
        if value is None:
            self.problems.append(f"{name} is required ({what})")
            return ""
        return value

    def choice(self, name: str, choices: tuple[_Choice, ...], default: _Choice) -> _Choice:
        """One of ``choices`` (matched without regard to case), or ``default`` when unset."""
        return self.optional_choice(name, choices) or default

    def optional_choice(self, name: str, choices: tuple[_Choice, ...]) -> _Choice | None:
        """One of ``choices`` (matched without regard to case), or None when unset or wrong."""
        value = self.raw(name)
        if value is None:
            return None
        for choice in choices:
            if value.upper() == choice.upper():
                return choice
        self.problems.append(f"{name}={value!r} must be one of {', '.join(choices)}")
        return None

    def number(
        self, name: str, kind: Callable[[str], _Num], default: _Num, *, minimum: _Num
    ) -> _Num:
        value = self.raw(name)
        if value is None:
            return default
        try:
            parsed = kind(value)
        except ValueError:
            self.problems.append(f"{name}={value!r} is not a valid {kind.__name__}")
            return default
        if not math.isfinite(parsed):
            # float() takes "nan" and "inf", and NaN passes every comparison below (NaN < x
            # is False): a NaN deadline would never expire.
            self.problems.append(f"{name}={value!r} must be a finite number")
            return default
        if parsed < minimum:
            self.problems.append(f"{name}={value!r} must be at least {minimum}")
            return default
        return parsed

    def flag(self, name: str, *, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in {"1", "true", "yes", "on"}:
            return True
        if value.lower() in {"0", "false", "no", "off"}:
            return False
        self.problems.append(f"{name}={value!r} must be true or false")
        return default

    def topics(self, name: str) -> tuple[str, ...]:
        value = self.required(name, "comma-separated Kafka topics to consume")
        topics = tuple(t.strip() for t in value.split(",") if t.strip())
        if value and not topics:
            self.problems.append(f"{name} names no topic")
        for topic in topics:
            self.check_topic(name, topic)
        return topics

    def check_topic(self, name: str, topic: str) -> None:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not topic or len(topic) > 249 or not set(topic) <= allowed:
            self.problems.append(f"{name}: {topic!r} is not a valid Kafka topic name")

    def action_map(self, name: str) -> dict[str, str]:
        """ACTION_MAP: JSON object or ``type=Action,...``; keys may omit the ``order.`` prefix."""
        mapping = dict(DEFAULT_ACTION_MAP)
        value = self.raw(name)
        if value is None:
            return mapping
        pairs: dict[str, object]
        if value.startswith("{"):
            try:
                loaded = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                self.problems.append(f"{name} is not valid JSON: {exc}")
                return mapping
            pairs = loaded if isinstance(loaded, dict) else {}
            if not isinstance(loaded, dict):
                self.problems.append(f"{name} must be a JSON object")
        else:
            pairs = {}
            for item in value.split(","):
                key, sep, name_part = item.partition("=")
                if not sep:
                    self.problems.append(f"{name}: {item.strip()!r} is not TYPE=ACTION")
                    continue
                pairs[key.strip()] = name_part.strip()
        for key, action in pairs.items():
            event_type = key if key.startswith("order.") else f"order.{key}"
            if event_type not in DEFAULT_ACTION_MAP:
                known = ", ".join(DEFAULT_ACTION_MAP)
                self.problems.append(f"{name}: {key!r} is not a lifecycle type ({known})")
            elif not isinstance(action, str) or not action or len(action) > 100:
                self.problems.append(f"{name}: action for {key!r} must be a non-empty string")
            else:
                mapping[event_type] = action
        return mapping


def _kafka_security(
    r: _Reader,
) -> tuple[SecurityProtocol, SaslMechanism | None, str | None, str | None]:
    """Read the Kafka security settings and check that they fit together."""
    protocol = r.choice("KAFKA_SECURITY_PROTOCOL", _PROTOCOLS, "PLAINTEXT")
    mechanism = r.optional_choice("KAFKA_SASL_MECHANISM", _MECHANISMS)
    username = r.raw("KAFKA_SASL_USERNAME")
    password = r.raw("KAFKA_SASL_PASSWORD")
    if protocol.startswith("SASL"):
        if mechanism is None:
            r.problems.append(f"KAFKA_SASL_MECHANISM is required with {protocol}")
        if not username or not password:
            r.problems.append(
                f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with {protocol}"
            )
    for var in ("KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE"):
        path = r.raw(var)
        if path is not None and not os.path.isfile(path):  # noqa: PTH113 - plain check is clearer
            r.problems.append(f"{var}={path!r}: no such file")
    return protocol, mechanism, username, password


def _output_topics(
    r: _Reader, input_topics: tuple[str, ...], group_id: str
) -> tuple[str, str, str | None]:
    """RESULTS_TOPIC, DEAD_LETTER_TOPIC and STATE_TOPIC (empty: none), none an input topic."""
    results_topic = r.raw("RESULTS_TOPIC") or "engage.order-outcomes"
    dead_letter_topic = r.raw("DEAD_LETTER_TOPIC") or "engage.order-events.dlq"
    r.check_topic("RESULTS_TOPIC", results_topic)
    r.check_topic("DEAD_LETTER_TOPIC", dead_letter_topic)
    if results_topic in input_topics or dead_letter_topic in input_topics:
        r.problems.append("RESULTS_TOPIC and DEAD_LETTER_TOPIC must not be input topics")
    # Set but empty turns the state topic off (the one variable where empty means something).
    # Named after the group by default: two deployments (or a test and a bench run) on one
    # cluster never read each other's order state.
    state_topic = r.environ.get("STATE_TOPIC", f"{group_id}.order-state").strip() or None
    if state_topic is not None:
        r.check_topic("STATE_TOPIC", state_topic)
        if state_topic in {*input_topics, results_topic, dead_letter_topic}:
            r.problems.append(
                "STATE_TOPIC must be a topic of its own (not an input, results or dead-letter one)"
            )
    return results_topic, dead_letter_topic, state_topic


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise ``ConfigError`` listing all problems at once."""
    r = _Reader(os.environ if environ is None else environ)
    bootstrap = r.required("KAFKA_BOOTSTRAP_SERVERS", "host:port[,host:port...]")
    for server in filter(None, (s.strip() for s in bootstrap.split(","))):
        host, sep, port = server.rpartition(":")
        if not sep or not host or not port.isdigit():
            r.problems.append(f"KAFKA_BOOTSTRAP_SERVERS: {server!r} is not host:port")
    protocol, mechanism, username, password = _kafka_security(r)
    base_url = r.required("ENGAGE_BASE_URL", "e.g. https://tenant.voyado.com")
    if base_url:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            r.problems.append(f"ENGAGE_BASE_URL={base_url!r} must be an http(s) URL")
    api_key = r.required("ENGAGE_API_KEY", "the API key of the Engage connection")
    input_topics = r.topics("INPUT_TOPICS")
    group_id = r.raw("KAFKA_GROUP_ID") or "engage-consumer"
    results_topic, dead_letter_topic, state_topic = _output_topics(r, input_topics, group_id)
    log_level = r.choice("LOG_LEVEL", _LOG_LEVELS, "INFO")
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        kafka_group_id=group_id,
        kafka_client_id=r.raw("KAFKA_CLIENT_ID") or "engage-consumer",
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username=username,
        kafka_sasl_password=Secret(password) if password else None,
        kafka_ssl_cafile=r.raw("KAFKA_SSL_CAFILE"),
        kafka_ssl_certfile=r.raw("KAFKA_SSL_CERTFILE"),
        kafka_ssl_keyfile=r.raw("KAFKA_SSL_KEYFILE"),
        kafka_transactional_id=r.raw("KAFKA_TRANSACTIONAL_ID"),
        kafka_group_instance_id=r.raw("KAFKA_GROUP_INSTANCE_ID"),
        kafka_session_timeout_ms=r.number("KAFKA_SESSION_TIMEOUT_MS", int, 10_000, minimum=1000),
        kafka_heartbeat_interval_ms=r.number(
            "KAFKA_HEARTBEAT_INTERVAL_MS", int, 3_000, minimum=100
        ),
        input_topics=input_topics,
        input_partitions_mismatch=r.choice("INPUT_PARTITIONS_MISMATCH", _MISMATCH, "error"),
        results_topic=results_topic,
        dead_letter_topic=dead_letter_topic,
        state_topic=state_topic,
        engage_base_url=base_url.rstrip("/"),
        engage_api_key=Secret(api_key),
        engage_user_agent=r.raw("ENGAGE_USER_AGENT") or f"engage-consumer/{__version__}",
        engage_max_in_flight=r.number("ENGAGE_MAX_IN_FLIGHT", int, 64, minimum=1),
        engage_max_polls_in_flight=r.number("ENGAGE_MAX_POLLS_IN_FLIGHT", int, 32, minimum=1),
        engage_rate_limit=r.number("ENGAGE_RATE_LIMIT", float, 50.0, minimum=0.1),
        engage_connect_timeout_seconds=r.number(
            "ENGAGE_CONNECT_TIMEOUT_SECONDS", float, 5.0, minimum=0.1
        ),
        engage_read_timeout_seconds=r.number(
            "ENGAGE_READ_TIMEOUT_SECONDS", float, 30.0, minimum=0.1
        ),
        engage_retry_ambiguous_actions=r.flag("ENGAGE_RETRY_AMBIGUOUS_ACTIONS", default=False),
        engage_read_every_tag=r.flag("ENGAGE_READ_EVERY_TAG", default=False),
        action_intents=r.flag("ACTION_INTENTS", default=True),
        engage_max_attempts=r.number("ENGAGE_MAX_ATTEMPTS", int, 100, minimum=1),
        engage_http_transport=r.choice("ENGAGE_HTTP_TRANSPORT", ("aiohttp", "httpx"), "aiohttp"),
        job_deadline_seconds=r.number("JOB_DEADLINE_SECONDS", float, 120.0, minimum=0.1),
        event_deadline_seconds=r.number("EVENT_DEADLINE_SECONDS", float, 300.0, minimum=0.1),
        revision_wait_seconds=r.number("REVISION_WAIT_SECONDS", float, 30.0, minimum=0.0),
        max_tracked_orders=r.number("MAX_TRACKED_ORDERS", int, 100_000, minimum=1),
        max_buffered_events=r.number("MAX_BUFFERED_EVENTS", int, 10_000, minimum=1),
        max_record_bytes=r.number("MAX_RECORD_BYTES", int, 1_000_000, minimum=1024),
        action_map=r.action_map("ACTION_MAP"),
        commit_interval_seconds=r.number("COMMIT_INTERVAL_SECONDS", float, 1.0, minimum=0.05),
        drain_timeout_seconds=r.number("DRAIN_TIMEOUT_SECONDS", float, 25.0, minimum=0.0),
        http_port=r.number("HTTP_PORT", int, 8080, minimum=0),
        log_level=log_level,
    )
    if settings.kafka_heartbeat_interval_ms >= settings.kafka_session_timeout_ms:
        r.problems.append("KAFKA_HEARTBEAT_INTERVAL_MS must be below KAFKA_SESSION_TIMEOUT_MS")
    if settings.http_port > 65535:
        r.problems.append(f"HTTP_PORT={settings.http_port} is not a port")
    if r.problems:
        raise ConfigError(r.problems)
    return settings
