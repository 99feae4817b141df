"""Child processes under measurement: pinned to a core, with CPU seconds and peak RSS.

Every contender (our consumer, the naive baseline, FastStream, Parallel Consumer) runs as its own
process so that its CPU time and memory are its own: ``psutil`` reads user + system time, and
the kernel's high-water mark (``VmHWM`` in /proc) is the peak RSS without sampling gaps. The
machine has two cores: contenders get core 0, the simulator core 1, and the broker floats.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

#: The core contenders run on, and the core the simulator (and this driver) run on.
CONTENDER_CPUS: frozenset[int] = frozenset({0})
SIMULATOR_CPUS: frozenset[int] = frozenset({1})


def usable_cpus() -> set[int]:
    """The machine's CPUs (not this process's affinity: the driver pins itself to one)."""
    if not hasattr(os, "sched_setaffinity"):
        return set()
    return set(range(os.cpu_count() or 1))


def pin(pid: int, cpus: Collection[int]) -> bool:
    """Pin ``pid`` to ``cpus`` when the machine has them; False when pinning was not possible."""
    wanted = set(cpus) & usable_cpus()
    if not wanted or len(usable_cpus()) < 2:
        return False
    os.sched_setaffinity(pid, wanted)
    return True


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the process's threads were runnable but waiting for a CPU (schedstat, Linux).

    On a shared machine this is the CPU the contender wanted and did not get: a run whose
    wait is a large share of its window was limited by other processes, not by itself.
    """
    total = 0
    for path in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(path.read_text().split()[1])
    return total / 1e9


def core_busy(before: list[Any], after: list[Any], cpus: Collection[int]) -> float | None:
    """Busy share of ``cpus`` between two ``psutil.cpu_times(percpu=True)`` readings."""
    busy = idle = 0.0
    for cpu in cpus:
        if cpu >= len(before) or cpu >= len(after):
            return None
        spent = {f: getattr(after[cpu], f) - getattr(before[cpu], f) for f in after[cpu]._fields}
        idle += spent.get("idle", 0.0) + spent.get("iowait", 0.0)
        busy += sum(
            v for k, v in spent.items() if k not in {"idle", "iowait", "guest", "guest_nice"}
        )
    return busy / (busy + idle) if busy + idle > 0 else None


def peak_rss_bytes(pid: int) -> int | None:
    """The kernel's high-water mark of the process's resident set (VmHWM), in bytes."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    """What a process used between two readings."""

    cpu_seconds: float
    wall_seconds: float
    peak_rss_bytes: int | None
    #: Seconds the contender was runnable but waited for a CPU (see ``runqueue_wait_seconds``).
    runqueue_wait_seconds: float = 0.0
    #: Busy share of the contender's core, by anyone (this process, the broker, other jobs).
    core_busy: float | None = None

    @property
    def cores(self) -> float:
        """Average cores busy over the window (1.0 = one core saturated)."""
        return self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


class MeasuredProcess:
    """A child process with its output in a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cpus: Collection[int] | None = CONTENDER_CPUS,
        cwd: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
        # Pinned right after the fork: the interpreter (or JVM) has not started its threads yet,
        # and threads inherit the affinity.
        self.pinned = pin(self.proc.pid, cpus) if cpus is not None else False
        self._ps = psutil.Process(self.proc.pid)
        self._mark: tuple[float, float] | None = None
        self._mark_wait = 0.0
        self._mark_cpus: list[Any] = []

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.proc.pid

    def alive(self) -> bool:
        """True while the child runs."""
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU seconds so far (all threads)."""
        times = self._ps.cpu_times()
        return float(times.user + times.system)

    def mark(self) -> None:
        """Start a measurement window now."""
        self._mark = (self.cpu_seconds(), time.monotonic())
        self._mark_wait = runqueue_wait_seconds(self.pid)
        self._mark_cpus = psutil.cpu_times(percpu=True)

    def usage(self) -> Usage:
        """CPU and wall time since ``mark`` (or since start), and the peak RSS so far."""
        cpu0, t0 = self._mark if self._mark is not None else (0.0, self._ps.create_time())
        now = time.monotonic() if self._mark is not None else time.time()
        return Usage(
            cpu_seconds=self.cpu_seconds() - cpu0,
            wall_seconds=now - t0,
            peak_rss_bytes=peak_rss_bytes(self.pid),
            runqueue_wait_seconds=runqueue_wait_seconds(self.pid) - self._mark_wait,
            core_busy=core_busy(self._mark_cpus, psutil.cpu_times(percpu=True), CONTENDER_CPUS)
            if self._mark_cpus
            else None,
        )

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the child's output (for failure reports)."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def stop(self, grace: float = 30.0) -> int:
        """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; returns the exit status."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            # A child's exit has no awaitable here (Popen, not asyncio): poll it.
            while self.proc.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.kill()
        status = self.proc.wait()
        self._log.close()
        return status


async def wait_group_ready(
    bootstrap: str, group_id: str, *, members: int = 1, within: float = 60.0
) -> float:
    """Wait until the consumer group is Stable with ``members`` members; returns seconds waited.

    Every contender joins a group named by the harness, so this one check tells when any of
    them (Python or Java) is ready to consume, without reading their logs.
    """
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    started = time.monotonic()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        async with asyncio.timeout(within):
            while True:
                try:
                    responses: list[Any] = await admin.describe_consumer_groups([group_id])
                except KafkaError:
                    # The group coordinator (the offsets topic) may not exist yet on a new broker.
                    responses = []
                if responses:
                    group = responses[0].to_object()["groups"][0]
                    if group["state"] == "Stable" and len(group["members"]) >= members:
                        return time.monotonic() - started
                await asyncio.sleep(0.2)
    finally:
        await admin.close()
