"""A throwaway certificate authority for the local broker's TLS listener.

``make_throwaway_ca(directory)`` writes a fresh CA and a broker certificate for ``127.0.0.1`` and
``localhost`` signed by it, valid for a day: the CA certificate is what clients trust
(``KAFKA_SSL_CAFILE``), the keystore is what the broker serves (``ssl.keystore.type=PEM``). Each
call makes a new, unrelated CA, so a second call gives a test the "wrong CA" to trust.

Needs the ``cryptography`` package (a dev dependency): the service itself never makes
certificates, so it is imported only here and only when called.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from consumer.sandbox.errors import MissingToolError

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True, kw_only=True, slots=True)
class TlsFiles:
    """The files of one throwaway CA, all PEM."""

    #: the CA certificate: what clients trust (``KAFKA_SSL_CAFILE``)
    ca_file: Path
    #: the broker's unencrypted PKCS#8 key followed by its certificate (``ssl.keystore.location``)
    keystore: Path


def make_throwaway_ca(
    directory: Path,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 1,
    name: str = "engage-consumer test CA",
) -> TlsFiles:
    """Write a new CA and a server certificate for ``hosts`` (IPs or DNS names) into ``directory``.

    Keys are ECDSA P-256: generating one takes a millisecond, where RSA 2048 takes about a
    hundred, and both the JDK and OpenSSL speak it.

    Raises:
        MissingToolError: the ``cryptography`` package is not installed.
    """
    try:
        from cryptography import x509  # noqa: PLC0415 - dev-only dependency, imported when used
        from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: PLC0415
    except ImportError as exc:
        raise MissingToolError(
            "making a throwaway CA for the TLS listener needs the `cryptography` package: "
            "install the dev extras (`pip install -e .[dev]`) or `pip install cryptography`"
        ) from exc

    now = dt.datetime.now(dt.UTC)
    # Backdated a little: a JVM whose clock runs a second behind would call the cert not yet valid.
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # Python's ssl checks the host against the SAN only; the CN above is for people.
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    directory.mkdir(parents=True, exist_ok=True)
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    keystore = directory / "broker-keystore.pem"
    # Kafka's PEM keystore reads an unencrypted key only in PKCS#8 form ("BEGIN PRIVATE KEY").
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    keystore.write_bytes(key_pem + server_cert.public_bytes(serialization.Encoding.PEM))
    keystore.chmod(0o600)
    return TlsFiles(ca_file=ca_file, keystore=keystore)
