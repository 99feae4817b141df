"""requirements.lock still satisfies pyproject.toml: checked offline, from the two files alone.

The image installs exactly the lock (Dockerfile: ``pip install --require-hashes``), so a lock that
lags pyproject.toml ships versions the project no longer accepts, and one that pins dev tools
over-constrains the image. ``lock_problems`` compares the files and names every disagreement:

- each runtime dependency (``[project] dependencies`` whose marker holds on the lock's target,
  CPython 3.11 on Linux x86_64) has a pin whose version its specifier accepts;
- each pin is exact (``==``) and carries at least one ``--hash``;
- each pin is needed at run time: a runtime dependency, or, by the lock's ``# via`` notes, needed
  by a pin that is. A dev-only dependency may be pinned only as some runtime pin's dependency.

No network and no resolver: this says the lock is consistent, not that it is the newest.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "./dev lock"
# The environment the lock is compiled for (see the uv command in requirements.lock's header):
# a dependency whose marker is false there is not expected in the lock.
TARGET = {
    "implementation_name": "cpython",
    "os_name": "posix",
    "platform_machine": "x86_64",
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "python_full_version": "3.11.0",
    "python_version": "3.11",
    "sys_platform": "linux",
}
HASH = re.compile(r"\s--hash=(\S+)")


@dataclass(frozen=True, kw_only=True, slots=True)
class Pin:
    """One locked requirement: its exact version, its hashes and who needs it (``# via``)."""

    name: NormalizedName
    version: Version
    hashes: tuple[str, ...]
    via: frozenset[NormalizedName]


def _logical_lines(text: str) -> list[str]:
    """The lines of a requirements file with backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            current += raw[:-1] + " "
            continue
        lines.append(current + raw)
        current = ""
    if current:
        lines.append(current)
    return lines


def read_lock(text: str) -> tuple[dict[NormalizedName, Pin], list[str]]:
    """The pins of a requirements file as uv writes it, and the lines that are not exact pins."""
    found: dict[NormalizedName, tuple[Requirement, tuple[str, ...], set[NormalizedName]]] = {}
    problems: list[str] = []
    via: set[NormalizedName] | None = None  # the ``# via`` names of the last pin, while read
    in_via = False
    for line in _logical_lines(text):
        stripped = line.strip()
        if stripped.startswith("#"):
            note = stripped[1:].strip()
            if note.startswith("via"):
                in_via, note = True, note[3:].strip()
            if via is not None and in_via and note and not note.startswith("-"):
                # "engage-consumer (pyproject.toml)" and "aiohttp" both name a distribution first.
                via.add(canonicalize_name(note.split()[0]))
            continue
        in_via = False
        if not stripped or stripped.startswith("-"):
            continue  # a blank line or a pip option such as --index-url
        hashes = tuple(HASH.findall(" " + stripped))
        spec = HASH.sub("", " " + stripped).strip()
        try:
            requirement = Requirement(spec)
        except InvalidRequirement as error:
            problems.append(f"{spec}: not a requirement ({error})")
            via = None
            continue
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            problems.append(f"{spec}: not pinned to one version with ==")
            via = None
            continue
        name = canonicalize_name(requirement.name)
        if name in found:
            problems.append(f"{name}: pinned twice (the lock is for one target)")
        via = set()
        found[name] = (requirement, hashes, via)
    pins = {
        name: Pin(
            name=name,
            version=Version(next(iter(requirement.specifier)).version),
            hashes=hashes,
            via=frozenset(parents),
        )
        for name, (requirement, hashes, parents) in found.items()
    }
    return pins, problems


def _applies(requirement: Requirement) -> bool:
    return requirement.marker is None or requirement.marker.evaluate(TARGET)


def lock_problems(pyproject: Path, lock: Path) -> list[str]:
    """Every way the lock disagrees with pyproject.toml's runtime dependencies, one line each."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    project_name = canonicalize_name(project["name"])
    runtime = [Requirement(dep) for dep in project.get("dependencies", [])]
    dev_only = {
        canonicalize_name(Requirement(dep).name)
        for extra in project.get("optional-dependencies", {}).values()
        for dep in extra
    }
    pins, problems = read_lock(lock.read_text(encoding="utf-8"))

    direct: set[NormalizedName] = set()
    for requirement in filter(_applies, runtime):
        name = canonicalize_name(requirement.name)
        direct.add(name)
        pin = pins.get(name)
        if pin is None:
            problems.append(f"{name}: pyproject.toml requires {requirement} but the lock pins none")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{name}: pyproject.toml requires {requirement} but the lock pins {pin.version}"
            )

    # Needed: a runtime dependency, or needed by a needed pin (the project itself does not count:
    # it is the "via" of every direct pin, dev extras included when one compiles with them).
    needed = set(direct)
    grown = True
    while grown:
        grown = False
        for pin in pins.values():
            if pin.name not in needed and (pin.via - {project_name}) & needed:
                needed.add(pin.name)
                grown = True
    dev_only -= direct
    for pin in pins.values():
        if not pin.hashes:
            problems.append(f"{pin.name}=={pin.version}: no --hash, --require-hashes refuses it")
        if pin.name in needed:
            continue
        if pin.name in dev_only:
            problems.append(f"{pin.name}=={pin.version}: dev-only, needed by no runtime dependency")
        else:
            problems.append(f"{pin.name}=={pin.version}: no runtime dependency needs it")
    return problems


