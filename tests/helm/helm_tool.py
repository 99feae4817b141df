"""Builds a pinned helm from the Go module proxy once, and runs it for the chart tests.

helm is a Go program and the project installs nothing outside its virtualenv, so the chart tests
build helm themselves: ``go install helm.sh/helm/v3/cmd/helm@<version>`` into
``$XDG_CACHE_HOME/engage-consumer/helm-<version>/`` (``~/.cache/...`` by default), outside the
repo. The build goes into a partial directory that is renamed into place only when the binary is
there, so an interrupted build never leaves a half cache, and a second build racing the first
keeps whichever finished first. A warm cache needs neither Go nor the network.

Measured on the shared 2-core machine: the first build (module download + compile) took about
4.5 minutes; later sessions only check that the binary exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import yaml

from consumer.sandbox.errors import MissingToolError, SandboxError
from consumer.sandbox.kafka import cache_root

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

HELM_VERSION: Final = "v3.22.0"
HELM_MODULE: Final = "helm.sh/helm/v3/cmd/helm"
# The Kubernetes version the chart is rendered for and validated against. A helm built with
# `go install` (no release ldflags) would otherwise assume Kubernetes 1.20 and refuse the chart's
# kubeVersion; naming it also keeps the render independent of how helm was built.
KUBE_VERSION: Final = "1.37.0"
# Downloading the modules and compiling helm on a busy 2-core machine takes minutes.
BUILD_TIMEOUT: Final = 1800.0
RUN_TIMEOUT: Final = 60.0
_PARTIAL: Final = ".partial-"


@dataclass(frozen=True, kw_only=True, slots=True)
class HelmBuild:
    """Where the helm binary is, and whether (and how long) this call had to build it."""

    path: Path
    version: str
    built: bool
    seconds: float


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
    return cache_root(env) / f"helm-{version}"


def find_go(env: Mapping[str, str] | None = None) -> Path:
    """The ``go`` to build helm with: ``$GOROOT/bin/go``, else ``go`` on PATH."""
    env = os.environ if env is None else env
    candidates: list[str] = []
    if goroot := env.get("GOROOT"):
        candidates.append(str(Path(goroot) / "bin" / "go"))
    if found := shutil.which("go", path=env.get("PATH")):
        candidates.append(found)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return Path(candidate)
    raise MissingToolError(
        f"Go is needed once to build helm {HELM_VERSION} for the chart tests "
        f"(go install {HELM_MODULE}@{HELM_VERSION}); install Go 1.24+ from https://go.dev/dl/ "
        "or put its bin directory on PATH"
    )


def _sweep_partials(root: Path) -> None:
    """Remove partial builds of processes that no longer run (killed mid-build)."""
    for entry in root.glob(f".helm-*{_PARTIAL}*"):
        pid_text = entry.name.split(_PARTIAL, 1)[1].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    env = os.environ if env is None else env
    root = cache_dir if cache_dir is not None else cache_root(env)
    target = root / f"helm-{version}"
    started = time.monotonic()
    if (target / "helm").is_file():
        return HelmBuild(
            path=target / "helm", version=version, built=False, seconds=time.monotonic() - started
        )
    go = find_go(env)
    root.mkdir(parents=True, exist_ok=True)
    _sweep_partials(root)
    work = Path(tempfile.mkdtemp(prefix=f".helm-{version}{_PARTIAL}{os.getpid()}-", dir=root))
    try:
        # CGO off: helm's releases are static binaries too, and no C compiler is needed.
        build_env = {**env, "GOBIN": str(work), "CGO_ENABLED": "0"}
        try:
            done = subprocess.run(
                [str(go), "install", f"{HELM_MODULE}@{version}"],
                capture_output=True,
                text=True,
                env=build_env,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SandboxError(
                f"building helm {version} did not finish within {BUILD_TIMEOUT:.0f}s"
            ) from None
        if done.returncode != 0 or not (work / "helm").is_file():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise SandboxError(
                f"go install {HELM_MODULE}@{version} failed (exit {done.returncode}):\n{tail}"
            )
        work.chmod(0o755)  # mkdtemp makes it private; the cache is shared like the jar cache
        try:
            work.rename(target)
        except OSError:
            # Another session finished the same build first; its binary is as good as ours.
            if not (target / "helm").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return HelmBuild(
        path=target / "helm", version=version, built=True, seconds=time.monotonic() - started
    )
