"""Builds a pinned Go program from the Go module proxy once, into the project's cache.

The chart tests need two Go programs, helm and Prometheus's promtool, and the project installs
nothing outside its virtualenv, so the tests build them: ``go install <module>@<version>`` into
``$XDG_CACHE_HOME/engage-consumer/<name>-<version>/`` (``~/.cache/...`` by default), outside the
repo. The build goes into a partial directory that is renamed into place only when the binary is
there, so an interrupted build never leaves a half cache, and a second build racing the first
keeps whichever finished first. A warm cache needs neither Go nor the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from consumer.sandbox.errors import MissingToolError, SandboxError
from consumer.sandbox.kafka import cache_root

if TYPE_CHECKING:
    from collections.abc import Mapping

# Downloading the modules and compiling helm or promtool on a busy 2-core machine takes minutes.
BUILD_TIMEOUT: Final = 1800.0
_PARTIAL: Final = ".partial-"


@dataclass(frozen=True, kw_only=True, slots=True)
class GoTool:
    """One pinned Go program: its binary's name, the package ``go install`` builds, the version,
    and build tags that leave out what the tests never use."""

    name: str
    module: str
    version: str
    tags: tuple[str, ...] = ()

    @property
    def install_args(self) -> tuple[str, ...]:
        """The arguments of ``go install``: ``[-tags a,b] module@version``."""
        tags = ("-tags", ",".join(self.tags)) if self.tags else ()
        return (*tags, f"{self.module}@{self.version}")

    @property
    def install(self) -> str:
        """The same arguments as one types them, for messages."""
        return " ".join(self.install_args)


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolBuild:
    """Where a tool's binary is, and whether (and how long) this call had to build it."""

    path: Path
    version: str
    built: bool
    seconds: float


def tool_dir(tool: GoTool, env: Mapping[str, str] | None = None) -> Path:
    """The cache directory of one tool version (it holds the binary when complete)."""
    return cache_root(env) / f"{tool.name}-{tool.version}"


def find_go(tool: GoTool, env: Mapping[str, str] | None = None) -> Path:
    """The ``go`` to build ``tool`` with: ``$GOROOT/bin/go``, else ``go`` on PATH."""
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
        f"Go is needed once to build {tool.name} {tool.version} for the chart tests "
        f"(go install {tool.install}); install Go 1.24+ from https://go.dev/dl/ "
        "or put its bin directory on PATH"
    )


def _sweep_partials(root: Path, tool: GoTool) -> None:
    """Remove partial builds of processes that no longer run (killed mid-build)."""
    for entry in root.glob(f".{tool.name}-*{_PARTIAL}*"):
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


def ensure_tool(
    tool: GoTool,
    *,
    cache_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ToolBuild:
    """Return the cached ``tool``, building it with ``go install`` first if needed.

    Raises:
        MissingToolError: a build is needed and Go is not installed.
        SandboxError: the build failed or timed out; the message ends with Go's output.
    """
    env = os.environ if env is None else env
    root = cache_dir if cache_dir is not None else cache_root(env)
    target = root / f"{tool.name}-{tool.version}"
    binary = target / tool.name
    started = time.monotonic()
    if binary.is_file():
        return ToolBuild(
            path=binary, version=tool.version, built=False, seconds=time.monotonic() - started
        )
    go = find_go(tool, env)
    root.mkdir(parents=True, exist_ok=True)
    _sweep_partials(root, tool)
    work = Path(
        tempfile.mkdtemp(prefix=f".{tool.name}-{tool.version}{_PARTIAL}{os.getpid()}-", dir=root)
    )
    try:
        # CGO off: helm's and Prometheus's releases are static binaries too, and no C compiler
        # is needed.
        build_env = {**env, "GOBIN": str(work), "CGO_ENABLED": "0"}
        try:
            done = subprocess.run(
                [str(go), "install", *tool.install_args],
                capture_output=True,
                text=True,
                env=build_env,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SandboxError(
                f"building {tool.name} {tool.version} did not finish within {BUILD_TIMEOUT:.0f}s"
            ) from None
        if done.returncode != 0 or not (work / tool.name).is_file():
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise SandboxError(
                f"go install {tool.install} failed (exit {done.returncode}):\n{tail}"
            )
        work.chmod(0o755)  # mkdtemp makes it private; the cache is shared like the jar cache
        try:
            work.rename(target)
        except OSError:
            # Another session finished the same build first; its binary is as good as ours.
            if not binary.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return ToolBuild(
        path=binary, version=tool.version, built=True, seconds=time.monotonic() - started
    )
