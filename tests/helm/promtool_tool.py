"""Builds Prometheus's promtool once, like helm, and runs it on the chart's alerting rules.

``promtool check rules`` is Prometheus's own parser and linter of rule files, and ``promtool test
rules`` evaluates the rules over input series given in a test file, so the alerts are checked by
the engine that will run them. The build is ``go install
github.com/prometheus/prometheus/cmd/promtool@<version>`` into
``$XDG_CACHE_HOME/engage-consumer/promtool-<version>/`` (``tests.helm.go_tool``): Prometheus tags
its Go module v0.(300 + minor).patch beside its own v3.minor.patch release tags, so the module
version v0.316.0 is Prometheus 3.16.0. Measured on the shared 2-core machine: the first build
took about 8.5 minutes with every plugin (module download + compile) and 4 minutes with the
build tag below (modules already downloaded); later sessions only check that the binary exists.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from tests.helm.go_tool import GoTool, ToolBuild, ensure_tool

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

PROMTOOL_VERSION: Final = "v0.316.0"
PROMTOOL_MODULE: Final = "github.com/prometheus/prometheus/cmd/promtool"
# remove_all_sd leaves out Prometheus's service-discovery plugins (the AWS, Azure, GCE... SDKs),
# which rule checks never use: measured here, the compile took 3.6 CPU-minutes instead of 9.3.
PROMTOOL_TAGS: Final = ("remove_all_sd",)
PROMTOOL: Final = GoTool(
    name="promtool", module=PROMTOOL_MODULE, version=PROMTOOL_VERSION, tags=PROMTOOL_TAGS
)
RUN_TIMEOUT: Final = 60.0


@dataclass(frozen=True, kw_only=True, slots=True)
class PromtoolRun:
    """One finished promtool command: exit status and both streams."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Both streams, for an assertion message."""
        return self.stdout + self.stderr


@dataclass(frozen=True, kw_only=True, slots=True)
class Promtool:
    """A built promtool."""

    path: Path

    def run(self, *args: str, cwd: Path | None = None) -> PromtoolRun:
        """Run ``promtool ARGS``; a non-zero exit is a result, not an error."""
        argv = (str(self.path), *args)
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=cwd,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            timeout=RUN_TIMEOUT,
            check=False,
        )
        return PromtoolRun(
            argv=argv, returncode=done.returncode, stdout=done.stdout, stderr=done.stderr
        )

    def check_rules(self, *files: Path) -> PromtoolRun:
        """``promtool check rules --lint-fatal``: parse, type-check and lint rule files."""
        return self.run("check", "rules", "--lint=all", "--lint-fatal", *map(str, files))

    def test_rules(self, *files: Path, cwd: Path | None = None) -> PromtoolRun:
        """``promtool test rules``: evaluate the rules over each test file's input series."""
        return self.run("test", "rules", *map(str, files), cwd=cwd)


def ensure_promtool(
    version: str = PROMTOOL_VERSION,
    *,
    cache_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ToolBuild:
    """Return the cached promtool ``version``, building it with ``go install`` first if needed.

    Raises:
        MissingToolError: a build is needed and Go is not installed.
        SandboxError: the build failed or timed out; the message ends with Go's output.
    """
    return ensure_tool(replace(PROMTOOL, version=version), cache_dir=cache_dir, env=env)
