"""The chart's alerts and dashboard queries, checked by Prometheus's own promtool.

``promtool check rules`` parses, type-checks and lints the plain rules file and the rules the
PrometheusRule renders from it; ``promtool test rules`` runs ``alerts-test.yaml``, which makes
every alert fire on the series that should fire it and stay quiet on the ones that should not.
The dashboard's queries go through the same parser as recording rules, with Grafana's variables
filled in. promtool is built once per machine (the ``promtool`` fixture); without Go these tests
fail saying how to get it.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.helm.manifests import CHART, NAMESPACE, RELEASE, one

if TYPE_CHECKING:
    from pathlib import Path

    from tests.helm.conftest import Render
    from tests.helm.helm_tool import Helm
    from tests.helm.promtool_tool import Promtool

pytestmark = [pytest.mark.helm, pytest.mark.timeout(1800)]  # the first test may build promtool

RULES = CHART / "rules" / "engage-consumer-alerts.yaml"
ALERT_TESTS = CHART.parents[1] / "tests" / "helm" / "alerts-test.yaml"
DASHBOARD = CHART / "dashboards" / "engage-consumer.json"
#: What Grafana puts in for its variables, as far as the parser cares.
GRAFANA_VARIABLES = {
    "$__rate_interval": "2m",
    "$__range": "6h",
    "$namespace": "commerce",
    "$service": "shop-engage-consumer",
    "$pod": ".*",
}


def _alert_names(groups: list[dict[str, Any]]) -> list[str]:
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_file_passes_promtool_check(promtool: Promtool) -> None:
    """The plain rules file parses, its expressions type-check, and the linter finds nothing."""
    run = promtool.check_rules(RULES)
    assert run.returncode == 0, run.output
    assert "SUCCESS: 7 rules found" in run.output


def test_every_alert_fires_when_it_should_and_only_then(promtool: Promtool) -> None:
    """promtool test rules: every case of alerts-test.yaml passes."""
    run = promtool.test_rules(ALERT_TESTS, cwd=ALERT_TESTS.parent)
    assert run.returncode == 0, run.output
    assert "SUCCESS" in run.output


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """Each alert of the rules file is expected to fire somewhere and expected quiet somewhere."""
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    tests = yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))
    assert tests["rule_files"] == [f"../../{RULES.relative_to(CHART.parents[1])}"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = set(_alert_names(rules["groups"]))
    assert (firing, quiet) == (alerts, alerts)


def test_rendered_prometheus_rule_passes_promtool_check(
    helm: Helm, promtool: Promtool, tmp_path: Path
) -> None:
    """What the PrometheusRule hands the Operator is valid rules too, with the job deadline set."""
    run = helm.template(
        CHART,
        values=[CHART / "ci" / "defaults-values.yaml"],
        set_values=["prometheusRule.enabled=true", "engage.jobDeadlineSeconds=300"],
        release=RELEASE,
        namespace=NAMESPACE,
    )
    assert run.returncode == 0, run.stderr
    spec = one(run.manifests(), "PrometheusRule")["spec"]
    rendered = tmp_path / "rendered-rules.yaml"
    rendered.write_text(yaml.safe_dump(spec), encoding="utf-8")
    check = promtool.check_rules(rendered)
    assert check.returncode == 0, check.output
    (gated,) = [
        rule
        for rule in spec["groups"][0]["rules"]
        if rule["alert"] == "EngageConsumerGatedActionsStuck"
    ]
    assert gated["expr"].rstrip().endswith("> 300")


def test_all_features_prometheus_rule_passes_promtool_check(
    render: Render, promtool: Promtool, tmp_path: Path
) -> None:
    """The all-features variant's rules (ruleLabels, a runbook URL) are valid rules too."""
    spec = one(render("all-features"), "PrometheusRule")["spec"]
    rendered = tmp_path / "all-features-rules.yaml"
    rendered.write_text(yaml.safe_dump(spec), encoding="utf-8")
    check = promtool.check_rules(rendered)
    assert check.returncode == 0, check.output


def _dashboard_queries() -> list[str]:
    """The expression of every query of every panel."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_dashboard_queries_pass_promtool_check(promtool: Promtool, tmp_path: Path) -> None:
    """Every panel's query, Grafana's variables filled in, is PromQL that Prometheus accepts."""
    rules = []
    for index, expr in enumerate(_dashboard_queries()):
        filled = re.sub(r"\$\w+", lambda m: GRAFANA_VARIABLES.get(m.group(), m.group()), expr)
        rules.append({"record": f"dashboard:query_{index}", "expr": filled})
    file = tmp_path / "dashboard-queries.yaml"
    file.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    run = promtool.check_rules(file)
    assert run.returncode == 0, run.output
    assert f"SUCCESS: {len(rules)} rules found" in run.output
