"""``load_settings``: the one reader of the environment, reporting every bad setting at once.

Each variable of the table is read by its kind; then the checks that span several settings
run (SASL needs its credentials, the output topics are not input topics, the heartbeat is
shorter than the session). Every problem is collected and ``ConfigError`` lists them all, so
an operator fixes a broken Deployment in one round trip. Imports nothing of the consumer but
the rest of ``consumer/config`` and the error tree.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from consumer.config.kinds import INVALID
from consumer.config.setting import plain
from consumer.config.table import SETTINGS
from consumer.config.values import Settings
from consumer.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from consumer.config.kinds import Report
    from consumer.config.setting import Setting


def _read(
    setting: Setting[Any], environ: Mapping[str, str], values: Mapping[str, Any], report: Report
) -> Any:  # noqa: ANN401 - the setting's own type
    """The value of one setting: parsed, its default, or (required and wrong) its stand-in."""
    given = environ.get(setting.env)
    text = None if given is None else given.strip()
    if not text:
        if text == "" and setting.empty_means_none:
            return None
        if setting.derived_from is not None:
            text = setting.derived_from.format_map(values)
        elif setting.required:
            report(f"{setting.env} is required ({plain(setting.meaning)})")
            return setting.stand_in
        else:
            return setting.default()
    parsed = setting.kind.parse(setting.env, text, report)
    if parsed is INVALID:
        return setting.stand_in if setting.required else setting.default()
    return parsed


def _check_across(settings: Settings, report: Report) -> None:
    """The rules that no single variable can break alone."""
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism is None:
            report(f"KAFKA_SASL_MECHANISM is required with {protocol}")
        if not settings.kafka_sasl_username or not settings.kafka_sasl_password:
            report(f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required with {protocol}")
    inputs = settings.input_topics
    outputs = {settings.results_topic, settings.dead_letter_topic}
    # Consuming our own results or dead letters would loop forever.
    if outputs & set(inputs):
        report("RESULTS_TOPIC and DEAD_LETTER_TOPIC must not be input topics")
    if settings.state_topic is not None and settings.state_topic in {*inputs, *outputs}:
        report("STATE_TOPIC must be a topic of its own (not an input, results or dead-letter one)")
    if settings.kafka_heartbeat_interval_ms >= settings.kafka_session_timeout_ms:
        report("KAFKA_HEARTBEAT_INTERVAL_MS must be below KAFKA_SESSION_TIMEOUT_MS")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and check every setting; raise ``ConfigError`` listing all problems at once."""
    source = os.environ if environ is None else environ
    problems: list[str] = []
    values: dict[str, Any] = {}
    # Derived defaults last: their templates name fields that must be read already.
    for setting in sorted(SETTINGS, key=lambda s: s.derived_from is not None):
        values[setting.field] = _read(setting, source, values, problems.append)
    settings = Settings(**values)
    _check_across(settings, problems.append)
    if problems:
        raise ConfigError(problems)
    return settings
