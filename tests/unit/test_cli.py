"""The top-level help says what the service does before it lists the commands."""

import pytest

from consumer.cli import main


def test_top_level_help_says_what_the_service_does_in_two_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Under the usage: Kafka events to Engage orders, gated actions, one outcome per event."""
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    paragraphs = capsys.readouterr().out.split("\n\n")
    assert paragraphs[0].startswith("usage: engage-consumer ")
    assert paragraphs[1].splitlines() == [
        "Kafka order events -> Voyado Engage orders, each action sent only after Engage",
        "confirmed the write it depends on; one outcome per event on a results topic.",
    ]