def test_lock_satisfies_the_runtime_dependencies_of_pyproject() -> None:
    """requirements.lock pins, with hashes, what pyproject.toml requires at run time and no more."""
    problems = lock_problems(ROOT / "pyproject.toml", ROOT / "requirements.lock")
    assert problems == [], "\n".join(
        ["requirements.lock disagrees with pyproject.toml:", *problems, f"regenerate: {REGENERATE}"]
    )


def test_a_specifier_the_locked_version_misses_is_reported(tmp_path: Path) -> None:
    """Raising httpx's floor in a copy of pyproject.toml above the locked httpx is caught."""
    lock = tmp_path / "requirements.lock"
    shutil.copy(ROOT / "requirements.lock", lock)
    pinned = read_lock(lock.read_text(encoding="utf-8"))[0][canonicalize_name("httpx")].version
    text, replaced = re.subn(
        r'"httpx\s*[<>=!~][^"]*"',
        f'"httpx>{pinned}"',
        (ROOT / "pyproject.toml").read_text(encoding="utf-8"),
    )
    assert replaced == 1
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(text, encoding="utf-8")

    assert lock_problems(pyproject, lock) == [
        f"httpx: pyproject.toml requires httpx>{pinned} but the lock pins {pinned}"
    ]


SMALL_PYPROJECT = """
[project]
name = "demo"
dependencies = [
  "httpx>=0.28,<0.29",
  "Prometheus_Client>=0.21",
  "orjson>=3.10",
  "structlog>=25.1",
  "tomli>=2; python_version < '3.11'",
]
[project.optional-dependencies]
dev = ["pytest>=8", "packaging>=24"]
"""

SMALL_LOCK = """\
# This file was autogenerated by uv via the following command:
#    uv pip compile pyproject.toml --generate-hashes
httpx==0.28.1 \\
    --hash=sha256:aa \\
    --hash=sha256:ab
    # via demo (pyproject.toml)
packaging==26.0 \\
    --hash=sha256:bb
    # via
    #   demo (pyproject.toml)
    #   httpx
prometheus-client==0.26.0 --hash=sha256:cc
    # via demo (pyproject.toml)
orjson==3.10.0
    # via demo (pyproject.toml)
pytest==8.3.0 \\
    --hash=sha256:dd
    # via demo (pyproject.toml)
iniconfig==2.0 \\
    --hash=sha256:ee
    # via pytest
anyio>=4 --hash=sha256:ff
"""


def test_missing_unhashed_unpinned_and_dev_only_pins_are_reported(tmp_path: Path) -> None:
    """Each kind of disagreement is one line naming the dependency; names compare per PEP 503.

    packaging is a dev dependency but also httpx's (here), so its pin is fine; tomli's marker is
    false on Python 3.11, so the lock need not pin it.
    """
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(SMALL_PYPROJECT, encoding="utf-8")
    lock = tmp_path / "requirements.lock"
    lock.write_text(SMALL_LOCK, encoding="utf-8")

    assert lock_problems(pyproject, lock) == [
        "anyio>=4: not pinned to one version with ==",
        "structlog: pyproject.toml requires structlog>=25.1 but the lock pins none",
        "orjson==3.10.0: no --hash, --require-hashes refuses it",
        "pytest==8.3.0: dev-only, needed by no runtime dependency",
        "iniconfig==2.0: no runtime dependency needs it",
    ]
