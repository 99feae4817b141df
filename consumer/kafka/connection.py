"""How to reach the Kafka cluster: the connection and security arguments shared by every client.

When a client cannot start, aiokafka raises ``KafkaConnectionError("Unable to bootstrap from
[...]")`` whatever the cause: a wrong SASL password, a CA that did not sign the broker's
certificate, a wrong port. The cause only goes to aiokafka's own logger.
``explain_connection_failure`` connects once more the same way and turns the real cause into one
sentence that names the setting to check.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from consumer.config import Secret

# Long enough for a TLS handshake and a SCRAM exchange to a remote cluster; short enough that a
# failed start still ends within seconds.
_DIAGNOSIS_TIMEOUT = 10.0


@dataclass(frozen=True, kw_only=True, slots=True)
class KafkaConnection:
    """How every client reaches the cluster: servers, TLS and SASL (``KAFKA_*`` settings)."""

    bootstrap_servers: str
    client_id: str = "engage-consumer"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None


def connection_kwargs(connection: KafkaConnection) -> dict[str, Any]:
    """aiokafka keyword arguments for bootstrap servers, TLS and SASL from the connection."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": connection.bootstrap_servers,
        "client_id": connection.client_id,
        "security_protocol": connection.security_protocol,
    }
    if connection.security_protocol in {"SSL", "SASL_SSL"}:
        # Imported here: building an SSL context is only needed for TLS listeners.
        from aiokafka.helpers import create_ssl_context  # noqa: PLC0415

        kwargs["ssl_context"] = create_ssl_context(
            cafile=connection.ssl_cafile,
            certfile=connection.ssl_certfile,
            keyfile=connection.ssl_keyfile,
        )
    if connection.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = connection.sasl_mechanism
        kwargs["sasl_plain_username"] = connection.sasl_username
        password = connection.sasl_password
        kwargs["sasl_plain_password"] = password.reveal() if password is not None else None
    return kwargs


def kafka_error_in(exc: BaseException) -> Exception | None:
    """The Kafka error that ended a run, also from inside anyio's exception groups.

    A failed transaction counts: it means the service must restart from committed state.
    """
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from consumer.errors import TransactionFailed  # noqa: PLC0415

    if isinstance(exc, KafkaError | TransactionFailed):
        error: Exception = exc
        return error
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := kafka_error_in(inner)) is not None:
                return found
    return None


async def explain_connection_failure(connection: KafkaConnection) -> str:
    """Why the clients could not connect: one sentence naming the cause and the setting to check.

    Connects to each bootstrap server as aiokafka's bootstrap does (TLS, SASL handshake and
    authentication, ApiVersions). A server that answered and refused says more than one that
    could not be reached, so its reason comes first. The password never enters the sentence:
    only the user name and the mechanism do.
    """
    from aiokafka.conn import create_conn  # noqa: PLC0415 - aiokafka is heavy to import

    kwargs = connection_kwargs(connection)
    kwargs.pop("bootstrap_servers")
    refused: list[str] = []
    unreachable: list[str] = []
    servers = [s.strip() for s in connection.bootstrap_servers.split(",") if s.strip()]
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            with anyio.fail_after(_DIAGNOSIS_TIMEOUT):
                conn = await create_conn(
                    host, int(port), request_timeout_ms=int(_DIAGNOSIS_TIMEOUT * 1000), **kwargs
                )
        except Exception as exc:  # noqa: BLE001 - every cause is explained, none is raised
            reason = describe_connection_error(server, exc, connection)
            plain_os_error = isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError)
            (unreachable if plain_os_error else refused).append(reason)
            continue
        conn.close()
    problems = refused + unreachable
    if not problems:
        return (
            "kafka connection failed at start, but a new attempt succeeded: the cluster was "
            f"briefly unreachable ({connection.bootstrap_servers})"
        )
    others = len(problems) - 1
    return problems[0] + (f" (and {others} more bootstrap servers failed)" if others else "")


def describe_connection_error(  # noqa: PLR0911 - one answer per cause reads best
    server: str, exc: BaseException, connection: KafkaConnection
) -> str:
    """One sentence for a failed connection to ``server``, naming what to check."""
    from aiokafka import errors  # noqa: PLC0415

    who = f"user {connection.sasl_username!r} with {connection.sasl_mechanism}"
    if isinstance(exc, errors.SaslAuthenticationFailed | errors.AuthenticationFailedError):
        return (
            f"kafka authentication failed for {who} at {server}: {_detail(exc)}; "
            "check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD"
        )
    if isinstance(exc, errors.UnsupportedSaslMechanismError | errors.IllegalSaslStateError):
        return (
            f"kafka refused the SASL mechanism {connection.sasl_mechanism} at {server}: "
            f"{_detail(exc)}; check KAFKA_SASL_MECHANISM"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"kafka TLS certificate verification failed at {server}: {exc.verify_message}; "
            "check KAFKA_SSL_CAFILE (the CA that signed the broker's certificate) and that the "
            "certificate names the host in KAFKA_BOOTSTRAP_SERVERS"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"kafka TLS handshake failed at {server}: {exc.reason or exc}; check that the "
            "listener speaks KAFKA_SECURITY_PROTOCOL and the KAFKA_SSL_* files"
        )
    if isinstance(exc, TimeoutError):
        return (
            f"kafka at {server} did not answer within {_DIAGNOSIS_TIMEOUT:.0f}s; check "
            "KAFKA_BOOTSTRAP_SERVERS and that KAFKA_SECURITY_PROTOCOL matches the listener"
        )
    if isinstance(exc, ConnectionResetError) and connection.security_protocol.endswith("SSL"):
        # What a PLAINTEXT listener does to a TLS hello: it drops the connection, no message.
        return (
            f"kafka at {server} closed the connection during the TLS handshake; check that "
            "KAFKA_BOOTSTRAP_SERVERS points at a TLS listener (KAFKA_SECURITY_PROTOCOL="
            f"{connection.security_protocol})"
        )
    if isinstance(exc, OSError):
        why = exc.strerror or str(exc) or type(exc).__name__
        return f"cannot connect to kafka at {server}: {why}; check KAFKA_BOOTSTRAP_SERVERS"
    return f"kafka connection to {server} failed: {_detail(exc)}"


def _detail(exc: BaseException) -> str:
    # aiokafka's errors put their class name in front of the broker's message; keep both short.
    return str(exc).strip()[:300] or type(exc).__name__
