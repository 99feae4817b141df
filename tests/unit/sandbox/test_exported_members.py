from tests.unit.surface import assert_surface


def test_the_engage_simulator_surface() -> None:
    """What tests, the demo and the benchmark may use of the Engage simulator."""
    assert_surface(
        "consumer.sandbox.engage",
        [
            "Delay",
            "EngageSimulator",
            "EngageSimulatorHandle",
            "EngageSimulatorProcess",
            "Faults",
            "SimulatorSettings",
            "body_digest",
            "open_engage_simulator",
            "open_engage_simulator_process",
        ],
    )


def test_the_kafka_sandbox_surface() -> None:
    """What tests, the demo and the benchmark may use of the local broker."""
    assert_surface(
        "consumer.sandbox.kafka",
        [
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
        ],
    )
