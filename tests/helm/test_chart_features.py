"""The chart's optional parts: KEDA and HPA scaling, PDB, ServiceMonitor, NetworkPolicy, helm test.

ScaledObject, TriggerAuthentication and ServiceMonitor are CRDs, outside Kubernetes' own schemas,
so their key fields are asserted here whole; the others are also schema-checked by
test_chart_render. Renders come from the session's one `helm template` per ci variant.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from tests.helm.manifests import (
    CHART,
    NAMESPACE,
    RELEASE,
    consumer_container,
    of_kind,
    one,
    settings_of,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.helm.conftest import Render
    from tests.helm.helm_tool import Helm

pytestmark = [pytest.mark.helm, pytest.mark.timeout(1800)]  # the first test may build helm

FULLNAME = f"{RELEASE}-engage-consumer"
SELECTOR = {"app.kubernetes.io/name": "engage-consumer", "app.kubernetes.io/instance": RELEASE}
DEPLOYMENT_REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": FULLNAME}


def test_keda_scales_on_the_backlog_more_replicas_could_speed_up(render: Render) -> None:
    """The default trigger: KEDA asks Prometheus for the release's engage_consumer_scalable_backlog
    (0 while the shared budget binds), and a lost target is an error, not zero."""
    manifests = render("all-features")
    scaled = one(manifests, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"] == {
        "scaleTargetRef": DEPLOYMENT_REF,
        "minReplicaCount": 1,
        "maxReplicaCount": 12,
        "pollingInterval": 30,
        "cooldownPeriod": 300,
        "advanced": {
            "horizontalPodAutoscalerConfig": {
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}
            }
        },
        "triggers": [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": "http://prometheus-operated.monitoring:9090",
                    "query": (
                        "sum(engage_consumer_scalable_backlog"
                        f'{{namespace="{NAMESPACE}",service="{FULLNAME}"}})'
                    ),
                    "threshold": "200",
                    "activationThreshold": "10",
                    "ignoreNullValues": "false",
                },
            }
        ],
    }
    # The series the query sums is scraped from the Service of that name.
    assert one(manifests, "Service")["metadata"]["name"] == FULLNAME
    assert of_kind(manifests, "ServiceMonitor")
    # KEDA owns the replica count: the Deployment must not reset it on every upgrade.
    assert "replicas" not in one(manifests, "Deployment")["spec"]
    # Prometheus needs no Kafka credentials.
    assert of_kind(manifests, "TriggerAuthentication") == []


def _with_kafka_trigger(helm: Helm) -> list[dict[str, Any]]:
    run = helm.template(
        CHART,
        values=[CHART / "ci" / "all-features-values.yaml"],
        set_values=["autoscaling.keda.trigger=kafka"],
    )
    assert run.returncode == 0, run.stderr
    return run.manifests()


def test_keda_can_scale_on_consumer_group_lag(helm: Helm) -> None:
    """The kafka trigger reads the consumer's own group and brokers over SASL_SSL."""
    manifests = _with_kafka_trigger(helm)
    settings = settings_of(manifests)
    assert one(manifests, "ScaledObject")["spec"]["triggers"] == [
        {
            "type": "kafka",
            "metadata": {
                "bootstrapServers": settings["KAFKA_BOOTSTRAP_SERVERS"],
                "consumerGroup": settings["KAFKA_GROUP_ID"],
                "lagThreshold": "500",
                "activationLagThreshold": "10",
                "offsetResetPolicy": "latest",
                "allowIdleConsumers": "false",
                "excludePersistentLag": "true",
                "sasl": "scram_sha512",
                "tls": "enable",
            },
            "authenticationRef": {"name": FULLNAME},
        }
    ]
    assert settings["KAFKA_GROUP_ID"] == "engage-consumer-prod"
    # KEDA's Kafka scaler authenticates with the consumer's SASL credentials and CA.
    auth = one(manifests, "TriggerAuthentication")
    assert auth["metadata"]["name"] == FULLNAME
    secret = one(manifests, "Secret")
    assert auth["spec"] == {
        "secretTargetRef": [
            {"parameter": "username", "name": FULLNAME, "key": "KAFKA_SASL_USERNAME"},
            {"parameter": "password", "name": FULLNAME, "key": "KAFKA_SASL_PASSWORD"},
            {"parameter": "ca", "name": "kafka-cluster-ca", "key": "ca.crt"},
        ]
    }
    assert {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"} <= secret["data"].keys()


def test_keda_prometheus_query_and_authentication_can_be_given(helm: Helm) -> None:
    """An operator's own query (another label scheme) and TriggerAuthentication are used as is."""
    query = 'sum(engage_consumer_scalable_backlog{app="shop"})'
    run = helm.template(
        CHART,
        values=[CHART / "ci" / "all-features-values.yaml"],
        set_values=[
            f"autoscaling.keda.prometheus.query={query}",
            "autoscaling.keda.prometheus.authenticationRef=prometheus-bearer",
        ],
    )
    assert run.returncode == 0, run.stderr
    trigger = one(run.manifests(), "ScaledObject")["spec"]["triggers"][0]
    assert trigger["metadata"]["query"] == query
    assert trigger["authenticationRef"] == {"name": "prometheus-bearer"}


def test_keda_with_existing_secret_and_one_topic(render: Render) -> None:
    """SASL PLAIN from an existing Secret, one topic, scale to zero; no CA (system trust)."""
    manifests = render("sasl")
    trigger = one(manifests, "ScaledObject")["spec"]["triggers"][0]
    assert trigger["metadata"] == {
        "bootstrapServers": "pkc-0000.europe-west1.gcp.confluent.cloud:9092",
        "consumerGroup": "engage-consumer",
        "topic": "orders.lifecycle",
        "lagThreshold": "1000",
        "activationLagThreshold": "0",
        "offsetResetPolicy": "latest",
        "allowIdleConsumers": "false",
        "excludePersistentLag": "false",
        "sasl": "plaintext",
        "tls": "enable",
    }
    assert one(manifests, "ScaledObject")["spec"]["minReplicaCount"] == 0
    name = "engage-consumer-credentials"
    assert one(manifests, "TriggerAuthentication")["spec"] == {
        "secretTargetRef": [
            {"parameter": "username", "name": name, "key": "sasl-username"},
            {"parameter": "password", "name": name, "key": "sasl-password"},
        ]
    }


@pytest.mark.parametrize("variant", ["all-features", "sasl"])
def test_keda_never_exceeds_the_partitions(render: Render, variant: str) -> None:
    """maxReplicaCount stays within the partitions the chart was told about."""
    values = yaml.safe_load((CHART / "ci" / f"{variant}-values.yaml").read_text(encoding="utf-8"))
    scaled = one(render(variant), "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] <= values["kafka"]["partitions"]


def test_hpa_alternative(render: Render) -> None:
    """The HPA variant scales the Deployment on CPU, slowly downwards, and renders no KEDA."""
    manifests = render("existing-secret")
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"] == {
        "scaleTargetRef": DEPLOYMENT_REF,
        "minReplicas": 2,
        "maxReplicas": 6,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70},
                },
            }
        ],
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": 300,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
            }
        },
    }
    assert of_kind(manifests, "ScaledObject") == []
    assert "replicas" not in one(manifests, "Deployment")["spec"]


