from tests.unit.surface import assert_surface


def test_the_engage_client_surface() -> None:
    """What code outside consumer/engage may use of the Engage client."""
    assert_surface(
        "consumer.engage",
        [
            "EMBEDDED_ACTION_FIELD",
            "NO_CONTACT_CODES",
            "ActionResult",
            "BeforeSend",
            "CallKind",
            "EmbeddedReport",
            "EmbeddedResult",
            "EmbeddedRider",
            "EngageClient",
            "EngageClientSettings",
            "JobRef",
            "JobResult",
            "Meter",
            "OpenGate",
            "OrderState",
            "RequestGate",
            "RequestObserver",
            "SendGuard",
            "StepRunner",
            "WriteConfirmation",
            "WriteMethod",
            "action_rejection_reason",
            "embedded_action",
            "open_engage_client",
            "parse_retry_after",
            "run_once",
        ],
    )
