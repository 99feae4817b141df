from tests.unit.surface import assert_surface


def test_the_settings_surface() -> None:
    """What code outside consumer/config may use: the record, the table, the reader, the docs."""
    assert_surface(
        "consumer.config",
        [
            "GROUPS",
            "SETTINGS",
            "Group",
            "SaslMechanism",
            "Secret",
            "SecurityProtocol",
            "Setting",
            "Settings",
            "load_settings",
            "markdown_table",
            "settings_help",
            "with_table",
        ],
    )