@pytest.mark.parametrize(
    ("variant", "budget"),
    [("defaults", {"maxUnavailable": 1}), ("all-features", {"minAvailable": 1})],
)
def test_pod_disruption_budget(render: Render, variant: str, budget: dict[str, int]) -> None:
    """The PDB lets one pod go at a time (or keeps one up); a broken pod never blocks a drain."""
    pdb = one(render(variant), "PodDisruptionBudget")
    assert pdb["spec"] == {
        "selector": {"matchLabels": SELECTOR},
        **budget,
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


def test_service_monitor_scrapes_the_metrics_port(render: Render) -> None:
    """The ServiceMonitor selects the metrics Service and scrapes /metrics on its http port."""
    manifests = render("all-features")
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"] == {
        "jobLabel": "app.kubernetes.io/name",
        "selector": {"matchLabels": SELECTOR},
        "namespaceSelector": {"matchNames": [NAMESPACE]},
        "endpoints": [
            {
                "port": "http",
                "path": "/metrics",
                "interval": "15s",
                "scrapeTimeout": "5s",
                "honorLabels": False,
                "metricRelabelings": [
                    {"action": "drop", "regex": "process_.*", "sourceLabels": ["__name__"]}
                ],
            }
        ],
    }
    assert service["metadata"]["labels"].items() >= SELECTOR.items()
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]


