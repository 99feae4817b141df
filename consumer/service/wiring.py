"""Each part's own small settings, derived from the service's one ``Settings``.

``consumer.config`` reads the environment once; every adapter takes only the few values it
needs (house style), and this module is where the one becomes the many. The runner, the demo
and the tests build their parts through it, so a setting means the same thing everywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consumer.engage import EngageClientSettings
from consumer.kafka import ConsumerSettings, KafkaConnection
from consumer.ratebudget import RateBudgetSettings
from consumer.retry import RetryPolicy
from consumer.service.dispatch import DispatchSettings
from consumer.service.pipeline import PipelineSettings

if TYPE_CHECKING:
    from consumer.config import Settings


def kafka_connection(settings: Settings) -> KafkaConnection:
    """How every Kafka client reaches the cluster."""
    return KafkaConnection(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=settings.kafka_client_id,
        security_protocol=settings.kafka_security_protocol,
        sasl_mechanism=settings.kafka_sasl_mechanism,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=settings.kafka_sasl_password,
        ssl_cafile=settings.kafka_ssl_cafile,
        ssl_certfile=settings.kafka_ssl_certfile,
        ssl_keyfile=settings.kafka_ssl_keyfile,
    )


def consumer_settings(settings: Settings) -> ConsumerSettings:
    """The group consumer's settings."""
    return ConsumerSettings(
        connection=kafka_connection(settings),
        group_id=settings.kafka_group_id,
        group_instance_id=settings.kafka_group_instance_id,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        max_record_bytes=settings.max_record_bytes,
    )


def engage_client_settings(settings: Settings) -> EngageClientSettings:
    """How to reach Engage."""
    in_flight = settings.engage_max_in_flight + settings.engage_max_polls_in_flight
    return EngageClientSettings(
        base_url=settings.engage_base_url,
        api_key=settings.engage_api_key,
        user_agent=settings.engage_user_agent,
        connect_timeout=settings.engage_connect_timeout_seconds,
        read_timeout=settings.engage_read_timeout_seconds,
        # One connection per in-flight place: a request that holds a place never waits for a
        # connection, so the pool timeout only fires when something is really wrong.
        max_connections=in_flight,
        max_keepalive=min(in_flight, 32),
        http_transport=settings.engage_http_transport,
        embedded_action_field=settings.engage_embedded_action_field,
        outcome_poll_factor=settings.engage_outcome_poll_factor,
    )


def dispatch_settings(settings: Settings) -> DispatchSettings:
    """The dispatcher's bounds, rate budget and retry policy."""
    rate = settings.engage_rate_limit
    return DispatchSettings(
        max_in_flight=settings.engage_max_in_flight,
        max_polls_in_flight=settings.engage_max_polls_in_flight,
        budget=RateBudgetSettings(ceiling=rate, burst=max(1.0, rate / 5), floor=min(1.0, rate)),
        retry_ambiguous_actions=settings.engage_retry_ambiguous_actions,
        job_timeout=settings.job_deadline_seconds,
        # Attempts are bounded by the event deadline in practice: an Engage outage shorter than
        # EVENT_DEADLINE_SECONDS delays events instead of failing them.
        retry=RetryPolicy(max_attempts=settings.engage_max_attempts),
    )


def pipeline_settings(settings: Settings) -> PipelineSettings:
    """What the pipeline needs: topics, deadlines, the decoder's limits, call places."""
    return PipelineSettings(
        results_topic=settings.results_topic,
        dead_letter_topic=settings.dead_letter_topic,
        event_deadline_seconds=settings.event_deadline_seconds,
        max_record_bytes=settings.max_record_bytes,
        action_map=settings.action_map,
        # One place per request slot of the gate (see consumer.service.calls).
        call_places=settings.engage_max_in_flight + settings.engage_max_polls_in_flight,
        retry_ambiguous_actions=settings.engage_retry_ambiguous_actions,
        read_every_tag=settings.engage_read_every_tag,
        embedded_actions=settings.engage_action_delivery == "embedded",
    )
