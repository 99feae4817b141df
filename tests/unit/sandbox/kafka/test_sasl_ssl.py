"""The SASL_SSL listener's rendered config and SCRAM arguments, the throwaway CA, and the one-line
explanations of a failed Kafka connection. No broker runs here.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from aiokafka.errors import UnsupportedSaslMechanismError as UnsupportedMechanism

from consumer.config import Secret, Settings
from consumer.kafka import describe_connection_error, kafka_error_in
from consumer.sandbox.kafka.config import (
    BrokerSettings,
    ExtraListener,
    SaslSslListener,
    render_server_properties,
)
from consumer.sandbox.kafka.tls import make_throwaway_ca
from consumer.service import kafka_connection

KEYSTORE = Path("/pki/broker-keystore.pem")
SERVER = "127.0.0.1:9093"


def settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "kafka_bootstrap_servers": SERVER,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_sasl_username": "alice",
        "kafka_sasl_password": Secret("alice-password"),
        "input_topics": ("orders",),
        "engage_base_url": "http://127.0.0.1:1",
        "engage_api_key": Secret("key"),
    }
    return Settings(**(base | overrides))  # type: ignore[arg-type]


def test_sasl_ssl_listener_renders_pem_keystore_and_scram_login() -> None:
    """The listener's settings all sit under listener.name.sasl_ssl. and name the mechanism."""
    listener = SaslSslListener(keystore=KEYSTORE, users={"alice": "pw"}, port=9093).listener()
    assert listener == ExtraListener(
        name="SASL_SSL",
        security_protocol="SASL_SSL",
        port=9093,
        config={
            "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
            "listener.name.sasl_ssl.ssl.keystore.location": str(KEYSTORE),
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
        },
    )


def test_server_properties_add_the_sasl_ssl_listener_beside_plaintext() -> None:
    """PLAINTEXT stays the inter-broker listener; SASL_SSL is listened on and advertised."""
    users = {"alice": "alice-secret-pw"}
    broker = BrokerSettings(sasl_ssl=SaslSslListener(keystore=KEYSTORE, users=users))
    (listener,) = broker.listeners
    text = render_server_properties(
        port=9092,
        controller_port=9094,
        log_dir=Path("/data"),
        partitions=3,
        extra_listeners={listener.name: (listener.security_protocol, 9093)},
        extra_config=listener.config,
    )
    lines = set(text.splitlines())
    assert {
        "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9094,SASL_SSL://127.0.0.1:9093",
        "advertised.listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9093",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512",
        f"listener.name.sasl_ssl.ssl.keystore.location={KEYSTORE}",
    } <= lines
    assert "alice-secret-pw" not in text  # SCRAM logins need no password in the config


def test_scram_arguments_carry_the_salted_password_not_the_password() -> None:
    """Each user becomes one --add-scram with RFC 5802's SaltedPassword; the password is absent."""
    listener = SaslSslListener(
        keystore=KEYSTORE, users={"alice": "alice-pw", "bob": "bob-pw"}, iterations=8192
    )
    salts = {"alice": b"salt-of-alice---", "bob": b"salt-of-bob-----"}
    arguments = listener.scram_arguments(salts)

    def expected(user: str, password: str) -> str:
        salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salts[user], 8192)
        salt64, salted64 = base64.b64encode(salts[user]).decode(), base64.b64encode(salted).decode()
        return (
            f'SCRAM-SHA-512=[name={user},iterations=8192,salt="{salt64}",'
            f'saltedpassword="{salted64}"]'
        )

    assert arguments == [
        "--add-scram",
        expected("alice", "alice-pw"),
        "--add-scram",
        expected("bob", "bob-pw"),
    ]
    assert not any("alice-pw" in a or "bob-pw" in a for a in arguments)


def test_scram_sha_256_salts_with_sha_256() -> None:
    """SCRAM-SHA-256 users are salted with a 32-byte SHA-256 PBKDF2."""
    listener = SaslSslListener(keystore=KEYSTORE, users={"u": "p"}, mechanism="SCRAM-SHA-256")
    (_, argument) = listener.scram_arguments({"u": b"0123456789abcdef"})
    salted = hashlib.pbkdf2_hmac("sha256", b"p", b"0123456789abcdef", 4096)
    assert argument.endswith(f'saltedpassword="{base64.b64encode(salted).decode()}"]')
    assert len(salted) == 32