def test_network_policy_allows_only_kafka_engage_and_dns(render: Render) -> None:
    """Egress goes to the brokers, Engage on 443 and DNS; ingress only to http from the scrapers."""
    policy = one(render("all-features"), "NetworkPolicy")
    private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
    assert policy["spec"] == {
        "podSelector": {"matchLabels": SELECTOR},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [
            {
                "ports": [{"port": "http", "protocol": "TCP"}],
                "from": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "monitoring"}
                        }
                    },
                    {
                        "podSelector": {
                            "matchLabels": {
                                "app.kubernetes.io/name": "engage-consumer-test",
                                "app.kubernetes.io/instance": RELEASE,
                            }
                        }
                    },
                ],
            }
        ],
        "egress": [
            {
                "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                "ports": [{"port": 9096, "protocol": "TCP"}],
            },
            {
                "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": private}}],
                "ports": [{"port": 443, "protocol": "TCP"}],
            },
            {
                "to": [
                    {
                        "namespaceSelector": {
                            "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                        },
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                    }
                ],
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
            },
        ],
    }


@pytest.mark.parametrize("variant", ["defaults", "all-features"])
def test_helm_test_pod_asks_readyz_through_the_service(render: Render, variant: str) -> None:
    """The test hook runs the consumer image's python against the Service's /readyz, no curl."""
    manifests = render(variant)
    pod = one(manifests, "Pod")
    service = one(manifests, "Service")
    assert pod["metadata"]["annotations"] == {
        "helm.sh/hook": "test",
        "helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
    }
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == consumer_container(manifests)["image"]
    assert container["command"] == ["python3", "-c"]
    script, url, attempts = container["args"]
    port = service["spec"]["ports"][0]["port"]
    assert url == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}/readyz"
    assert attempts == "30"
    assert "urllib.request.urlopen(url" in script
    compile(script, "readyz-test", "exec")  # the hook's script is valid Python


class _Readyz(http.server.BaseHTTPRequestHandler):
    """Answers /readyz with the status the test put on the server."""

    def do_GET(self) -> None:
        status = 200 if self.path == "/readyz" and self.server.ready else 503  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        del format, args


@pytest.mark.parametrize(("ready", "exit_status"), [(True, 0), (False, 1)])
def test_helm_test_pod_script_passes_only_when_ready(
    render: Render, ready: bool, exit_status: int
) -> None:
    """The hook's script exits 0 on a 200 from /readyz and 1 once every attempt got a 503."""
    script = one(render("defaults"), "Pod")["spec"]["containers"][0]["args"][0]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    server.ready = ready  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/readyz"
        done = subprocess.run(
            [sys.executable, "-c", script, url, "1"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert done.returncode == exit_status, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("variant", "replicas_line"),
    [
        ("defaults", "Replicas: 2."),
        ("all-features", "Replicas: KEDA, 1..12 on the scalable backlog (target 200 per replica)."),
        ("existing-secret", "Replicas: HPA, 2..6 on CPU."),
        ("sasl", "Replicas: KEDA, 0..6 on consumer-group lag (target 1000 per replica)."),
    ],
)
def test_notes_tell_the_operator_what_runs(
    helm: Helm, tmp_path: Path, variant: str, replicas_line: str
) -> None:
    """NOTES.txt renders without gaps and says how the release scales and where to look."""
    # `helm template` never prints NOTES.txt, so a copy of the chart wraps it in a ConfigMap.
    chart = tmp_path / "chart"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "notes-preview.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes-preview\ndata:\n  notes: |\n"
        '    {{- include (print $.Template.BasePath "/NOTES.txt") . | nindent 4 }}\n',
        encoding="utf-8",
    )
    run = helm.template(chart, values=[chart / "ci" / f"{variant}-values.yaml"])
    assert run.returncode == 0, run.stderr
    (preview,) = [m for m in run.manifests() if m["metadata"]["name"] == "notes-preview"]
    notes: str = preview["data"]["notes"]
    assert "<no value>" not in notes
    assert replicas_line in notes.splitlines()
    assert f"helm -n {NAMESPACE} test {RELEASE}" in notes
    assert f"port-forward service/{FULLNAME} 8080" in notes
    dashboard = f"ConfigMap monitoring/{FULLNAME}-dashboard."
    alerts = f"PrometheusRule monitoring/{FULLNAME}; each alert's runbook is in the chart README"
    shown = [line.strip() for line in notes.splitlines() if dashboard in line or alerts in line]
    assert shown == (
        [
            f'Grafana\'s sidecar loads the dashboard "engage-consumer" from {dashboard}',
            f'Alerts: {alerts} ("Alerts and runbooks").',
        ]
        if variant == "all-features"
        else []
    )
