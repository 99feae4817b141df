"""The dashboard JSON and the alerts file as files: their panels, selectors, labels and runbooks.

No helm or promtool needed (test_rules.py has promtool parse and test them, and
tests/integration/test_dashboard.py checks every metric name against a live /metrics). Here:
the dashboard has the panels the on-call engineer looks for, every query is scoped by the
dashboard's variables, every alert has a severity, the words an alert needs and a runbook
section in the chart README, and every selector carries what the chart scopes to a release.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.helm.manifests import CHART
from tests.helm.promql import grafana_query_names, metric_names, selectors

DASHBOARD: dict[str, Any] = json.loads(
    (CHART / "dashboards" / "engage-consumer.json").read_text(encoding="utf-8")
)
RULES: dict[str, Any] = yaml.safe_load(
    (CHART / "rules" / "engage-consumer-alerts.yaml").read_text(encoding="utf-8")
)
ALERTS: list[dict[str, Any]] = [rule for group in RULES["groups"] for rule in group["rules"]]
README = (CHART / "README.md").read_text(encoding="utf-8")
VALUES: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))

#: The dashboard's matchers on every selector: the variables at its top.
SCOPE = (
    ("namespace", "=", "$namespace"),
    ("service", "=~", "$service"),
    ("pod", "=~", "$pod"),
)


def _panels() -> list[dict[str, Any]]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def test_dashboard_has_the_panels_an_operator_looks_for() -> None:
    """Overview stats, throughput, Engage, the budget, the gate, Kafka and failures, in rows."""
    rows = [panel["title"] for panel in DASHBOARD["panels"] if panel["type"] == "row"]
    assert rows == [
        "Overview",
        "Throughput",
        "Engage",
        "Rate budget",
        "Actions waiting for their write",
        "Kafka",
        "Failures",
    ]
    assert [panel["title"] for panel in _panels()] == [
        "Engage API key",
        "Outcomes / s",
        "Lag",
        "Dead letters in range",
        "Unknown actions in range",
        "Outcomes by status",
        "Events consumed by type",
        "Work in progress",
        "Engage requests by endpoint and answer",
        "Engage latency by endpoint",
        "Engage job time",
        "Retries by reason",
        "429 Too Many Requests",
        "Budget per member",
        "Budget saturation",
        "Member share",
        "Gated actions",
        "Oldest gated action age",
        "Lag per partition",
        "Commits and partitions",
        "Dead letters by reason",
        "Unknown actions",
        "Credentials refused",
    ]


def test_dashboard_panels_are_laid_out_without_overlap() -> None:
    """Unique panel ids; every panel inside the 24-column grid, no two on the same cell."""
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}
    clashes = []
    for panel in DASHBOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in taken:
                    clashes.append((panel["title"], taken[(x, y)]))
                taken[(x, y)] = panel["title"]
    assert clashes == []


def test_every_dashboard_query_reads_engage_consumer_series_of_the_chosen_release() -> None:
    """Each panel queries the data source variable; each selector is an engage_consumer_* series
    scoped by the namespace, service and pod variables."""
    unscoped = []
    for panel in _panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            found = selectors(target["expr"])
            assert found, (panel["title"], target["expr"])
            unscoped += [
                (panel["title"], s.metric)
                for s in found
                if not s.metric.startswith("engage_consumer_") or s.matchers[:3] != SCOPE
            ]
    assert unscoped == []


def test_dashboard_variables_chain_namespace_service_pod() -> None:
    """The data source, then namespace, release (Service) and pod, each read from the consumers."""
    variables = DASHBOARD["templating"]["list"]
    assert [(v["name"], v["type"]) for v in variables] == [
        ("datasource", "datasource"),
        ("namespace", "query"),
        ("service", "query"),
        ("pod", "query"),
    ]
    for variable in variables[1:]:
        assert grafana_query_names(variable["query"]) == {"engage_consumer_assigned_partitions"}


def test_every_alert_has_severity_words_and_a_runbook() -> None:
    """severity critical or warning; a summary and a description; a runbook_url whose anchor is
    the alert's own section of the chart README."""
    headings = re.findall(r"^### (EngageConsumer\w+)$", README, flags=re.MULTILINE)
    assert headings == [alert["alert"] for alert in ALERTS]
    for alert in ALERTS:
        assert alert["labels"]["severity"] in {"critical", "warning"}, alert["alert"]
        annotations = alert["annotations"]
        assert sorted(annotations) == ["description", "runbook_url", "summary"]
        assert annotations["runbook_url"] == f"README.md#{alert['alert'].lower()}"


def test_every_runbook_says_what_it_means_and_what_to_do() -> None:
    """Each runbook section gives the severity and delay, then what customers see, what to check
    and what to do."""
    section = README.split("\n## Alerts and runbooks\n", 1)[1].split("\n## ", 1)[0]
    runbooks = re.split(r"^### ", section, flags=re.MULTILINE)[1:]
    for alert, runbook in zip(ALERTS, runbooks, strict=True):
        delay = f"after {alert['for'].removesuffix('m')} minutes" if "for" in alert else "at once"
        assert runbook.startswith(f"{alert['alert']}\n\n*{alert['labels']['severity']}, "), alert
        if alert["alert"] != "EngageConsumerNoCommitProgress":  # 15 minutes of window + for 5m
            assert f"{delay}.*" in runbook, alert["alert"]
        assert re.findall(r"\*\*(\w+):\*\*", runbook) == ["Customers", "Check", "Do"], alert


def test_the_alerts_are_the_ones_that_mean_a_customer_is_affected() -> None:
    """Credentials, budget, lag, gated actions, dead letters, unknown actions, commit progress."""
    assert [(a["alert"], a["labels"]["severity"], a.get("for")) for a in ALERTS] == [
        ("EngageConsumerCredentialsRefused", "critical", "2m"),
        ("EngageConsumerRateBudgetSaturated", "warning", "10m"),
        ("EngageConsumerLagGrowing", "warning", "15m"),
        ("EngageConsumerGatedActionsStuck", "warning", "2m"),
        ("EngageConsumerDeadLetters", "warning", None),
        ("EngageConsumerUnknownActions", "warning", None),
        ("EngageConsumerNoCommitProgress", "critical", "5m"),
    ]


def test_every_alert_selector_is_one_the_chart_can_scope_to_a_release() -> None:
    """Every selector matches service="engage-consumer", which the PrometheusRule replaces."""
    loose = [
        (alert["alert"], s.metric)
        for alert in ALERTS
        for s in selectors(alert["expr"])
        if ("service", "=", "engage-consumer") not in s.matchers
        or not s.metric.startswith("engage_consumer_")
    ]
    assert loose == []
    assert all(metric_names(alert["expr"]) for alert in ALERTS)


def test_gated_action_threshold_is_the_default_job_deadline() -> None:
    """The file's "> 120" is engage.jobDeadlineSeconds' default (the chart puts in the set one)."""
    (gated,) = [a for a in ALERTS if a["alert"] == "EngageConsumerGatedActionsStuck"]
    assert gated["expr"].rstrip().endswith(f"> {VALUES['engage']['jobDeadlineSeconds']}")
    assert gated["expr"].count("> 120") == 1
