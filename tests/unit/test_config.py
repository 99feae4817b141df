"""Settings come from the environment, every problem is reported at once, secrets stay hidden."""

import pytest

from consumer.config import Secret, load_settings
from consumer.errors import ConfigError
from consumer.events import DEFAULT_ACTION_MAP

MINIMAL = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "INPUT_TOPICS": "orders",
    "ENGAGE_BASE_URL": "https://shop.voyado.com/",
    "ENGAGE_API_KEY": "key-123456",
}


def test_minimal_environment_gives_documented_defaults() -> None:
    """Four variables are enough; the rest take their documented defaults."""
    settings = load_settings(MINIMAL)
    assert settings.input_topics == ("orders",)
    assert settings.engage_base_url == "https://shop.voyado.com"
    assert settings.engage_rate_limit == 50.0
    assert settings.kafka_security_protocol == "PLAINTEXT"
    assert dict(settings.action_map) == dict(DEFAULT_ACTION_MAP)
    assert settings.engage_api_key == Secret("key-123456")


def test_every_problem_is_reported_at_once() -> None:
    """A broken environment yields one error naming each bad variable."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "nohostport",
        "INPUT_TOPICS": "ok,bad topic",
        "ENGAGE_BASE_URL": "ftp://x",
        "ENGAGE_MAX_IN_FLIGHT": "zero",
        "ENGAGE_RATE_LIMIT": "-1",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "ACTION_MAP": "shipped=ShipIt,teleported=Beam",
        "DRAIN_TIMEOUT_SECONDS": "soon",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    text = "\n".join(caught.value.problems)
    for fragment in (
        "'nohostport' is not host:port",
        "'bad topic' is not a valid Kafka topic name",
        "ENGAGE_BASE_URL='ftp://x' must be an http(s) URL",
        "ENGAGE_API_KEY is required",
        "ENGAGE_MAX_IN_FLIGHT='zero' is not a valid int",
        "ENGAGE_RATE_LIMIT='-1' must be at least 0.1",
        "KAFKA_SASL_MECHANISM is required with SASL_SSL",
        "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required",
        "'teleported' is not a lifecycle type",
        "DRAIN_TIMEOUT_SECONDS='soon' is not a valid float",
    ):
        assert fragment in text
    assert len(caught.value.problems) == 10


def test_action_map_accepts_pairs_and_json() -> None:
    """ACTION_MAP overrides single lifecycle types, with or without the ``order.`` prefix."""
    pairs = load_settings({**MINIMAL, "ACTION_MAP": "shipped=ShipmentSent"})
    assert pairs.action_map["order.shipped"] == "ShipmentSent"
    assert pairs.action_map["order.confirmed"] == "ConfirmOrder"
    as_json = load_settings({**MINIMAL, "ACTION_MAP": '{"order.delivered": "Delivered"}'})
    assert as_json.action_map["order.delivered"] == "Delivered"


def test_secrets_never_show_in_repr() -> None:
    """Neither the API key nor the SASL password appears in the settings' repr."""
    settings = load_settings(
        {
            **MINIMAL,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "svc",
            "KAFKA_SASL_PASSWORD": "hunter2-password",
        }
    )
    text = repr(settings)
    assert "key-123456" not in text
    assert "hunter2-password" not in text
    assert settings.secrets() == ("key-123456", "hunter2-password")


def test_output_topics_must_differ_from_inputs() -> None:
    """Consuming our own results topic would loop forever, so it is refused."""
    with pytest.raises(ConfigError, match="must not be input topics"):
        load_settings({**MINIMAL, "RESULTS_TOPIC": "orders"})


def test_the_state_topic_is_named_after_the_group_and_empty_turns_it_off() -> None:
    """Two deployments on one cluster keep their order state apart unless told otherwise."""
    assert load_settings(MINIMAL).state_topic == "engage-consumer.order-state"
    assert load_settings(MINIMAL | {"KAFKA_GROUP_ID": "eu"}).state_topic == "eu.order-state"
    assert load_settings(MINIMAL | {"STATE_TOPIC": "shared.state"}).state_topic == "shared.state"
    assert load_settings(MINIMAL | {"STATE_TOPIC": ""}).state_topic is None
    with pytest.raises(ConfigError, match="STATE_TOPIC must be a topic of its own"):
        load_settings(MINIMAL | {"STATE_TOPIC": "orders"})


@pytest.mark.parametrize("value", ["nan", "NaN", "-nan", "inf", "Infinity", "-inf", "1e999"])
@pytest.mark.parametrize(
    "name", ["EVENT_DEADLINE_SECONDS", "REVISION_WAIT_SECONDS", "DRAIN_TIMEOUT_SECONDS"]
)
def test_non_finite_numbers_are_refused(name: str, value: str) -> None:
    """NaN and infinities are refused with a message naming the setting (NaN defeats minimums)."""
    with pytest.raises(ConfigError) as caught:
        load_settings({**MINIMAL, name: value})
    assert caught.value.problems == [f"{name}={value!r} must be a finite number"]
