"""Loading from the table keeps the reader's rules: blanks, case, ranges, checks across settings."""

from __future__ import annotations

import pytest

from consumer.config import load_settings
from consumer.errors import ConfigError

MINIMAL = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "INPUT_TOPICS": "orders",
    "ENGAGE_BASE_URL": "https://shop.voyado.com",
    "ENGAGE_API_KEY": "key-123456",
}


def _problems(environ: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    return caught.value.problems


def test_blank_variables_take_their_default_but_a_blank_state_topic_turns_it_off() -> None:
    """Whitespace counts as unset (a templated Deployment leaves blanks), but STATE_TOPIC=" "."""
    settings = load_settings({**MINIMAL, "RESULTS_TOPIC": "  ", "STATE_TOPIC": "  "})
    assert (settings.results_topic, settings.state_topic) == ("engage.order-outcomes", None)


def test_choices_and_flags_are_read_whatever_their_case() -> None:
    """Words match without regard to case and come back spelt as the settings spell them."""
    settings = load_settings(
        {
            **MINIMAL,
            "KAFKA_SECURITY_PROTOCOL": "ssl",
            "ENGAGE_HTTP_TRANSPORT": "HTTPX",
            "LOG_LEVEL": "debug",
            "ENGAGE_READ_EVERY_TAG": "Yes",
            "ACTION_INTENTS": "OFF",
        }
    )
    assert (
        settings.kafka_security_protocol,
        settings.engage_http_transport,
        settings.log_level,
        settings.engage_read_every_tag,
        settings.action_intents,
    ) == ("SSL", "httpx", "DEBUG", True, False)


def test_a_port_must_fit_in_sixteen_bits() -> None:
    """HTTP_PORT takes 0 (any free port) to 65535."""
    assert load_settings({**MINIMAL, "HTTP_PORT": "0"}).http_port == 0
    assert _problems({**MINIMAL, "HTTP_PORT": "65536"}) == ["HTTP_PORT=65536 is not a port"]
    assert _problems({**MINIMAL, "HTTP_PORT": "-1"}) == ["HTTP_PORT='-1' must be at least 0"]


def test_invalid_input_topics_are_still_compared_with_the_outputs() -> None:
    """A bad name among the inputs does not hide that the results topic is one of them."""
    problems = _problems({**MINIMAL, "INPUT_TOPICS": "bad topic,orders", "RESULTS_TOPIC": "orders"})
    assert problems == [
        "INPUT_TOPICS: 'bad topic' is not a valid Kafka topic name",
        "RESULTS_TOPIC and DEAD_LETTER_TOPIC must not be input topics",
    ]


def test_a_missing_required_setting_does_not_stop_the_checks_across_settings() -> None:
    """Without INPUT_TOPICS the state topic is still compared with the results topic."""
    environ = {k: v for k, v in MINIMAL.items() if k != "INPUT_TOPICS"}
    problems = _problems({**environ, "RESULTS_TOPIC": "shared", "STATE_TOPIC": "shared"})
    assert problems == [
        "INPUT_TOPICS is required (comma-separated Kafka topics to consume)",
        "STATE_TOPIC must be a topic of its own (not an input, results or dead-letter one)",
    ]


def test_a_group_id_that_makes_a_bad_state_topic_is_reported_as_the_state_topic() -> None:
    """The derived default is read as if STATE_TOPIC had been set to it."""
    assert _problems({**MINIMAL, "KAFKA_GROUP_ID": "my group"}) == [
        "STATE_TOPIC: 'my group.order-state' is not a valid Kafka topic name"
    ]


def test_the_heartbeat_must_be_shorter_than_the_session() -> None:
    """A member that beats no more often than its session lasts would be dropped."""
    environ = {**MINIMAL, "KAFKA_SESSION_TIMEOUT_MS": "3000", "KAFKA_HEARTBEAT_INTERVAL_MS": "3000"}
    assert _problems(environ) == [
        "KAFKA_HEARTBEAT_INTERVAL_MS must be below KAFKA_SESSION_TIMEOUT_MS"
    ]


def test_tls_files_must_exist() -> None:
    """A missing CA file is named at start, not at the first connection."""
    assert _problems({**MINIMAL, "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}) == [
        "KAFKA_SSL_CAFILE='/nonexistent/ca.pem': no such file"
    ]


def test_action_map_problems_are_each_named() -> None:
    """Bad JSON, a pair without '=' and an action that is no string each get their sentence."""
    (bad_json,) = _problems({**MINIMAL, "ACTION_MAP": "{shipped"})
    assert bad_json.startswith("ACTION_MAP is not valid JSON: ")
    assert _problems({**MINIMAL, "ACTION_MAP": "shipped,delivered=D"}) == [
        "ACTION_MAP: 'shipped' is not TYPE=ACTION"
    ]
    assert _problems({**MINIMAL, "ACTION_MAP": '{"shipped": 5}'}) == [
        "ACTION_MAP: action for 'shipped' must be a non-empty string"
    ]
