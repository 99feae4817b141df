"""`results` and `replay` refuse bad flags and settings before touching Kafka (exit status 2)."""

from __future__ import annotations

import os

import pytest

from consumer import cli
from consumer.commands._operator import load_kafka_settings
from consumer.errors import ConfigError


@pytest.fixture(autouse=True)
def _no_kafka_or_engage_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a shell with none of the consumer's variables."""
    for name in list(os.environ):
        if name.startswith(("KAFKA_", "ENGAGE_", "RESULTS_", "DEAD_LETTER_", "INPUT_")):
            monkeypatch.delenv(name)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and standard error of the command line (argparse exits; we return)."""
    try:
        status = cli.main(argv)
    except SystemExit as exc:
        status = int(exc.code or 0)
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["results", "--status", "lost"], "lost: not a status"),
        (["results", "--since", "yesterday"], "neither an ISO time"),
        (["results", "--since", "1h", "--until", "2h"], "--since must be before --until"),
        (["results", "--follow", "--until", "1h"], "--follow reads on past any --until"),
        (["replay", "--status", "failed,lost"], "lost: not a status"),
        (["replay", "--partition", "x"], "'x' is not a non-negative integer"),
        (["replay", "--partition", "1"], "--partition needs --topic"),
        (["replay", "--from-offset", "5"], "--from-offset and --to-offset need --topic and"),
        (
            [
                "replay",
                "--topic",
                "t",
                "--partition",
                "0",
                "--from-offset",
                "9",
                "--to-offset",
                "3",
            ],
            "--from-offset must not be above --to-offset",
        ),
        (["replay", "--reason", ","], "name at least one"),
    ],
)
def test_bad_flags_exit_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """argparse's own checks and the command's checks of flags together."""
    status, err = run(argv, capsys)
    assert status == 2
    assert message in err


@pytest.mark.parametrize("command", ["results", "replay"])
def test_missing_kafka_settings_exit_2_and_nothing_about_engage(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only what the command uses is asked for: no Engage key, no input topics."""
    status, err = run([command], capsys)
    assert status == 2
    assert "KAFKA_BOOTSTRAP_SERVERS is required" in err
    assert "ENGAGE" not in err
    assert "INPUT_TOPICS" not in err


def test_the_copies_cannot_go_to_an_output_topic(capsys: pytest.CaptureFixture[str]) -> None:
    """Replaying into the results or dead-letter topic would feed the consumer's own output."""
    argv = ["replay", "--bootstrap-servers", "localhost:1", "--to-topic", "engage.order-outcomes"]
    status, err = run(argv, capsys)
    assert (status, err) == (
        2,
        "engage-consumer replay: error: --to-topic must be an input topic, not an output topic\n",
    )


def test_flags_override_the_environment_and_the_client_says_which_tool() -> None:
    """``--bootstrap-servers`` and ``--topic`` win; the client id names the command."""
    environ = {
        "KAFKA_BOOTSTRAP_SERVERS": "env-host:9092",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "alice",
        "KAFKA_SASL_PASSWORD": "s3cret",
        "RESULTS_TOPIC": "env.results",
        "ENGAGE_MAX_IN_FLIGHT": "many",  # wrong, but not read: results never calls Engage
    }
    settings, connection = load_kafka_settings(
        command="results",
        overrides={"KAFKA_BOOTSTRAP_SERVERS": "flag-host:9093", "RESULTS_TOPIC": None},
        environ=environ,
    )
    assert (settings.results_topic, connection.bootstrap_servers, connection.client_id) == (
        "env.results",
        "flag-host:9093",
        "engage-consumer-results",
    )
    assert (connection.security_protocol, connection.sasl_username) == ("SASL_SSL", "alice")
    assert "s3cret" in settings.secrets()


def test_every_bad_kafka_setting_is_reported_at_once() -> None:
    """The consumer's own reader: the same messages as for `run`."""
    with pytest.raises(ConfigError) as caught:
        load_kafka_settings(
            command="replay",
            overrides={},
            environ={"KAFKA_BOOTSTRAP_SERVERS": "nohost", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
        )
    problems = "\n".join(caught.value.problems)
    assert "'nohost' is not host:port" in problems
    assert "KAFKA_SASL_MECHANISM is required with SASL_SSL" in problems
