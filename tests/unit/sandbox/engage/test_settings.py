"""The simulator's settings: delay parsing, fault JSON, validation, and the CLI flags."""

from __future__ import annotations

import argparse
import math
import random

import pytest

from consumer.sandbox.engage.cli import add_arguments, settings_from_args
from consumer.sandbox.engage.settings import (
    Delay,
    Faults,
    SimulatorSettings,
    settings_to_argv,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.25", Delay(kind="fixed", a=0.25)),
        ("fixed:1", Delay(kind="fixed", a=1.0)),
        ("uniform:0.1,2", Delay(kind="uniform", a=0.1, b=2.0)),
        ("exponential:0.5", Delay(kind="exponential", a=0.5)),
        ("exp:0.5,3", Delay(kind="exponential", a=0.5, b=3.0)),
        (" Uniform: 0 , 0 ", Delay(kind="uniform", a=0.0, b=0.0)),
    ],
)
def test_delay_parse_accepts_each_form(text: str, expected: Delay) -> None:
    """Every documented delay spelling parses to the distribution it names."""
    assert Delay.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "gauss:1,2",
        "uniform:2,1",
        "uniform:1",
        "fixed:-1",
        "fixed:nan",
        "exponential:a",
        "fixed:1,2",
    ],
)
def test_delay_parse_rejects_malformed_text(text: str) -> None:
    """A malformed delay is a ValueError, never a silent default."""
    with pytest.raises(ValueError, match="delay"):
        Delay.parse(text)


@pytest.mark.parametrize(
    "text", ["fixed:0.2", "uniform:0.1,2", "exponential:0.5", "exponential:0.5,3"]
)
def test_delay_text_round_trips(text: str) -> None:
    """str() of a delay parses back to the same delay (flags and JSON rely on it)."""
    assert Delay.parse(str(Delay.parse(text))) == Delay.parse(text)


def test_delay_samples_stay_in_bounds() -> None:
    """Uniform draws stay in [low, high] and capped exponential draws never pass the cap."""
    rng = random.Random(7)
    uniform = [Delay.parse("uniform:0.1,0.2").sample(rng) for _ in range(500)]
    capped = [Delay.parse("exponential:1,1.5").sample(rng) for _ in range(500)]
    assert all(0.1 <= x <= 0.2 for x in uniform)
    assert all(0 <= x <= 1.5 for x in capped)
    assert max(capped) == 1.5
    assert Delay.fixed(0.3).sample(rng) == 0.3
    assert Delay.parse("exponential:0").sample(rng) == 0.0


def test_faults_json_round_trip_and_missing_means_off() -> None:
    """Faults survive JSON both ways, and an empty object means no faults at all."""
    faults = Faults(
        error_rate=0.5,
        error_status=502,
        latency=Delay.parse("uniform:0.1,0.2"),
        drop_rate=0.25,
        drop_when="after",
        outage_seconds=3.0,
        outage_mode="refuse",
    )
    assert Faults.from_json(faults.to_json()) == faults
    assert Faults.from_json({}) == Faults()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "object"),
        ({"errorRate": 2}, "error_rate"),
        ({"errorRate": "x"}, "error_rate"),
        ({"outageMode": "explode"}, "outage_mode"),
        ({"dropWhen": "never"}, "drop_when"),
        ({"latency": "gauss:1"}, "delay"),
        ({"errorStatus": 404}, "5xx"),
        ({"nonsense": 1}, "unknown fault fields: nonsense"),
    ],
)
def test_faults_from_json_rejects_bad_values(data: object, message: str) -> None:
    """Bad fault JSON raises ValueError naming the problem (the control route answers 400)."""
    with pytest.raises(ValueError, match=message):
        Faults.from_json(data)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"api_keys": ()}, "api_keys"),
        ({"api_keys": ("",)}, "api_keys"),
        ({"job_failure_rate": -0.1}, "job_failure_rate"),
        ({"job_failure_kinds": ("boom",)}, "job_failure_kinds"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_burst": 0}, "rate_burst"),
        ({"retry_after": -1}, "retry_after"),
        ({"journal_limit": 0}, "journal_limit"),
    ],
)
def test_settings_reject_bad_values(changes: dict[str, object], message: str) -> None:
    """Each impossible setting is refused at construction with its name in the message."""
    with pytest.raises(ValueError, match=message):
        SimulatorSettings(**changes)  # type: ignore[arg-type]


def _parse(argv: list[str]) -> SimulatorSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_cli_flags_reproduce_every_setting() -> None:
    """settings_to_argv and the CLI agree on every field, so a child process runs as asked."""
    settings = SimulatorSettings(
        api_keys=("k1", "k2"),
        job_delay=Delay.parse("exponential:0.2,1"),
        job_failure_rate=0.125,
        job_failure_kinds=("internal", "invalid"),
        rate_limit=50.5,
        rate_burst=7,
        retry_after=None,
        faults=Faults(
            error_rate=0.1,
            error_status=502,
            latency=Delay.fixed(0.01),
            drop_rate=0.2,
            drop_when="after",
            outage_seconds=1.5,
            outage_mode="drop",
        ),
        strict_content_type=True,
        refuse_actions_while_writing=True,
        journal_limit=99,
        job_retention=98,
        seed=42,
    )
    assert _parse(settings_to_argv(settings)) == settings


def test_cli_defaults_are_the_settings_defaults() -> None:
    """Running the command without flags gives the same simulator as SimulatorSettings()."""
    assert _parse([]) == SimulatorSettings()
    assert _parse(settings_to_argv(SimulatorSettings())) == SimulatorSettings()


def test_cli_rate_limit_zero_and_retry_after_none_switch_them_off() -> None:
    """--rate-limit 0 means no limit and --retry-after none means no Retry-After header."""
    settings = _parse(["--rate-limit", "0", "--retry-after", "none"])
    assert (settings.rate_limit, settings.retry_after) == (None, None)
    assert math.isclose(_parse(["--rate-limit", "10"]).rate_limit or 0, 10.0)
