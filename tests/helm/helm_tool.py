"""Builds a pinned helm from the Go module proxy once, and runs it for the chart tests.

helm is a Go program and the project installs nothing outside its virtualenv, so the chart tests
build helm themselves (``tests.helm.go_tool``): ``go install helm.sh/helm/v3/cmd/helm@<version>``
into ``$XDG_CACHE_HOME/engage-consumer/helm-<version>/`` (``~/.cache/...`` by default), outside
the repo, atomically. A warm cache needs neither Go nor the network.

Measured on the shared 2-core machine: the first build (module download + compile) took about
4.5 minutes; later sessions only check that the binary exists.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final

import yaml

from tests.helm import go_tool
from tests.helm.go_tool import GoTool, ToolBuild, ensure_tool, tool_dir

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

HELM_VERSION: Final = "v3.22.0"
HELM_MODULE: Final = "helm.sh/helm/v3/cmd/helm"
# The Kubernetes version the chart is rendered for and validated against. A helm built with
# `go install` (no release ldflags) would otherwise assume Kubernetes 1.20 and refuse the chart's
# kubeVersion; naming it also keeps the render independent of how helm was built.
KUBE_VERSION: Final = "1.37.0"
RUN_TIMEOUT: Final = 60.0
HELM: Final = GoTool(name="helm", module=HELM_MODULE, version=HELM_VERSION)

#: Where the helm binary is, and whether (and how long) this call had to build it.
HelmBuild = ToolBuild


@dataclass(frozen=True, kw_only=True, slots=True)
class HelmRun:
    """One finished helm command: exit status and both streams."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def manifests(self) -> list[dict[str, Any]]:
        """The YAML documents of a `helm template` output, empty documents dropped."""
        return [doc for doc in yaml.safe_load_all(self.stdout) if doc]


@dataclass(frozen=True, kw_only=True, slots=True)
class Helm:
    """A built helm with its own empty config/cache/data homes (no user repos or plugins)."""

    path: Path
    home: Path
    kube_version: str = KUBE_VERSION

    def run(self, *args: str) -> HelmRun:
        """Run ``helm ARGS`` and return its result; a non-zero exit is a result, not an error."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        argv = (str(self.path), *args)
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=env,
            timeout=RUN_TIMEOUT,
            check=False,
        )
        return HelmRun(
            argv=argv, returncode=done.returncode, stdout=done.stdout, stderr=done.stderr
        )

    def template(
        self,
        chart: Path,
        *,
        values: Sequence[Path] = (),
        set_values: Sequence[str] = (),
        release: str = "shop",
        namespace: str = "commerce",
    ) -> HelmRun:
        """``helm template`` of ``chart`` for this Kubernetes version."""
        args = ["template", release, str(chart), "--namespace", namespace]
        args += ["--kube-version", self.kube_version]
        for path in values:
            args += ["--values", str(path)]
        for assignment in set_values:
            args += ["--set", assignment]
        return self.run(*args)

    def lint(self, chart: Path, *, values: Sequence[Path] = ()) -> HelmRun:
        """``helm lint --strict`` of ``chart`` for this Kubernetes version."""
        args = ["lint", "--strict", str(chart), "--kube-version", self.kube_version]
        for path in values:
            args += ["--values", str(path)]
        return self.run(*args)


def helm_dir(version: str = HELM_VERSION, env: Mapping[str, str] | None = None) -> Path:
    """The cache directory of one helm version (it holds the ``helm`` binary when complete)."""
    return tool_dir(replace(HELM, version=version), env)


def find_go(env: Mapping[str, str] | None = None) -> Path:
    """The ``go`` to build helm with: ``$GOROOT/bin/go``, else ``go`` on PATH."""
    return go_tool.find_go(HELM, env)


def ensure_helm(
    version: str = HELM_VERSION,
    *,
    cache_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> HelmBuild:
    """Return the cached helm ``version``, building it with ``go install`` first if needed.

    Raises:
        MissingToolError: a build is needed and Go is not installed.
        SandboxError: the build failed or timed out; the message ends with Go's output.
    """
    return ensure_tool(replace(HELM, version=version), cache_dir=cache_dir, env=env)
