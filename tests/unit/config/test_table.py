"""The table of settings covers ``Settings`` exactly, and what it documents is what loads."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from consumer.config import GROUPS, SETTINGS, Secret, Setting, Settings, load_settings
from consumer.config.docs import default_text

MINIMAL = {
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "INPUT_TOPICS": "orders",
    "ENGAGE_BASE_URL": "https://shop.voyado.com",
    "ENGAGE_API_KEY": "key-123456",
}


def test_every_field_of_settings_is_filled_by_exactly_one_variable() -> None:
    """No field is left without a variable, none has two, and no variable names a non-field."""
    assert sorted(s.field for s in SETTINGS) == sorted(f.name for f in dataclasses.fields(Settings))
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)
    assert [s for group in GROUPS for s in group.settings] == list(SETTINGS)


def test_the_required_settings_are_those_without_a_default_and_each_has_a_stand_in() -> None:
    """Required is read from Settings; each required setting says what stands in while missing."""
    required = [s.env for s in SETTINGS if s.required]
    assert required == [
        "KAFKA_BOOTSTRAP_SERVERS",
        "INPUT_TOPICS",
        "ENGAGE_BASE_URL",
        "ENGAGE_API_KEY",
    ]
    assert [s.env for s in SETTINGS if s.stand_in is not None] == required


def test_the_secrets_are_the_secret_fields_and_have_no_default_to_show() -> None:
    """The API key and the SASL password are Secrets; neither has a default that could leak."""
    secrets = [s for s in SETTINGS if s.secret]
    assert [s.env for s in secrets] == ["KAFKA_SASL_PASSWORD", "ENGAGE_API_KEY"]
    assert [default_text(s) for s in secrets] == [None, None]
    settings = load_settings({**MINIMAL, "KAFKA_SASL_PASSWORD": "hunter2-password"})
    assert isinstance(settings.engage_api_key, Secret)
    assert isinstance(settings.kafka_sasl_password, Secret)


def _written_defaults() -> list[Setting[Any]]:
    """The settings whose documented default is a value one could set (not a template)."""
    return [
        s
        for s in SETTINGS
        if default_text(s) is not None and s.derived_from is None and s.shown_default is None
    ]


@pytest.mark.parametrize("setting", _written_defaults(), ids=lambda s: s.env)
def test_each_documented_default_loads_as_the_default(setting: Setting[Any]) -> None:
    """Setting a variable to the default the docs show changes nothing: the docs are true."""
    text = default_text(setting)
    assert text is not None
    assert load_settings({**MINIMAL, setting.env: text}) == load_settings(MINIMAL)


def test_the_derived_default_follows_the_settings_default_of_its_template() -> None:
    """STATE_TOPIC's template over the group id gives Settings' own default for the field."""
    (state,) = [s for s in SETTINGS if s.derived_from is not None]
    assert state.env == "STATE_TOPIC"
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert state.derived_from is not None
    assert state.derived_from.format_map(defaults) == defaults["state_topic"]


def test_the_shown_defaults_stand_for_what_settings_holds() -> None:
    """A default written as a placeholder is the Settings default with its part filled in."""
    (agent,) = [s for s in SETTINGS if s.shown_default is not None]
    assert agent.shown_default is not None
    from consumer import __version__  # noqa: PLC0415 - only this test needs it

    assert agent.shown_default.replace("<version>", __version__) == agent.default()


def test_meanings_are_one_ascii_line() -> None:
    """The help prints on any terminal, and each meaning fits the table's one row."""
    wrong = [s.env for s in SETTINGS if "\n" in s.meaning or not s.meaning.isascii()]
    assert wrong == []
