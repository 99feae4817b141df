"""A network namespace with a link of its own, for cutting one process off the broker for real.

``open_namespace()`` makes a namespace and a veth pair: inside, the process sees one address;
outside, the host side of the veth gets two, one for a broker listener and one for the Engage
simulator, so that a blackhole route inside the namespace (``cut``) drops everything to the
broker (connections hang, as across a real partition) while the simulator stays reachable.
Everything is removed when the block ends, pass or fail. Needs root and iproute2 (``ip``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


def usable() -> str | None:
    """Why namespaces cannot be used here (None: they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True, kw_only=True)
class Namespace:
    """A namespace, the address its process has, and the two host addresses it can reach."""

    name: str
    inner_ip: str
    broker_ip: str
    engage_ip: str

    @property
    def prefix(self) -> list[str]:
        """Run a command inside: ``[*ns.prefix, "python", ...]``."""
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        """Drop every packet to the broker's address (existing connections hang)."""
        _ip("netns", "exec", self.name, "ip", "route", "add", "blackhole", f"{self.broker_ip}/32")

    def heal(self) -> None:
        """Let packets to the broker through again."""
        _ip("netns", "exec", self.name, "ip", "route", "del", "blackhole", f"{self.broker_ip}/32")

    def wait_reachable(self, address: str, timeout: float = 10.0) -> None:
        """Until a TCP connection from inside to ``host:port`` opens (a fresh veth can lag)."""
        host, _, port = address.rpartition(":")
        probe = (
            "import socket, sys, time\n"
            f"end = time.monotonic() + {timeout}\n"
            "while True:\n"
            "    try:\n"
            f"        socket.create_connection(({host!r}, {int(port)}), timeout=1).close()\n"
            "        break\n"
            "    except OSError:\n"
            "        if time.monotonic() > end: sys.exit(1)\n"
            "        time.sleep(0.05)\n"
        )
        subprocess.run([*self.prefix, sys.executable, "-c", probe], check=True, timeout=timeout + 5)


@contextmanager
def open_namespace(tag: str = "ec") -> Iterator[Namespace]:
    """A namespace named after this process, linked to the host by one veth pair."""
    n = os.getpid() % 250 + 1
    name, host_link, inner_link = f"{tag}{n}", f"{tag}h{n}", f"{tag}n{n}"
    base = f"10.213.{n}"
    ns = Namespace(name=name, inner_ip=f"{base}.2", broker_ip=f"{base}.1", engage_ip=f"{base}.3")
    try:
        _ip("netns", "add", name)
        _ip("link", "add", host_link, "type", "veth", "peer", "name", inner_link)
        _ip("link", "set", inner_link, "netns", name)
        _ip("addr", "add", f"{ns.broker_ip}/29", "dev", host_link)
        _ip("addr", "add", f"{ns.engage_ip}/29", "dev", host_link)
        _ip("link", "set", host_link, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{ns.inner_ip}/29", "dev", inner_link)
        _ip("netns", "exec", name, "ip", "link", "set", inner_link, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", host_link], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
