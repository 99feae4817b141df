"""The container image recipe: multi-stage, non-root, no build tools at runtime, schemas inside.

Its dependencies come only from the hashed requirements.lock, which tests/test_lock.py keeps true
to pyproject.toml. No Docker engine runs here, so the Dockerfile is read as instructions
(continuations joined, comments dropped) and checked stage by stage. The slow test builds the
wheel the build stage builds, from the files .dockerignore lets into the build context, and
lists it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_VALUES = yaml.safe_load((ROOT / "helm" / "engage-consumer" / "values.yaml").read_text())
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|pip wheel)\b")


@dataclass(kw_only=True, slots=True)
class Stage:
    """One FROM ... [AS name] block and its instructions as (keyword, arguments)."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        """The arguments of every instruction with this keyword, in order."""
        return [args for kw, args in self.instructions if kw == keyword]


def _instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile text -> (KEYWORD, arguments) with line continuations joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    result = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def _stages() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of the repository's Dockerfile."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, args in _instructions((ROOT / "Dockerfile").read_text(encoding="utf-8")):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args, flags=re.IGNORECASE)
            assert match, args
            stages.append(Stage(base=match.group(1), name=match.group(2) or ""))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            name, _, default = args.partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, args))
    return global_args, stages


def test_image_is_multi_stage_on_slim_python_311() -> None:
    """A build stage and a runtime stage, both from the same slim Python 3.11 image."""
    global_args, stages = _stages()
    assert [s.name for s in stages] == ["build", "runtime"]
    assert {s.base for s in stages} == {"${PYTHON_IMAGE}"}
    assert re.fullmatch(
        r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", global_args["PYTHON_IMAGE"]
    )


def _pip_installs(run: str) -> list[str]:
    """The arguments of each `pip install` in one RUN's `&&`-joined commands."""
    return [
        command.partition("pip install")[2].strip()
        for command in run.split("&&")
        if "pip install" in command
    ]


def test_build_stage_installs_the_locked_dependencies_before_the_source() -> None:
    """The first RUN installs requirements.lock, hash-checked and wheels only, into the venv.

    It sees only the lock (copied alone before it, the source after it), so its layer is reused
    until the lock changes, and nothing that RUN installs is resolved at build time.
    """
    build = _stages()[1][0]
    # Whitespace normalised: a joined continuation line keeps its indentation.
    steps = [
        (kw, " ".join(args.split())) for kw, args in build.instructions if kw in {"COPY", "RUN"}
    ]
    lock_run = (
        "python -m venv /opt/engage-consumer"
        " && /opt/engage-consumer/bin/pip install --require-hashes --only-binary=:all:"
        " -r requirements.lock"
    )
    assert steps[:2] == [("COPY", "requirements.lock ./"), ("RUN", lock_run)]
    assert [kw for kw, _ in steps[2:]] == ["COPY", "COPY", "COPY", "RUN"]


def test_build_stage_builds_the_wheel_into_the_venv_without_dependencies() -> None:
    """The wheel is installed with --no-deps over the locked set, and pip check must agree."""
    build = _stages()[1][0]
    _, run = build.args_of("RUN")
    assert "pip wheel --no-deps --wheel-dir /wheels ." in run
    assert _pip_installs(run) == ["--no-deps /wheels/*.whl"]
    commands = [command.strip() for command in run.split("&&")]
    # pip check sees the wheel's declared requirements against the locked set, before pip goes.
    check = commands.index("/opt/engage-consumer/bin/pip check")
    assert commands.index("/opt/engage-consumer/bin/pip install --no-deps /wheels/*.whl") < check
    assert check < commands.index("/opt/engage-consumer/bin/pip uninstall --yes pip")
    assert "_schemas/order-event.schema.json" in run  # fails the build if the schemas are missing
    assert commands[-1] == "/opt/engage-consumer/bin/engage-consumer --help >/dev/null"


def test_build_stage_installs_nothing_outside_the_lock() -> None:
    """Every pip install of the build stage is the hashed lock or a --no-deps local wheel."""
    build = _stages()[1][0]
    installs = [args for run in build.args_of("RUN") for args in _pip_installs(run)]
    assert installs == [
        "--require-hashes --only-binary=:all: -r requirements.lock",
        "--no-deps /wheels/*.whl",
    ]


def test_runtime_stage_has_no_build_tools() -> None:
    """The runtime stage installs nothing and copies only the finished venv from the build stage."""
    runtime = _stages()[1][1]
    for run in runtime.args_of("RUN"):
        assert not BUILD_TOOLS.search(run), run
        assert "pip install" not in run
    assert runtime.args_of("COPY") == ["--from=build /opt/engage-consumer /opt/engage-consumer"]
    assert runtime.args_of("ADD") == []


def test_runtime_runs_as_the_charts_non_root_uid() -> None:
    """USER is numeric, non-zero, and the same uid/gid the chart's securityContext demands."""
    runtime = _stages()[1][1]
    (user,) = runtime.args_of("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) != 0
    assert int(gid) != 0
    pod = CHART_VALUES["podSecurityContext"]
    assert (int(uid), int(gid)) == (pod["runAsUser"], pod["runAsGroup"])
    assert runtime.instructions.index(("USER", user)) > max(
        i for i, (kw, _) in enumerate(runtime.instructions) if kw in {"RUN", "COPY"}
    )


def test_runtime_entrypoint_port_and_environment() -> None:
    """engage-consumer run is the entrypoint, the health port is exposed, output is unbuffered."""
    runtime = _stages()[1][1]
    assert [json.loads(e) for e in runtime.args_of("ENTRYPOINT")] == [["engage-consumer"]]
    assert [json.loads(c) for c in runtime.args_of("CMD")] == [["run"]]
    assert runtime.args_of("EXPOSE") == [str(CHART_VALUES["httpPort"])]
    env = " ".join(runtime.args_of("ENV"))
    assert "PYTHONUNBUFFERED=1" in env
    assert "PATH=/opt/engage-consumer/bin:$PATH" in env


def _context_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_lets_in_only_the_wheel_inputs() -> None:
    """.dockerignore excludes everything, then allows exactly what the build stage copies."""
    patterns = _context_patterns()
    assert patterns[0] == "*"
    allowed = [p[1:].rstrip("/") for p in patterns if p.startswith("!")]
    build = _stages()[1][0]
    copied = [src for args in build.args_of("COPY") for src in args.split()[:-1]]
    assert (
        sorted(allowed)
        == sorted(copied)
        == ["README.md", "consumer", "pyproject.toml", "requirements.lock", "schemas"]
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_from_the_build_context_ships_the_schemas(tmp_path: Path) -> None:
    """pip wheel of the Docker build context yields a wheel with every schema and example."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, context / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("consumer", "schemas"):
        shutil.copytree(ROOT / name, context / name, ignore=ignore)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = tmp_path.glob("engage_consumer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    schemas = {
        "consumer/_schemas/" + path.relative_to(ROOT / "schemas").as_posix()
        for path in (ROOT / "schemas").rglob("*")
        if path.is_file()
    }
    assert schemas
    assert schemas - names == set()
    assert {"consumer/py.typed", "consumer/cli.py", "consumer/schemas.py"} <= names
    assert "engage-consumer = consumer.cli:main" in scripts
