"""Every setting of the consumer, once: the table that loading, ``run --help`` and the README use.

Adding a setting is one entry here, plus its field in ``Settings`` (the variable's name in lower
case; the field holds the type and the default): ``load_settings`` reads it, ``engage-consumer
run --help`` lists it, ``./dev docs`` writes it into the README's table, and the tests check
that all three agree. Groups are the sections of the help, in the order an operator sets things
up. Meanings are one line each, ASCII (a help text must print on any terminal), Markdown for
code. Imports nothing of the consumer outside ``consumer/config``.
"""

from __future__ import annotations

from typing import Any, Final

from consumer.config.kinds import (
    ActionMap,
    Choice,
    ExistingFile,
    Flag,
    HostPorts,
    HttpUrl,
    Number,
    Port,
    SecretText,
    Text,
    Topic,
    Topics,
)
from consumer.config.setting import Group, Setting
from consumer.config.values import (
    ACTION_DELIVERIES,
    HTTP_TRANSPORTS,
    LOG_LEVELS,
    MECHANISMS,
    PARTITIONS_MISMATCH,
    PROTOCOLS,
    Secret,
)

_SASL = "required with the `SASL_*` protocols"
_TEXT: Final = Text()
_FLAG: Final = Flag()
_FILE: Final = ExistingFile()
_TOPIC: Final = Topic()

KAFKA: Final = Group(
    title="Kafka",
    settings=(
        Setting(
            env="KAFKA_BOOTSTRAP_SERVERS",
            kind=HostPorts(),
            meaning="`host:port[,host:port...]`",
            stand_in="",
        ),
        Setting(
            env="KAFKA_GROUP_ID",
            kind=_TEXT,
            meaning="consumer group; scale out by adding replicas (up to one per input partition)",
        ),
        Setting(
            env="KAFKA_CLIENT_ID",
            kind=_TEXT,
            meaning="the client id the brokers see (in their logs, quotas and metrics)",
        ),
        Setting(
            env="KAFKA_SECURITY_PROTOCOL",
            kind=Choice(PROTOCOLS),
            meaning="how to reach the brokers",
        ),
        Setting(
            env="KAFKA_SASL_MECHANISM",
            kind=Choice(MECHANISMS),
            meaning=f"how to authenticate; {_SASL}",
        ),
        Setting(
            env="KAFKA_SASL_USERNAME",
            kind=_TEXT,
            meaning=f"SASL user; {_SASL}",
        ),
        Setting(
            env="KAFKA_SASL_PASSWORD",
            kind=SecretText(),
            meaning=f"SASL password; {_SASL}",
        ),
        Setting(
            env="KAFKA_SSL_CAFILE",
            kind=_FILE,
            meaning="CA certificates (PEM) to trust the brokers by, instead of the system's",
        ),
        Setting(
            env="KAFKA_SSL_CERTFILE",
            kind=_FILE,
            meaning="client certificate (PEM), for brokers that ask for one",
        ),
        Setting(
            env="KAFKA_SSL_KEYFILE",
            kind=_FILE,
            meaning="private key (PEM) of `KAFKA_SSL_CERTFILE`",
        ),
        Setting(
            env="KAFKA_TRANSACTIONAL_ID",
            kind=_TEXT,
            meaning="exactly-once outcomes: outcomes and offsets commit in one transaction"
            " (unique per replica, e.g. the pod name)",
        ),
        Setting(
            env="KAFKA_GROUP_INSTANCE_ID",
            kind=_TEXT,
            meaning="static membership: a restarted replica with the same id keeps its"
            " partitions without a rebalance",
        ),
        Setting(
            env="KAFKA_SESSION_TIMEOUT_MS",
            kind=Number(int, minimum=1000),
            meaning="how long the group waits for a silent member before it moves its partitions",
        ),
        Setting(
            env="KAFKA_HEARTBEAT_INTERVAL_MS",
            kind=Number(int, minimum=100),
            meaning="how often a member tells the group it is alive;"
            " below `KAFKA_SESSION_TIMEOUT_MS`",
        ),
    ),
)

TOPICS: Final = Group(
    title="Topics",
    settings=(
        Setting(
            env="INPUT_TOPICS",
            kind=Topics(),
            meaning="comma-separated Kafka topics to consume",
            stand_in=(),
        ),
        Setting(
            env="INPUT_PARTITIONS_MISMATCH",
            kind=Choice(
                PARTITIONS_MISMATCH, notes={"error": "refuse to start", "warn": "run anyway"}
            ),
            meaning="what to do when the input topics differ in partition counts",
        ),
        Setting(
            env="RESULTS_TOPIC",
            kind=_TOPIC,
            meaning="one `order.outcome` event per input event",
        ),
        Setting(
            env="DEAD_LETTER_TOPIC",
            kind=_TOPIC,
            meaning="invalid records, original bytes plus reason headers",
        ),
        Setting(
            env="STATE_TOPIC",
            kind=_TOPIC,
            meaning="compacted topic of what the group knows per order (created with the input"
            " topics' partition count); set empty for none",
            # Named after the group: two deployments (or a test and a bench run) on one cluster
            # never read each other's order state.
            derived_from="{kafka_group_id}.order-state",
            empty_means_none=True,
        ),
    ),
)

