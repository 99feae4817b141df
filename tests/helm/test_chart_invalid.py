"""Values that cannot work fail the render with a message naming the values to change.

Each case starts from a valid ci variant and changes what an operator could get wrong; the
render must fail (nothing reaches the cluster) and say why. The values schema catches unknown
keys and wrong types; the chart's own checks catch combinations a schema cannot express.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.helm.manifests import CHART

if TYPE_CHECKING:
    from tests.helm.helm_tool import Helm

pytestmark = [pytest.mark.helm, pytest.mark.timeout(1800)]  # the first test may build helm

CASES = [
    pytest.param(
        "defaults",
        ["terminationGracePeriodSeconds=25"],
        "terminationGracePeriodSeconds (25) must be greater than "
        "processing.drainTimeoutSeconds (25)",
        id="grace-not-above-drain",
    ),
    pytest.param(
        "all-features",
        ["autoscaling.hpa.enabled=true", "autoscaling.hpa.maxReplicas=4"],
        "autoscaling.keda.enabled and autoscaling.hpa.enabled are exclusive",
        id="keda-and-hpa",
    ),
    pytest.param(
        "sasl",
        ["autoscaling.keda.trigger=prometheus"],
        "autoscaling.keda.prometheus.serverAddress is required with autoscaling.keda.trigger "
        "prometheus",
        id="keda-prometheus-without-server",
    ),
    pytest.param(
        "all-features",
        ["autoscaling.keda.trigger=lag"],
        "at '/autoscaling/keda/trigger': value must be one of 'prometheus', 'kafka'",
        id="keda-unknown-trigger",
    ),
    pytest.param(
        "all-features",
        ["autoscaling.keda.maxReplicaCount=16"],
        "autoscaling.keda.maxReplicaCount (16) exceeds kafka.partitions (12)",
        id="keda-max-above-partitions",
    ),
    pytest.param(
        "defaults",
        ["autoscaling.keda.enabled=true"],
        "kafka.partitions is required with autoscaling: autoscaling.keda.maxReplicaCount may not "
        "exceed it",
        id="keda-without-partitions",
    ),
    pytest.param(
        "existing-secret",
        ["autoscaling.hpa.maxReplicas=7"],
        "autoscaling.hpa.maxReplicas (7) exceeds kafka.partitions (6)",
        id="hpa-max-above-partitions",
    ),
    pytest.param(
        "defaults",
        ["kafka.partitions=1"],
        "replicaCount (2) exceeds kafka.partitions (1)",
        id="replicas-above-partitions",
    ),
    pytest.param(
        "defaults",
        ["kafka.securityProtocol=SASL_SSL"],
        "kafka.sasl.mechanism is required with SASL_SSL",
        id="sasl-without-mechanism",
    ),
    pytest.param(
        "defaults",
        ["kafka.securityProtocol=SASL_PLAINTEXT", "kafka.sasl.mechanism=PLAIN"],
        "kafka.sasl.username and kafka.sasl.password are required with SASL_PLAINTEXT",
        id="sasl-without-credentials",
    ),
    pytest.param(
        "existing-secret",
        ["engage.apiKey=leaked"],
        'existingSecret "engage-consumer-credentials" is set: leave engage.apiKey',
        id="existing-secret-and-inline-key",
    ),
    pytest.param(
        "existing-secret",
        ["kafka.tls.ca.secretName=kafka-ca"],
        "kafka.tls.ca: set secretName or configMapName, not both",
        id="two-ca-sources",
    ),
    pytest.param(
        "defaults",
        ["kafka.tls.ca.secretName=kafka-ca"],
        "kafka.tls.ca is set but kafka.securityProtocol PLAINTEXT does not use TLS",
        id="ca-without-tls",
    ),
    pytest.param(
        "defaults",
        ["podDisruptionBudget.minAvailable=1"],
        "podDisruptionBudget: set maxUnavailable or minAvailable, not both",
        id="pdb-both-bounds",
    ),
    pytest.param(
        "defaults",
        ["networkPolicy.enabled=true"],
        "networkPolicy.kafka.to must say where the brokers are",
        id="network-policy-without-brokers",
    ),
    pytest.param(
        "defaults",
        ["kafka.bootstrapServer=typo:9092"],
        "at '/kafka': additional properties 'bootstrapServer' not allowed",
        id="unknown-key",
    ),
    pytest.param(
        "defaults",
        ["kafka.securityProtocol=TLS"],
        "at '/kafka/securityProtocol': value must be one of",
        id="unknown-protocol",
    ),
]


@pytest.mark.parametrize(("variant", "assignments", "message"), CASES)
def test_invalid_values_fail_the_render(
    helm: Helm, variant: str, assignments: list[str], message: str
) -> None:
    """The render fails and helm's error carries the chart's message."""
    run = helm.template(
        CHART, values=[CHART / "ci" / f"{variant}-values.yaml"], set_values=assignments
    )
    assert run.returncode != 0, run.stdout
    assert message in run.stderr
    assert run.stdout == ""


def test_missing_required_values_are_reported_together(helm: Helm) -> None:
    """Without values, every missing setting is listed in one failure, as the consumer would."""
    run = helm.template(CHART)
    assert run.returncode != 0
    problems = [line.strip() for line in run.stderr.splitlines() if line.strip().startswith("- ")]
    assert problems == [
        "- kafka.bootstrapServers is required (host:port[,host:port])",
        "- kafka.inputTopics needs at least one topic",
        "- engage.baseUrl is required (e.g. https://tenant.voyado.com)",
        "- engage.apiKey is required unless existingSecret names a Secret holding it",
    ]
