"""The benchmark's smoke size runs end to end, so the harness cannot rot between full runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.engage
def test_smoke_benchmark_writes_a_report_of_correct_runs(tmp_path: Path) -> None:
    """`python -m bench --smoke` writes the report, plots and JSON, and every run audits clean."""
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "report.md").read_text().startswith("# Benchmark report (smoke)")
    assert (out / "throughput_vs_in_flight.png").stat().st_size > 0
    assert (out / "latency_percentiles.png").stat().st_size > 0
    data = orjson.loads((out / "report.json").read_bytes())
    labels = {run["label"] for run in data["runs"]}
    assert {"lifecycle-ours", "lifecycle-naive", "actions-ours-16", "paced-ours"} <= labels
    assert {"actions-faststream-16"} <= labels
    for run in data["runs"]:
        assert run["completed"], run["label"]
        assert run["audit"]["correct"], (run["label"], run["audit"])
        assert run["audit"]["duplicate_actions"] == 0, run["label"]
        assert run["answered"] == run["params"]["events"], run["label"]
    scale = data["scale_out"]["runs"]
    assert [run["replicas"] for run in scale] == [2]
    for run in scale:
        assert run["completed"], run["label"]
        assert run["audit"]["correct"], (run["label"], run["audit"])
        assert run["rate_limited"] == 0, run["label"]
    assert "## Scale-out under one API key" in (out / "report.md").read_text()
    delivery = data["delivery"]["modes"]
    assert {"delivery-separate", "delivery-embedded"} <= labels
    assert delivery["embedded"]["backlog"]["embedded_actions"] > 0
    assert delivery["separate"]["backlog"]["embedded_actions"] == 0
    assert (out / "delivery.png").stat().st_size > 0
    assert "## Action delivery: separate against embedded" in (out / "report.md").read_text()
    assert data["memory"]["rss"]["tracked"] == data["plan"]["memory_orders"]
    assert "run " in done.stdout  # the printed table's header
