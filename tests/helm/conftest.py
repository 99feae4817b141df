"""Session fixtures of the chart tests: one helm and one promtool build per machine, one render
per ci values file.

``helm`` and ``promtool`` build (or reuse) the pinned Go programs of ``tests.helm.helm_tool`` and
``tests.helm.promtool_tool``; the first session on a fresh machine (CI's clean clone included)
pays the Go builds, and a machine without Go fails these tests saying how to get it, never skips
them. ``render`` runs ``helm template`` for each ``ci/*-values.yaml`` at most once per session, so
every assertion about a variant reads the same output.
"""

from __future__ import annotations

from typing import Any, Protocol

import pytest

from tests.helm.helm_tool import Helm, ensure_helm
from tests.helm.manifests import CHART, NAMESPACE, RELEASE
from tests.helm.promtool_tool import Promtool, ensure_promtool


class Render(Protocol):
    """Returns the manifests `helm template` renders for one ci values variant by name."""

    def __call__(self, variant: str) -> list[dict[str, Any]]: ...


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The pinned helm, built from the Go module proxy on first use, with empty helm homes."""
    build = ensure_helm()
    return Helm(path=build.path, home=tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def promtool() -> Promtool:
    """Prometheus's promtool, built from the Go module proxy on first use."""
    return Promtool(path=ensure_promtool().path)


@pytest.fixture(scope="session")
def render(helm: Helm) -> Render:
    """Render each ci variant once per session; a failed render fails the test with helm's words."""
    cache: dict[str, list[dict[str, Any]]] = {}

    def rendered(variant: str) -> list[dict[str, Any]]:
        if variant not in cache:
            run = helm.template(
                CHART,
                values=[CHART / "ci" / f"{variant}-values.yaml"],
                release=RELEASE,
                namespace=NAMESPACE,
            )
            assert run.returncode == 0, run.stderr
            cache[variant] = run.manifests()
        return cache[variant]

    return rendered
