"""The typed settings record, ``Settings``, and ``Secret``, the string that never reaches a log.

``Settings`` is what every part of the consumer is configured with; its fields, their types and
their defaults are the defaults of the environment too (``consumer.config.table`` maps each
field to its variable). Code and tests may build one directly. Imports nothing of the consumer
but the version and the default action map: the record must stay cheap to import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

from consumer import __version__
from consumer.events import DEFAULT_ACTION_MAP

if TYPE_CHECKING:
    from collections.abc import Mapping

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
PartitionsMismatch = Literal["error", "warn"]

PROTOCOLS: Final[tuple[SecurityProtocol, ...]] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: Final[tuple[SaslMechanism, ...]] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PARTITIONS_MISMATCH: Final[tuple[PartitionsMismatch, ...]] = ("error", "warn")
HTTP_TRANSPORTS: Final = ("aiohttp", "httpx")
ACTION_DELIVERIES: Final = ("separate", "embedded")
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


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
    input_partitions_mismatch: PartitionsMismatch = "error"
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
    engage_action_delivery: str = "separate"
    engage_embedded_action_field: str = "orderAction"
    engage_outcome_poll_factor: float = 2.0
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
