"""The README's first command: `engage-consumer demo` runs end to end and its checks pass."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.engage]


def test_a_small_demo_runs_and_agrees_with_the_journal() -> None:
    """Its own broker and simulator, 20 orders: every check is `ok` and the exit status 0."""
    done = subprocess.run(
        [sys.executable, "-m", "consumer.cli", "demo", "--orders", "20", "--partitions", "2"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    for check in (
        "every event has an outcome",
        "every action carried its write's versionTag",
        "actions reached Engage in each order's stream order",
        "no action was sent twice",
        "invalid records were dead-lettered",
    ):
        assert f"ok   {check}" in output, output[-3000:]
    assert "FAIL" not in output
