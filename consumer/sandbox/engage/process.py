"""The Engage simulator in a separate process, for the benchmark and the demo.

A load test must not let the simulator share the consumer's CPU core (or its event loop), so
``open_engage_simulator_process`` starts ``python -m consumer.sandbox.engage`` (the same code
as ``engage-consumer sandbox engage``, run as a module so that it does not depend on every
other subcommand importing cleanly), reads the address from its ready line, optionally pins it
to chosen CPUs, and on exit sends SIGTERM and waits (killing it if it hangs). The handle offers
the same coroutines as the in-process one, over the ``/_sim`` control routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import httpx

from consumer.sandbox.engage.settings import Faults, SimulatorSettings, settings_to_argv
from consumer.sandbox.errors import SandboxError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection

#: The line ``sandbox engage`` prints once it listens; tools and people both read it.
READY_PATTERN = re.compile(r"^engage simulator ready: base_url=(?P<url>\S+) apikey=(?P<key>\S+)")


class EngageSimulatorProcess:
    """A simulator running in a child process; controlled over its ``/_sim`` routes."""

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        settings: SimulatorSettings,
        process: asyncio.subprocess.Process,
        client: httpx.AsyncClient,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.settings = settings
        self.process = process
        self._client = client

    @property
    def pid(self) -> int:
        """The child's process id (to pin it to a CPU, or to watch its usage)."""
        return self.process.pid

    async def _call(
        self, method: str, path: str, *, json: object = None, params: dict[str, int] | None = None
    ) -> Any:  # noqa: ANN401 - the control route's JSON
        response = await self._client.request(method, path, json=json, params=params)
        response.raise_for_status()
        return response.json()

    async def journal(self, since: int = 0) -> list[dict[str, Any]]:
        """Every journal entry with ``seq > since``, oldest first (fetched page by page)."""
        entries: list[dict[str, Any]] = []
        while True:
            page = await self._call("GET", "/_sim/journal", params={"since": since})
            entries += page["entries"]
            since = page["lastSeq"]
            if not page["more"]:
                return entries

    async def stats(self) -> dict[str, Any]:
        """The simulator's counters."""
        result: dict[str, Any] = await self._call("GET", "/_sim/stats")
        return result

    async def per_second(self) -> list[tuple[int, int, int]]:
        """``(second, requests, 429s)`` per second since the start."""
        rows: list[list[int]] = await self._call("GET", "/_sim/per-second")
        return [(row[0], row[1], row[2]) for row in rows]

    async def requests(self) -> list[tuple[float, str, str, int | str]]:
        """The request log (``SimulatorSettings.request_log``): time, client, route, status."""
        rows: list[list[Any]] = await self._call("GET", "/_sim/requests")
        return [(float(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]

    async def set_api_keys(self, keys: tuple[str, ...]) -> None:
        """Accept exactly ``keys`` from now on."""
        await self._call("POST", "/_sim/api-keys", json={"apiKeys": list(keys)})

    async def set_faults(self, faults: Faults) -> None:
        """Replace the injected faults; a non-zero outage starts now.

        During a ``refuse`` outage the control routes are unreachable too, until it ends.
        """
        await self._call("POST", "/_sim/faults", json=faults.to_json())

    async def reset(self) -> None:
        """Forget orders, jobs, journal and counters (faults stay as they are)."""
        await self._call("POST", "/_sim/reset")

    async def fail_next_job(self, order_id: str, kind: str = "unprocessable") -> None:
        """Make the next write accepted for ``order_id`` fail with ``kind``."""
        await self._call("POST", "/_sim/fail-next", json={"orderId": order_id, "kind": kind})


async def _read_ready(process: asyncio.subprocess.Process, wait_s: float) -> tuple[str, str]:
    assert process.stdout is not None
    async with asyncio.timeout(wait_s):
        while line := await process.stdout.readline():
            match = READY_PATTERN.match(line.decode(errors="replace"))
            if match:
                return match["url"], match["key"]
    status = await process.wait()
    raise SandboxError(f"engage simulator exited with status {status} before it was ready")


async def _stop(process: asyncio.subprocess.Process, grace: float) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(grace):
            await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.communicate()


@asynccontextmanager
async def open_engage_simulator_process(
    settings: SimulatorSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    cpus: Collection[int] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
) -> AsyncIterator[EngageSimulatorProcess]:
    """Run a simulator in a child process for the duration of the block.

    ``cpus`` pins the child to those CPU numbers (Linux), so a benchmark can keep it off the
    consumer's core. Raises ``SandboxError`` when it does not become ready in ``start_timeout``.
    """
    settings = settings or SimulatorSettings()
    argv = [sys.executable, "-m", "consumer.sandbox.engage", "--host", host, "--port", str(port)]
    process = await asyncio.create_subprocess_exec(
        *argv, *settings_to_argv(settings), stdout=asyncio.subprocess.PIPE
    )
    try:
        if cpus is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(process.pid, set(cpus))
        try:
            base_url, api_key = await _read_ready(process, start_timeout)
        except TimeoutError:
            raise SandboxError(
                f"engage simulator did not print its ready line within {start_timeout:g} s"
            ) from None
        async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as client:
            yield EngageSimulatorProcess(
                base_url=base_url,
                api_key=api_key,
                settings=settings,
                process=process,
                client=client,
            )
    finally:
        await _stop(process, stop_timeout)
