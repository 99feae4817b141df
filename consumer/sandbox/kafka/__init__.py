"""A real Apache Kafka broker on loopback for tests, the demo and the benchmark.

``open_kafka()`` resolves the broker's jars from Maven Central once (cached in
``~/.cache/engage-consumer/kafka-<version>/``), formats KRaft storage in a temporary directory,
starts one combined broker+controller JVM on free 127.0.0.1 ports and yields a ``KafkaBroker``::

    async with open_kafka() as broker:
        await broker.create_topics(["orders"], partitions=3)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers)
        ...
        await broker.restart()  # same data directory, same ports

A SASL_SSL listener (SCRAM over TLS, as production clusters run it) sits beside PLAINTEXT when
asked for, with a certificate from a throwaway CA (``kafka_tls``, needs the dev dependency
``cryptography``)::

    tls = make_throwaway_ca(directory)
    listener = SaslSslListener(keystore=tls.keystore, users={"alice": password})
    async with open_kafka(BrokerSettings(sasl_ssl=listener)) as broker:
        broker.listener_address("SASL_SSL")  # clients trust tls.ca_file

``engage-consumer sandbox kafka`` runs the same broker until Ctrl-C or SIGTERM.
``ensure_kafka_jars()`` alone gives the cached jars (``.classpath`` also holds Kafka's tools),
and ``broker.tool_command("org.apache.kafka.tools.ConsumerPerformance", ...)`` runs one.

Version: Kafka 4.4.0, the newest 4.x on Maven Central when written, pinned in ``kafka_jars``.
Kafka 4.0 removed the protocol versions that clients older than Kafka 2.1 spoke (KIP-896);
aiokafka 0.14 picks each request's version from the broker's ApiVersions answer, and
tests/integration/test_kafka_sandbox.py checks that every request aiokafka ships still has a
version 4.4.0 accepts, then runs produce, consume in a group, commit and a transactional produce
(read_committed sees the commits, not the abort) against it. Nothing needed pinning back.

Start time, measured here (2 shared cores, JDK 17.0.15, other jobs keeping the load at 3 to 6),
from ``open_kafka()`` to the first answered metadata request, as printed by
``engage-consumer sandbox kafka``: warm (jars and class archive cached) 1.9 to 3.5 s, median
3.2 s, of which formatting KRaft storage (a JVM of its own) is about 1.1 s and a restart on an
existing directory about 2.4 s; stop 0.4 s. Cold (empty ~/.m2 and cache: Maven downloads 92 jars,
54 MB) 18 s; the first stop then takes 2.6 s while the JVM writes the class archive (kafka_cds).
"""

from consumer.sandbox.kafka.broker import KafkaBroker
from consumer.sandbox.kafka.config import BrokerSettings, ExtraListener, SaslSslListener
from consumer.sandbox.kafka.jars import KAFKA_VERSION, ResolvedJars, cache_root, ensure_kafka_jars
from consumer.sandbox.kafka.launcher import open_kafka
from consumer.sandbox.kafka.read import read_topic
from consumer.sandbox.kafka.tls import TlsFiles, make_throwaway_ca

__all__ = [
    "KAFKA_VERSION",
    "BrokerSettings",
    "ExtraListener",
    "KafkaBroker",
    "ResolvedJars",
    "SaslSslListener",
    "TlsFiles",
    "cache_root",
    "ensure_kafka_jars",
    "make_throwaway_ca",
    "open_kafka",
    "read_topic",
]
