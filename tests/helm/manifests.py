"""Where the chart is, and small readers over its rendered manifests.

The readers let chart tests say what they check, not how to dig for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

Manifest = dict[str, Any]

CHART: Path = Path(__file__).resolve().parents[2] / "helm" / "engage-consumer"
CI_VALUES: tuple[Path, ...] = tuple(sorted((CHART / "ci").glob("*-values.yaml")))
RELEASE = "shop"
NAMESPACE = "commerce"


def variant_name(path: Path) -> str:
    """``ci/all-features-values.yaml`` -> ``all-features``."""
    return path.name.removesuffix("-values.yaml")


CRD_KINDS = frozenset({"ServiceMonitor", "PrometheusRule", "ScaledObject", "TriggerAuthentication"})


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    """Every manifest of ``kind``."""
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    """The one manifest of ``kind``; fails when there is none or several."""
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def kinds(manifests: list[Manifest]) -> list[str]:
    """The kinds rendered, sorted."""
    return sorted(m["kind"] for m in manifests)


def pod_spec(manifests: list[Manifest]) -> dict[str, Any]:
    """The consumer Deployment's pod spec."""
    spec: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def consumer_container(manifests: list[Manifest]) -> dict[str, Any]:
    """The consumer container of the Deployment."""
    containers = pod_spec(manifests)["containers"]
    assert [c["name"] for c in containers] == ["consumer"]
    container: dict[str, Any] = containers[0]
    return container


def env_sources(container: dict[str, Any]) -> dict[str, Any]:
    """Env var name -> its ``value`` or its ``valueFrom``."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def settings_of(manifests: list[Manifest]) -> dict[str, str]:
    """The settings ConfigMap's data: the consumer's non-secret environment."""
    (settings,) = [m for m in of_kind(manifests, "ConfigMap") if m not in dashboards(manifests)]
    data: dict[str, str] = settings["data"]
    return data


def dashboards(manifests: list[Manifest]) -> list[Manifest]:
    """The ConfigMaps that carry the Grafana dashboard."""
    return [
        m for m in of_kind(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
