"""Pinning a folder's public surface (as httpx's tests/test_exported_members.py does)."""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType


def assert_surface(package: str, expected: list[str]) -> ModuleType:
    """``package.__all__`` is exactly ``expected``, and every name is the folder's own.

    Each exported class or function must be defined inside the folder, so that the surface is
    where it lives, not a re-export of something from elsewhere.
    """
    module = importlib.import_module(package)
    assert sorted(module.__all__) == sorted(expected)
    foreign = []
    for name in module.__all__:
        member = getattr(module, name)
        if not (inspect.isclass(member) or inspect.isfunction(member)):
            continue  # constants and type aliases carry no home of their own
        home = member.__module__
        if not home.startswith(package):
            foreign.append(f"{name} comes from {home}")
    assert foreign == []
    return module
