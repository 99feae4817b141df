"""How to reach the Kafka cluster: the connection and security arguments shared by every client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consumer.config import Settings


def connection_kwargs(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for bootstrap servers, TLS and SASL from the settings."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": settings.kafka_client_id,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in {"SSL", "SASL_SSL"}:
        # Imported here: building an SSL context is only needed for TLS listeners.
        from aiokafka.helpers import create_ssl_context  # noqa: PLC0415

        kwargs["ssl_context"] = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        kwargs["sasl_plain_password"] = password.reveal() if password is not None else None
    return kwargs
