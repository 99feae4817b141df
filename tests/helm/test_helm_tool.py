"""Building and caching helm and promtool: reuse, atomic builds, clear failures, no compiling.

A fake ``go`` (a shell script that drops the binary ``go install`` names into $GOBIN, or fails
like go does) stands in for the real toolchain, so these run in milliseconds; the real builds
happen once per machine in the ``helm`` and ``promtool`` session fixtures.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from consumer.sandbox.errors import MissingToolError, SandboxError
from tests.helm.helm_tool import HELM_MODULE, HELM_VERSION, ensure_helm, find_go, helm_dir
from tests.helm.promtool_tool import PROMTOOL_MODULE, PROMTOOL_VERSION, ensure_promtool

FAKE_GO = """#!/bin/sh
PATH="/usr/bin:/bin"
echo "go $*" >> "$FAKE_GO_LOG"
if [ "${FAKE_GO_STATUS:-0}" != 0 ]; then
  echo "go: helm.sh/helm/v3/cmd/helm@v0.0.0: invalid version" >&2
  exit "$FAKE_GO_STATUS"
fi
for package; do :; done  # the last argument: module@version
name="$(basename "${package%@*}")"
printf '#!/bin/sh\\necho fake tool\\n' > "$GOBIN/$name"
chmod +x "$GOBIN/$name"
"""


def _fake_go(tmp_path: Path, *, status: int = 0) -> dict[str, str]:
    bin_dir = tmp_path / "gobin"
    bin_dir.mkdir()
    go = bin_dir / "go"
    go.write_text(FAKE_GO, encoding="utf-8")
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    return {
        "PATH": str(bin_dir),
        "FAKE_GO_LOG": str(tmp_path / "go.log"),
        "FAKE_GO_STATUS": str(status),
    }


def test_helm_dir_follows_xdg_cache_home(tmp_path: Path) -> None:
    """The cache lives under $XDG_CACHE_HOME/engage-consumer, one directory per helm version."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    assert helm_dir("v3.22.0", env) == tmp_path / "engage-consumer" / "helm-v3.22.0"


def test_cold_cache_builds_with_go_install_then_reuses(tmp_path: Path) -> None:
    """The first call runs go install into the cache; the second finds it and runs nothing."""
    env = _fake_go(tmp_path)
    cache = tmp_path / "cache"
    first = ensure_helm(cache_dir=cache, env=env)
    second = ensure_helm(cache_dir=cache, env={"PATH": ""})  # no go needed any more
    target = cache / f"helm-{HELM_VERSION}" / "helm"
    assert (first.path, first.built, second.path, second.built) == (target, True, target, False)
    assert os.access(target, os.X_OK)
    assert (tmp_path / "go.log").read_text(encoding="utf-8").splitlines() == [
        f"go install {HELM_MODULE}@{HELM_VERSION}"
    ]
    assert sorted(p.name for p in cache.iterdir()) == [f"helm-{HELM_VERSION}"]  # no partials


def test_failed_build_leaves_no_cache(tmp_path: Path) -> None:
    """A failing go install raises SandboxError with go's words and leaves nothing behind."""
    env = _fake_go(tmp_path, status=1)
    cache = tmp_path / "cache"
    with pytest.raises(SandboxError, match="invalid version") as caught:
        ensure_helm(cache_dir=cache, env=env)
    assert "exit 1" in str(caught.value)
    assert list(cache.iterdir()) == []


def test_missing_go_says_how_to_get_it(tmp_path: Path) -> None:
    """Without Go and without a cached helm the error names Go and the command it would run."""
    with pytest.raises(MissingToolError, match=r"install Go") as caught:
        ensure_helm(cache_dir=tmp_path / "cache", env={"PATH": str(tmp_path)})
    assert f"go install {HELM_MODULE}@{HELM_VERSION}" in str(caught.value)


def test_goroot_go_is_preferred(tmp_path: Path) -> None:
    """$GOROOT/bin/go is used before a go found on PATH."""
    env = _fake_go(tmp_path)
    goroot = tmp_path / "goroot"
    (goroot / "bin").mkdir(parents=True)
    (goroot / "bin" / "go").symlink_to(Path(env["PATH"]) / "go")
    assert find_go({**env, "GOROOT": str(goroot)}) == goroot / "bin" / "go"


def test_partial_builds_of_dead_processes_are_swept(tmp_path: Path) -> None:
    """A partial directory left by a killed build is removed; one of a live process is kept."""
    cache = tmp_path / "cache"
    dead = cache / f".helm-{HELM_VERSION}.partial-999999999-abc"
    alive = cache / f".helm-{HELM_VERSION}.partial-{os.getpid()}-def"
    dead.mkdir(parents=True)
    alive.mkdir()
    ensure_helm(cache_dir=cache, env=_fake_go(tmp_path))
    assert sorted(p.name for p in cache.iterdir()) == sorted([alive.name, f"helm-{HELM_VERSION}"])


def test_promtool_builds_into_its_own_cache_directory(tmp_path: Path) -> None:
    """promtool is built like helm, with Prometheus's module, next to helm in the same cache."""
    env = _fake_go(tmp_path)
    cache = tmp_path / "cache"
    helm = ensure_helm(cache_dir=cache, env=env)
    promtool = ensure_promtool(cache_dir=cache, env=env)
    again = ensure_promtool(cache_dir=cache, env={"PATH": ""})
    target = cache / f"promtool-{PROMTOOL_VERSION}" / "promtool"
    assert (promtool.path, promtool.built, again.path, again.built) == (target, True, target, False)
    assert helm.path == cache / f"helm-{HELM_VERSION}" / "helm"
    assert (tmp_path / "go.log").read_text(encoding="utf-8").splitlines() == [
        f"go install {HELM_MODULE}@{HELM_VERSION}",
        f"go install -tags remove_all_sd {PROMTOOL_MODULE}@{PROMTOOL_VERSION}",
    ]


def test_missing_go_for_promtool_says_how_to_get_it(tmp_path: Path) -> None:
    """Without Go the promtool build fails (the rules tests fail, never skip) naming the command."""
    with pytest.raises(MissingToolError, match=r"promtool .*install Go") as caught:
        ensure_promtool(cache_dir=tmp_path / "cache", env={"PATH": str(tmp_path)})
    assert f"go install -tags remove_all_sd {PROMTOOL_MODULE}@{PROMTOOL_VERSION}" in str(
        caught.value
    )
