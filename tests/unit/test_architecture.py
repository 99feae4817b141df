"""The layout rules of the package, read from the code itself (docs/architecture.md says why).

- every module opens with a docstring;
- no module outside ``consumer/sandbox`` passes 600 lines, no class 450;
- code outside a folder imports only the folder's surface (its ``__init__``), and code inside a
  folder never imports its own surface (that would be a cycle through ``__init__``);
- dependencies point inward: each folder imports only the parts listed for it below;
- no import cycle anywhere, type-only imports included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "consumer"

#: The folders with a public surface, and what each may import from the rest of the consumer.
#: ``consumer.types`` and ``consumer.errors`` are open to all.
FOLDERS: dict[str, set[str]] = {
    "consumer.orders": set(),
    "consumer.config": {"consumer.events"},
    "consumer.engage": {"consumer.config", "consumer.polling", "consumer.tracing"},
    "consumer.kafka": {"consumer.config", "consumer.offsets"},
    "consumer.service": {
        "consumer.config",
        "consumer.credentials",
        "consumer.engage",
        "consumer.events",
        "consumer.health",
        "consumer.kafka",
        "consumer.logs",
        "consumer.metrics",
        "consumer.offsets",
        "consumer.orders",
        "consumer.outcomes",
        "consumer.ratebudget",
        "consumer.retry",
        "consumer.tracing",
    },
    "consumer.tracing": {"consumer.events", "consumer.logs", "consumer.orders"},
    "consumer.replay": {"consumer.events", "consumer.outcomes", "consumer.results"},
    "consumer.sandbox.engage": {"consumer.sandbox"},
    "consumer.sandbox.kafka": {"consumer.sandbox"},
}
#: Modules every module may import.
OPEN_TO_ALL = {"consumer", "consumer.types", "consumer.errors"}
#: The pure core: the contract, the policies and the state machine import no I/O library.
PURE = [
    "consumer.orders",
    "consumer.offsets",
    "consumer.polling",
    "consumer.events",
    "consumer.schemas",
    "consumer.outcomes",
    "consumer.results",
    "consumer.replay",
    "consumer.types",
]
IO_LIBRARIES = {"aiokafka", "httpx", "aiohttp", "httpx_aiohttp", "anyio", "asyncio", "socket"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES: dict[str, ast.Module] = {name: ast.parse(p.read_text()) for name, p in MODULES.items()}


def imports(name: str) -> list[tuple[str, int]]:
    """(imported module, line) for every import in a module, type-only ones included.

    ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``.
    """
    found: list[tuple[str, int]] = []
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(TREES[name]):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.append((target if target in MODULES else base, node.lineno))
    return found


def folder_of(module: str) -> str | None:
    """The innermost folder with a surface that holds ``module`` (None: a top-level module)."""
    owners = [f for f in FOLDERS if module == f or module.startswith(f + ".")]
    return max(owners, key=len, default=None)


def test_every_module_says_what_it_is() -> None:
    """Each module opens with a docstring."""
    missing = [name for name, tree in TREES.items() if ast.get_docstring(tree) is None]
    assert missing == []


def test_no_room_grows_past_one_job() -> None:
    """No module outside the sandbox over 600 lines, no class over 450."""
    too_big: list[str] = []
    for name, path in MODULES.items():
        if name.startswith("consumer.sandbox"):
            continue
        lines = len(path.read_text().splitlines())
        if lines > 600:
            too_big.append(f"{name}: {lines} lines")
        for node in ast.walk(TREES[name]):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > 450:
                    too_big.append(f"{name}.{node.name}: {length} lines")
    assert too_big == []


def test_folders_are_entered_through_their_surface() -> None:
    """Outside a folder, only its ``__init__`` is imported; inside, never the folder's own."""
    wrong: list[str] = []
    for name in MODULES:
        mine = folder_of(name)
        for target, line in imports(name):
            theirs = folder_of(target)
            if theirs is None:
                continue
            if theirs not in (mine, target) and not name.startswith(theirs + "."):
                wrong.append(f"{name}:{line} imports {target}, not the surface {theirs}")
            if theirs == mine and target == mine and name != mine:
                wrong.append(f"{name}:{line} imports its own folder's surface {mine}")
    assert wrong == []


def allowed(name: str, target: str) -> bool:  # noqa: PLR0911 - one rule per return
    """Whether module ``name`` may import ``target`` under the dependency rules."""
    if not target.startswith("consumer") or target in OPEN_TO_ALL:
        return True
    mine = folder_of(name)
    if mine is not None:
        if target == mine or target.startswith(mine + "."):
            return True
        return any(target == a or target.startswith(a + ".") for a in FOLDERS[mine])
    if name.startswith("consumer.sandbox"):
        return target.startswith("consumer.sandbox")
    if target.startswith(("consumer.commands", "consumer.cli")):
        return name.startswith(("consumer.cli", "consumer.commands"))
    if target.startswith("consumer.sandbox"):
        return name.startswith("consumer.commands")
    if target.startswith("consumer.service"):
        return name.startswith(("consumer.service", "consumer.commands"))
    return True


def test_dependencies_point_inward() -> None:
    """Each folder imports only what its row in ``FOLDERS`` allows; the service is imported
    only by the commands; the sandbox imports nothing of the service and the reverse."""
    wrong = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        for target, line in imports(name)
        if not allowed(name, target)
    ]
    assert wrong == []


@pytest.mark.parametrize("core", PURE)
def test_the_pure_core_does_no_io(core: str) -> None:
    """The contract, the offsets, the poll schedule and the state machine import no I/O."""
    wrong = [
        f"{name}:{line} imports {target}"
        for name in MODULES
        if name == core or name.startswith(core + ".")
        for target, line in imports(name)
        if target.split(".")[0] in IO_LIBRARIES
    ]
    assert wrong == []


def test_no_import_cycle() -> None:
    """The module graph (type-only imports included) has no cycle."""
    graph = {
        name: sorted({t for t, _ in imports(name) if t in MODULES and t != name})
        for name in MODULES
    }
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert cycles == []
