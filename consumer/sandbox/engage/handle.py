"""What both simulator handles (in-process and child process) offer: ``EngageSimulatorHandle``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from consumer.sandbox.engage.settings import Faults


class EngageSimulatorHandle(Protocol):
    """What both handles (in-process and child process) offer to tests, demo and benchmark."""

    base_url: str

    @property
    def api_key(self) -> str: ...  # noqa: D102

    async def journal(self, since: int = 0) -> list[dict[str, Any]]: ...  # noqa: D102
    async def stats(self) -> dict[str, Any]: ...  # noqa: D102
    async def set_faults(self, faults: Faults) -> None: ...  # noqa: D102
    async def reset(self) -> None: ...  # noqa: D102
    async def fail_next_job(self, order_id: str, kind: str = "unprocessable") -> None: ...  # noqa: D102
    async def set_api_keys(self, keys: tuple[str, ...]) -> None: ...  # noqa: D102
    async def per_second(self) -> list[tuple[int, int, int]]: ...  # noqa: D102
    async def requests(self) -> list[tuple[float, str, str, int | str]]: ...  # noqa: D102