ENGAGE: Final = Group(
    title="Engage",
    settings=(
        Setting(
            env="ENGAGE_BASE_URL",
            kind=HttpUrl(),
            meaning="e.g. `https://tenant.voyado.com`",
            stand_in="",
        ),
        Setting(
            env="ENGAGE_API_KEY",
            kind=SecretText(),
            meaning="the API key of the Engage connection",
            stand_in=Secret(""),
        ),
        Setting(
            env="ENGAGE_USER_AGENT",
            kind=_TEXT,
            meaning="the `User-Agent` of every request (Engage requires one)",
            shown_default="engage-consumer/<version>",
        ),
        Setting(
            env="ENGAGE_MAX_IN_FLIGHT",
            kind=Number(int, minimum=1),
            meaning="Engage requests in flight at once",
        ),
        Setting(
            env="ENGAGE_MAX_POLLS_IN_FLIGHT",
            kind=Number(int, minimum=1),
            meaning="job polls in flight at once (a separate bound)",
        ),
        Setting(
            env="ENGAGE_RATE_LIMIT",
            kind=Number(float, minimum=0.1),
            meaning="requests/s budget of the API key for all replicas together; each spends"
            " its share; shrinks on 429 and grows back",
        ),
        Setting(
            env="ENGAGE_CONNECT_TIMEOUT_SECONDS",
            kind=Number(float, minimum=0.1),
            meaning="how long to wait for a connection to Engage",
        ),
        Setting(
            env="ENGAGE_READ_TIMEOUT_SECONDS",
            kind=Number(float, minimum=0.1),
            meaning="how long to wait for Engage's answer",
        ),
        Setting(
            env="ENGAGE_RETRY_AMBIGUOUS_ACTIONS",
            kind=_FLAG,
            meaning="allow one resend of an action whose outcome is unknown (also after a crash)",
        ),
        Setting(
            env="ENGAGE_READ_EVERY_TAG",
            kind=_FLAG,
            meaning="read the versionTag after every write, so every accepted upsert outcome"
            " carries it; by default it is read only when an action waits for it (one GET"
            " fewer per write no action follows; its outcome's `versionTag` is then null)",
        ),
        Setting(
            env="ENGAGE_HTTP_TRANSPORT",
            kind=Choice(
                HTTP_TRANSPORTS,
                notes={"aiohttp": "httpx's API on aiohttp's connections: half the CPU per request"},
            ),
            meaning="the HTTP client under the Engage client",
        ),
        Setting(
            env="ENGAGE_ACTION_DELIVERY",
            kind=Choice(
                ACTION_DELIVERIES,
                notes={
                    "separate": "write, poll its job, read its tag, then the action call",
                    "embedded": "the action rides in the write it depends on: one request",
                },
            ),
            meaning="how an action that depends on a write reaches Engage; `embedded` relies on"
            " our reading of Engage's embedded order action (README: Engage behaviour we"
            " assumed): check it against your tenant's Swagger first",
        ),
        Setting(
            env="ENGAGE_EMBEDDED_ACTION_FIELD",
            kind=_TEXT,
            meaning="the order-body field an embedded action rides in (your tenant's Swagger"
            " names it)",
        ),
        Setting(
            env="ENGAGE_OUTCOME_POLL_FACTOR",
            kind=Number(float, minimum=1.0),
            meaning="with embedded delivery, a job only outcomes wait for is first polled at this"
            " many typical job times: fewer polls, a later outcome (1: as soon as any job)",
        ),
        Setting(
            env="ENGAGE_MAX_ATTEMPTS",
            kind=Number(int, minimum=1),
            meaning="attempts per call; in practice `EVENT_DEADLINE_SECONDS` bounds retries",
        ),
        Setting(
            env="JOB_DEADLINE_SECONDS",
            kind=Number(float, minimum=0.1),
            meaning="how long to poll a write's job",
        ),
    ),
)

PROCESSING: Final = Group(
    title="Processing",
    settings=(
        Setting(
            env="ACTION_INTENTS",
            kind=_FLAG,
            meaning="commit an action's intent before sending it, so a crash never sends it twice",
        ),
        Setting(
            env="ACTION_MAP",
            kind=ActionMap(),
            meaning="the Engage action of each lifecycle type; override some as"
            " `shipped=MyShipAction,...` or as JSON",
        ),
        Setting(
            env="EVENT_DEADLINE_SECONDS",
            kind=Number(float, minimum=0.1),
            meaning="how long one event may take, retries included",
        ),
        Setting(
            env="REVISION_WAIT_SECONDS",
            kind=Number(float, minimum=0.0),
            meaning="how long a `minRevision` action waits on an order whose revision is unknown",
        ),
        Setting(
            env="MAX_TRACKED_ORDERS",
            kind=Number(int, minimum=1),
            meaning="idle orders kept in memory (LRU)",
        ),
        Setting(
            env="MAX_BUFFERED_EVENTS",
            kind=Number(int, minimum=1),
            meaning="events taken in but not finished; above it partitions pause",
        ),
        Setting(
            env="MAX_RECORD_BYTES",
            kind=Number(int, minimum=1024),
            meaning="larger records are dead-lettered",
        ),
        Setting(
            env="COMMIT_INTERVAL_SECONDS",
            kind=Number(float, minimum=0.05),
            meaning="how often finished offsets are committed",
        ),
        Setting(
            env="DRAIN_TIMEOUT_SECONDS",
            kind=Number(float, minimum=0.0),
            meaning="SIGTERM: time to finish in-flight work before exiting 0",
        ),
    ),
)

OBSERVABILITY: Final = Group(
    title="Observability",
    settings=(
        Setting(
            env="HTTP_PORT",
            kind=Port(),
            meaning="port of `/livez`, `/readyz` and `/metrics` (Prometheus)",
        ),
        Setting(
            env="LOG_LEVEL",
            kind=Choice(LOG_LEVELS),
            meaning="JSON log lines on stderr from this level up",
        ),
    ),
)

GROUPS: Final = (KAFKA, TOPICS, ENGAGE, PROCESSING, OBSERVABILITY)
SETTINGS: Final[tuple[Setting[Any], ...]] = tuple(s for group in GROUPS for s in group.settings)