def test_listener_repr_hides_the_passwords() -> None:
    """A SaslSslListener in a log or a test failure does not show its users' passwords."""
    listener = SaslSslListener(keystore=KEYSTORE, users={"alice": "s3cr3t-pw"})
    assert "s3cr3t-pw" not in repr(listener)
    assert "s3cr3t-pw" not in repr(BrokerSettings(sasl_ssl=listener))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": {}}, "at least one user"),
        ({"users": {"a,b": "pw"}}, "SCRAM user name 'a,b'"),
        ({"users": {"alice": ""}}, "needs a non-empty password"),
        ({"users": {"alice": "pw"}, "mechanism": "PLAIN"}, "mechanism 'PLAIN'"),
        ({"users": {"alice": "pw"}, "iterations": 1000}, "at least 4096"),
    ],
)
def test_sasl_ssl_listener_refuses_bad_settings(kwargs: dict[str, object], message: str) -> None:
    """Settings Kafka's storage tool or broker would reject fail when the listener is built."""
    with pytest.raises(ValueError, match=message):
        SaslSslListener(keystore=KEYSTORE, **kwargs)  # type: ignore[arg-type]


def test_sasl_ssl_listener_name_must_not_clash_with_an_extra_listener() -> None:
    """Two listeners named SASL_SSL (an extra one and the SCRAM one) are refused."""
    clash = ExtraListener(name="SASL_SSL", security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="unique"):
        BrokerSettings(
            extra_listeners=(clash,),
            sasl_ssl=SaslSslListener(keystore=KEYSTORE, users={"alice": "pw"}),
        )


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, host: str) -> None:
    """A whole TLS handshake in memory (no socket) between the two contexts."""
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client_side = client.wrap_bio(c_in, c_out, server_hostname=host)
    server_side = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"client": False, "server": False}
    for _ in range(10):
        for name, side, out, peer_in in (
            ("client", client_side, c_out, s_in),
            ("server", server_side, s_out, c_in),
        ):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
            peer_in.write(out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_throwaway_ca_signs_a_certificate_clients_accept_for_loopback(
    tmp_path: Path, host: str
) -> None:
    """A client trusting the CA file completes TLS with the keystore for 127.0.0.1 and localhost."""
    tls = make_throwaway_ca(tmp_path)
    assert tls.keystore.read_text().startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tls.keystore)
    client = ssl.create_default_context(cafile=str(tls.ca_file))
    _handshake(server, client, host)


def test_another_throwaway_ca_is_not_trusted(tmp_path: Path) -> None:
    """Each call makes an unrelated CA: trusting the other one fails certificate verification."""
    tls = make_throwaway_ca(tmp_path / "one")
    other = make_throwaway_ca(tmp_path / "two")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tls.keystore)
    client = ssl.create_default_context(cafile=str(other.ca_file))
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server, client, "127.0.0.1")


def test_wrong_credentials_are_explained_with_the_settings_to_check() -> None:
    """A SASL authentication failure names the user, the mechanism and the two variables."""
    exc = SaslAuthenticationFailed("invalid credentials with SASL mechanism SCRAM-SHA-512")
    text = describe_connection_error(SERVER, exc, kafka_connection(settings()))
    assert text.startswith(
        f"kafka authentication failed for user 'alice' with SCRAM-SHA-512 at {SERVER}"
    )
    assert text.endswith("check KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD")
    assert "alice-password" not in text


def test_each_connection_failure_names_its_setting() -> None:
    """Mechanism, CA, plain-listener and address failures each point at the setting to fix."""
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    cases = {
        UnsupportedMechanism("no SCRAM-SHA-256 here"): "check KAFKA_SASL_MECHANISM",
        verify: "unable to get local issuer certificate; check KAFKA_SSL_CAFILE",
        ConnectionResetError(): "during the TLS handshake",
        ConnectionRefusedError(111, "Connection refused"): (
            f"cannot connect to kafka at {SERVER}: Connection refused; "
            "check KAFKA_BOOTSTRAP_SERVERS"
        ),
        TimeoutError(): "did not answer within 10s",
    }
    for exc, fragment in cases.items():
        assert fragment in describe_connection_error(SERVER, exc, kafka_connection(settings()))


def test_kafka_error_is_found_inside_exception_groups() -> None:
    """anyio wraps a start failure in exception groups; the Kafka error inside is found."""
    error: Exception = KafkaConnectionError("Unable to bootstrap")
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [error])])
    assert kafka_error_in(nested) is error
    assert kafka_error_in(ExceptionGroup("other", [ValueError("x")])) is None
    assert kafka_error_in(error) is error
