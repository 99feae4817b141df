from tests.unit.surface import assert_surface


def test_the_service_surface() -> None:
    """What the commands, the demo and the tests may use of the running service."""
    assert_surface(
        "consumer.service",
        [
            "CallGate",
            "DispatchResult",
            "DispatchSettings",
            "Dispatcher",
            "PipelineSettings",
            "Service",
            "consumer_settings",
            "dispatch_settings",
            "engage_client_settings",
            "kafka_connection",
            "open_dispatcher",
            "pipeline_settings",
            "serve",
        ],
    )
