"""The chart lints, renders valid Kubernetes objects for every ci variant, and wires the consumer.

Each ci/*-values.yaml variant is linted (`helm lint --strict`) and rendered once; every rendered
object that Kubernetes itself defines is validated against the strict JSON schemas of
``KUBE_VERSION`` (kubernetes-validate, offline). The rest checks what operators rely on: labels
and selectors, the hardened security contexts, the probes, and that the ConfigMap and Secret give
``consumer.config.load_settings`` a valid configuration with the service's own defaults.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from consumer.config import Settings, load_settings
from tests.helm.helm_tool import KUBE_VERSION
from tests.helm.manifests import (
    CHART,
    CI_VALUES,
    CRD_KINDS,
    NAMESPACE,
    RELEASE,
    consumer_container,
    env_sources,
    kinds,
    of_kind,
    one,
    pod_spec,
    settings_of,
    variant_name,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.helm.conftest import Render
    from tests.helm.helm_tool import Helm
    from tests.helm.manifests import Manifest

pytestmark = [pytest.mark.helm, pytest.mark.timeout(1800)]  # the first test may build helm

VARIANTS = [variant_name(path) for path in CI_VALUES]
CHART_META = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
FULLNAME = f"{RELEASE}-engage-consumer"
SELECTOR = {"app.kubernetes.io/name": "engage-consumer", "app.kubernetes.io/instance": RELEASE}
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def test_ci_variants_are_the_documented_four() -> None:
    """The chart ships the defaults, all-features, existing-secret and SASL variants."""
    assert VARIANTS == ["all-features", "defaults", "existing-secret", "sasl"]


@pytest.mark.parametrize("values", CI_VALUES, ids=variant_name)
def test_lint_strict_passes(helm: Helm, values: Path) -> None:
    """`helm lint --strict` accepts the chart with each ci values file."""
    run = helm.lint(CHART, values=[values])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 chart(s) failed" in run.stdout


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_objects_pass_the_kubernetes_schemas(render: Render, variant: str) -> None:
    """Every Kubernetes-defined object validates against the strict schemas of KUBE_VERSION."""
    problems = []
    for manifest in render(variant):
        if manifest["kind"] in CRD_KINDS:
            continue  # not in Kubernetes' schemas: their fields are asserted one by one below
        try:
            kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.absolute_path)
            problems.append(f"{manifest['kind']} {path}: {error.message}")
    assert problems == []


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        (
            "defaults",
            ["ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Secret", "Service"],
        ),
        (
            "all-features",
            [
                "ConfigMap",
                "ConfigMap",  # the Grafana dashboard
                "Deployment",
                "NetworkPolicy",
                "Pod",
                "PodDisruptionBudget",
                "PrometheusRule",
                "ScaledObject",
                "Secret",
                "Service",
                "ServiceMonitor",
            ],
        ),
        (
            "existing-secret",
            [
                "ConfigMap",
                "Deployment",
                "HorizontalPodAutoscaler",
                "Pod",
                "PodDisruptionBudget",
                "Service",
            ],
        ),
        (
            "sasl",
            [
                "ConfigMap",
                "Deployment",
                "Pod",
                "PodDisruptionBudget",
                "ScaledObject",
                "Service",
                "TriggerAuthentication",
            ],
        ),
    ],
)
def test_each_variant_renders_its_resources(
    render: Render, variant: str, expected: list[str]
) -> None:
    """Each variant renders exactly its resources (plus the ServiceAccount), one per kind but
    the dashboard's second ConfigMap."""
    assert kinds(render(variant)) == sorted([*expected, "ServiceAccount"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_labels_and_selectors(render: Render, variant: str) -> None:
    """Every object has the standard labels; every selector uses name and instance only."""
    manifests = render(variant)
    for manifest in manifests:
        labels = manifest["metadata"]["labels"]
        expected_name = "engage-consumer-test" if manifest["kind"] == "Pod" else "engage-consumer"
        assert {key: labels.get(key) for key in STANDARD_LABELS} == {
            "app.kubernetes.io/name": expected_name,
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/version": CHART_META["appVersion"],
            "app.kubernetes.io/managed-by": "Helm",
            "helm.sh/chart": f"engage-consumer-{CHART_META['version']}",
        }, manifest["kind"]
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["selector"] == {"matchLabels": SELECTOR}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels.items() >= SELECTOR.items()
    assert one(manifests, "Service")["spec"]["selector"] == SELECTOR
    for pdb in of_kind(manifests, "PodDisruptionBudget"):
        assert pdb["spec"]["selector"] == {"matchLabels": SELECTOR}
    for policy in of_kind(manifests, "NetworkPolicy"):
        assert policy["spec"]["podSelector"] == {"matchLabels": SELECTOR}
    for monitor in of_kind(manifests, "ServiceMonitor"):
        assert monitor["spec"]["selector"] == {"matchLabels": SELECTOR}
    # The test pod must not match the selector, or the Service would send scrapes to it.
    test_pod = one(manifests, "Pod")
    assert not test_pod["metadata"]["labels"].items() >= SELECTOR.items()


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_are_hardened(render: Render, variant: str) -> None:
    """Consumer and test pods run as uid 10001, RuntimeDefault, no caps, read-only, no token."""
    manifests = render(variant)
    expected_pod = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    expected_container = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    spec = pod_spec(manifests)
    test_spec = one(manifests, "Pod")["spec"]
    for pod in (spec, test_spec):
        assert pod["securityContext"] == expected_pod
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            assert container["securityContext"] == expected_container
    assert one(manifests, "ServiceAccount")["automountServiceAccountToken"] is False
    assert spec["serviceAccountName"] == one(manifests, "ServiceAccount")["metadata"]["name"]
    # The read-only root needs a writable /tmp.
    mounts = {m["name"]: m["mountPath"] for m in consumer_container(manifests)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["tmp"] == "/tmp"
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_and_port(render: Render, variant: str) -> None:
    """Startup and liveness ask /livez, readiness asks /readyz, all on the HTTP_PORT named http."""
    manifests = render(variant)
    container = consumer_container(manifests)
    port = int(settings_of(manifests)["HTTP_PORT"])
    assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert container["startupProbe"] == {
        "httpGet": {"path": "/livez", "port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 2,
        "timeoutSeconds": 2,
        "failureThreshold": 30,
    }
    assert container["livenessProbe"] == {
        "httpGet": {"path": "/livez", "port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
    assert container["readinessProbe"] == {
        "httpGet": {"path": "/readyz", "port": "http"},
        "initialDelaySeconds": 0,
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
        "successThreshold": 1,
    }
    assert container["image"].startswith(("engage-consumer:", "registry.example.com/"))
    assert container.get("command") is None  # the image's ENTRYPOINT, engage-consumer
    assert container["args"] == ["run"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_grace_period_outlasts_the_drain(render: Render, variant: str) -> None:
    """terminationGracePeriodSeconds exceeds DRAIN_TIMEOUT_SECONDS in every variant."""
    manifests = render(variant)
    grace = pod_spec(manifests)["terminationGracePeriodSeconds"]
    drain = float(settings_of(manifests)["DRAIN_TIMEOUT_SECONDS"])
    assert grace > drain


@pytest.mark.parametrize("variant", VARIANTS)
def test_pods_roll_when_settings_change(render: Render, variant: str) -> None:
    """The pod template carries a checksum of the ConfigMap, and of the Secret the chart owns."""
    manifests = render(variant)
    annotations = one(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64
    owns_secret = bool(of_kind(manifests, "Secret"))
    assert ("checksum/secret" in annotations) is owns_secret


def test_default_settings_are_the_service_defaults(render: Render) -> None:
    """The defaults variant's ConfigMap sets exactly what consumer.config would default to."""
    data = settings_of(render("defaults"))
    required = ("KAFKA_BOOTSTRAP_SERVERS", "INPUT_TOPICS", "ENGAGE_BASE_URL")
    secrets = {"ENGAGE_API_KEY": "key"}
    from_chart = load_settings({**data, **secrets})
    from_service = load_settings({**{name: data[name] for name in required}, **secrets})
    assert from_chart == from_service


@pytest.mark.parametrize(
    ("assignments", "state_topic"),
    [
        ([], "engage-consumer.order-state"),
        (["kafka.stateTopic=shop.order-state"], "shop.order-state"),
        (["kafka.keepOrderState=false", "kafka.stateTopic=ignored"], None),
    ],
)
def test_order_state_topic_values(
    helm: Helm, assignments: list[str], state_topic: str | None
) -> None:
    """The state topic follows the group by default, can be named, and can be turned off."""
    run = helm.template(
        CHART, values=[CHART / "ci" / "defaults-values.yaml"], set_values=assignments
    )
    assert run.returncode == 0, run.stderr
    data = settings_of(run.manifests())
    assert load_settings({**data, "ENGAGE_API_KEY": "key"}).state_topic == state_topic


class _RecordingEnviron(Mapping[str, str]):
    """An environment that remembers which variables the settings loader asked for."""

    def __init__(self, variables: dict[str, str]) -> None:
        self.variables = variables
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return self.variables[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return self.variables.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.variables)

    def __len__(self) -> int:
        return len(self.variables)


def _consumer_environment(manifests: list[Manifest], ca_file: Path) -> dict[str, str]:
    """The environment the consumer container would see (secrets resolved, CA file local)."""
    env = dict(settings_of(manifests))
    chart_secrets = {
        key: base64.b64decode(value).decode()
        for secret in of_kind(manifests, "Secret")
        for key, value in secret["data"].items()
    }
    for name, source in env_sources(consumer_container(manifests)).items():
        if isinstance(source, str):
            env[name] = source
        else:
            key = source["secretKeyRef"]["key"]
            # An existing Secret is the operator's: stand in a value for its key.
            env[name] = chart_secrets.get(key, f"from-existing-secret-{key}")
    if "KAFKA_SSL_CAFILE" in env:
        env["KAFKA_SSL_CAFILE"] = str(ca_file)
    return env


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_configures_a_valid_consumer(
    render: Render, variant: str, tmp_path: Path
) -> None:
    """The ConfigMap plus the Secret load with consumer.config, naming only variables it reads."""
    manifests = render(variant)
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    environ = _RecordingEnviron(_consumer_environment(manifests, ca_file))
    settings = load_settings(environ)
    assert isinstance(settings, Settings)
    extra = {"TZ"}  # extraEnv of the all-features variant: for the runtime, not the consumer
    assert set(environ.variables) - extra - environ.asked == set()


def test_all_features_settings_reach_the_consumer(render: Render, tmp_path: Path) -> None:
    """Non-default values arrive typed: topics, SASL, CA, rate, action map, record size."""
    manifests = render("all-features")
    ca_file = tmp_path / "ca.crt"
    ca_file.write_text("ca", encoding="utf-8")
    settings = load_settings(_consumer_environment(manifests, ca_file))
    assert (
        settings.input_topics,
        settings.kafka_security_protocol,
        settings.kafka_sasl_mechanism,
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.reveal() if settings.kafka_sasl_password else None,
        settings.kafka_ssl_cafile,
        settings.engage_api_key.reveal(),
        settings.engage_rate_limit,
        settings.engage_connect_timeout_seconds,
        settings.engage_retry_ambiguous_actions,
        settings.max_record_bytes,
        settings.action_map["order.shipped"],
        settings.action_map["order.delivered"],
        settings.drain_timeout_seconds,
        settings.log_level,
    ) == (
        ("orders.lifecycle", "orders.actions"),
        "SASL_SSL",
        "SCRAM-SHA-512",
        "engage-consumer",
        "ci-sasl-password",
        str(ca_file),
        "ci-engage-api-key",
        12.5,
        2.5,
        True,
        2_000_000,
        "ShipmentConfirmed",
        "DeliveryConfirmed",
        45.0,
        "DEBUG",
    )


def test_chart_secret_wiring(render: Render) -> None:
    """Without existingSecret the chart's Secret holds the API key and the env reads it there."""
    manifests = render("defaults")
    secret = one(manifests, "Secret")
    assert secret["metadata"]["name"] == FULLNAME
    assert secret["data"] == {"ENGAGE_API_KEY": base64.b64encode(b"ci-engage-api-key").decode()}
    assert env_sources(consumer_container(manifests)) == {
        "ENGAGE_API_KEY": {"secretKeyRef": {"name": FULLNAME, "key": "ENGAGE_API_KEY"}},
    }
    # Secrets never sit in the ConfigMap.
    assert "ci-engage-api-key" not in str(settings_of(manifests))
    assert consumer_container(manifests)["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]


def test_chart_secret_with_sasl(render: Render) -> None:
    """With SASL the chart's Secret also holds the SASL username and password, read by the env."""
    manifests = render("all-features")
    data = one(manifests, "Secret")["data"]
    assert {k: base64.b64decode(v).decode() for k, v in data.items()} == {
        "ENGAGE_API_KEY": "ci-engage-api-key",
        "KAFKA_SASL_USERNAME": "engage-consumer",
        "KAFKA_SASL_PASSWORD": "ci-sasl-password",
    }
    sources = env_sources(consumer_container(manifests))
    assert {name: sources[name] for name in data} == {
        name: {"secretKeyRef": {"name": FULLNAME, "key": name}} for name in data
    }
    assert "ci-sasl-password" not in str(settings_of(manifests))


def test_existing_secret_wiring(render: Render) -> None:
    """With existingSecret no Secret is rendered and the env reads the configured keys from it."""
    manifests = render("existing-secret")
    assert of_kind(manifests, "Secret") == []
    assert env_sources(consumer_container(manifests)) == {
        "ENGAGE_API_KEY": {
            "secretKeyRef": {"name": "engage-consumer-credentials", "key": "engage-api-key"}
        },
    }


def test_existing_secret_with_sasl(render: Render) -> None:
    """SASL credentials come from the existing Secret's keys; the mechanism is a setting."""
    manifests = render("sasl")
    assert of_kind(manifests, "Secret") == []
    name = "engage-consumer-credentials"
    assert env_sources(consumer_container(manifests)) == {
        "ENGAGE_API_KEY": {"secretKeyRef": {"name": name, "key": "ENGAGE_API_KEY"}},
        "KAFKA_SASL_USERNAME": {"secretKeyRef": {"name": name, "key": "sasl-username"}},
        "KAFKA_SASL_PASSWORD": {"secretKeyRef": {"name": name, "key": "sasl-password"}},
    }
    data = settings_of(manifests)
    assert (data["KAFKA_SECURITY_PROTOCOL"], data["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "PLAIN")
    assert "KAFKA_SSL_CAFILE" not in data  # the system trust store


@pytest.mark.parametrize(
    ("variant", "volume_source"),
    [
        (
            "all-features",
            {
                "secret": {
                    "secretName": "kafka-cluster-ca",
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }
            },
        ),
        (
            "existing-secret",
            {
                "configMap": {
                    "name": "kafka-ca-bundle",
                    "items": [{"key": "ca-bundle.pem", "path": "ca.crt"}],
                }
            },
        ),
    ],
)
def test_ca_bundle_is_mounted_where_the_setting_points(
    render: Render, variant: str, volume_source: dict[str, Any]
) -> None:
    """The CA bundle (from a Secret or a ConfigMap) is mounted read-only at KAFKA_SSL_CAFILE."""
    manifests = render(variant)
    volumes = {v["name"]: v for v in pod_spec(manifests)["volumes"]}
    assert volumes["kafka-ca"] == {"name": "kafka-ca", **volume_source}
    mounts = {m["name"]: m for m in consumer_container(manifests)["volumeMounts"]}
    assert mounts["kafka-ca"] == {
        "name": "kafka-ca",
        "mountPath": "/etc/engage-consumer/kafka-ca",
        "readOnly": True,
    }
    assert settings_of(manifests)["KAFKA_SSL_CAFILE"] == "/etc/engage-consumer/kafka-ca/ca.crt"


def test_topology_spread_over_zones_and_nodes(render: Render) -> None:
    """Replicas spread over zones and nodes, counting this release's pods of the same revision."""
    constraints = pod_spec(render("defaults"))["topologySpreadConstraints"]
    assert constraints == [
        {
            "topologyKey": key,
            "maxSkew": 1,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": SELECTOR},
            "matchLabelKeys": ["pod-template-hash"],
        }
        for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
    ]


def test_replicas_and_rollout(render: Render) -> None:
    """Without an autoscaler the Deployment sets replicas and rolls one pod at a time."""
    deployment = one(render("defaults"), "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert deployment["metadata"]["namespace"] == NAMESPACE
