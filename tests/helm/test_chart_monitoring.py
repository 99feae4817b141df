"""The chart's optional Grafana dashboard ConfigMap and PrometheusRule, as helm renders them.

Both are off by default and on in the all-features variant. The dashboard ConfigMap carries the
sidecar's label and the dashboard file byte for byte; the PrometheusRule is the alerts file with
its selectors scoped to the release, the configured job deadline, the runbook base URL and the
extra alert labels, and nothing else changed (test_rules.py has promtool check what it renders).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.helm.manifests import (
    CHART,
    NAMESPACE,
    RELEASE,
    dashboards,
    of_kind,
    one,
)

if TYPE_CHECKING:
    from tests.helm.conftest import Render
    from tests.helm.helm_tool import Helm
    from tests.helm.manifests import Manifest

pytestmark = [pytest.mark.helm, pytest.mark.timeout(1800)]  # the first test may build helm

FULLNAME = f"{RELEASE}-engage-consumer"
DASHBOARD_TEXT = (CHART / "dashboards" / "engage-consumer.json").read_text(encoding="utf-8")
RULES: dict[str, Any] = yaml.safe_load(
    (CHART / "rules" / "engage-consumer-alerts.yaml").read_text(encoding="utf-8")
)
RUNBOOKS = "https://git.example.com/shop/engage-consumer/-/blob/main/helm/engage-consumer/README.md"


def _render(helm: Helm, *set_values: str) -> list[Manifest]:
    run = helm.template(
        CHART,
        values=[CHART / "ci" / "defaults-values.yaml"],
        set_values=list(set_values),
        release=RELEASE,
        namespace=NAMESPACE,
    )
    assert run.returncode == 0, run.stderr
    return run.manifests()


@pytest.mark.parametrize("variant", ["defaults", "existing-secret", "sasl"])
def test_dashboard_and_rules_are_off_by_default(render: Render, variant: str) -> None:
    """Without the values that enable them, no dashboard ConfigMap and no PrometheusRule."""
    manifests = render(variant)
    assert (dashboards(manifests), of_kind(manifests, "PrometheusRule")) == ([], [])


def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar(render: Render) -> None:
    """The dashboard file, as it is and valid JSON, in a ConfigMap with grafana_dashboard: "1"."""
    (dashboard,) = dashboards(render("all-features"))
    metadata = dashboard["metadata"]
    assert (metadata["name"], metadata["namespace"]) == (f"{FULLNAME}-dashboard", "monitoring")
    assert metadata["labels"]["grafana_dashboard"] == "1"
    assert metadata["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert metadata["annotations"] == {"grafana_folder": "Commerce"}
    assert list(dashboard["data"]) == ["engage-consumer.json"]
    assert dashboard["data"]["engage-consumer.json"] == DASHBOARD_TEXT.strip()
    assert json.loads(dashboard["data"]["engage-consumer.json"])["uid"] == "engage-consumer"


def test_dashboard_label_and_namespace_can_be_set(helm: Helm) -> None:
    """Another sidecar label and value (kube-prometheus-stack's own, say), the release namespace."""
    manifests = _render(
        helm,
        "grafanaDashboard.enabled=true",
        "grafanaDashboard.label=dashboards",
        "grafanaDashboard.labelValue=engage",
    )
    (dashboard,) = dashboards(manifests)
    assert dashboard["metadata"]["namespace"] == NAMESPACE
    assert dashboard["metadata"]["labels"]["dashboards"] == "engage"
    assert "grafana_dashboard" not in dashboard["metadata"]["labels"]
    assert "annotations" not in dashboard["metadata"]


def _expected_rules(
    *, deadline: str, runbooks: str, extra_labels: dict[str, str]
) -> list[dict[str, Any]]:
    """The alerts file's groups as the chart should hand them to the Operator."""
    scope = f'namespace="{NAMESPACE}", service="{FULLNAME}"'
    groups = []
    for group in RULES["groups"]:
        rules = []
        for rule in group["rules"]:
            expr = rule["expr"].replace('service="engage-consumer"', scope)
            if rule["alert"] == "EngageConsumerGatedActionsStuck":
                expr = expr.replace("> 120", f"> {deadline}")
            anchor = rule["annotations"]["runbook_url"].split("#")[1]
            rules.append(
                {
                    **rule,
                    "expr": expr,
                    "labels": {**extra_labels, **rule["labels"]},
                    "annotations": {**rule["annotations"], "runbook_url": f"{runbooks}#{anchor}"},
                }
            )
        groups.append({**group, "rules": rules})
    return groups


def test_prometheus_rule_is_the_alerts_file_scoped_to_the_release(render: Render) -> None:
    """Each alert's selectors name the release's namespace and Service; the runbook URLs point at
    the published README; ruleLabels join each alert; everything else is the file's."""
    rule = one(render("all-features"), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert (rule["metadata"]["name"], rule["metadata"]["namespace"]) == (FULLNAME, "monitoring")
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["spec"] == {
        "groups": _expected_rules(
            deadline="120", runbooks=RUNBOOKS, extra_labels={"team": "commerce"}
        )
    }


def test_prometheus_rule_follows_the_job_deadline_and_defaults(helm: Helm) -> None:
    """With defaults: the release namespace, runbook_url README.md#…, the set job deadline."""
    manifests = _render(helm, "prometheusRule.enabled=true", "engage.jobDeadlineSeconds=300")
    rule = one(manifests, "PrometheusRule")
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["spec"] == {
        "groups": _expected_rules(deadline="300", runbooks="README.md", extra_labels={})
    }


def test_a_rule_label_never_overrides_an_alerts_severity(helm: Helm) -> None:
    """ruleLabels add to the alerts' labels; the alerts' own severity stays."""
    manifests = _render(
        helm, "prometheusRule.enabled=true", "prometheusRule.ruleLabels.severity=page"
    )
    severities = [
        r["labels"]["severity"]
        for r in one(manifests, "PrometheusRule")["spec"]["groups"][0]["rules"]
    ]
    assert severities == [r["labels"]["severity"] for r in RULES["groups"][0]["rules"]]
