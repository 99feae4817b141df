"""Prototype: our consumer with httpx on aiohttp's transport (``httpx-aiohttp``), unchanged code.

The Engage client builds its ``httpx.AsyncClient`` without a transport; this launcher makes
httpx default to ``httpx_aiohttp.AiohttpTransport`` (sized like the client's own pool) and then
runs ``engage-consumer run``. Nothing in consumer/ changes, so a before/after comparison on the
same workload isolates the transport. Only the consumer process is patched.
"""

from __future__ import annotations

import sys
from typing import Any

import httpx
from httpx_aiohttp import AiohttpTransport

from consumer.cli import main as consumer_main

_original_init = httpx.AsyncClient.__init__


def _init_with_aiohttp(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
    if kwargs.get("transport") is None:
        limits = kwargs.get("limits") or httpx.Limits(max_connections=100)
        kwargs["transport"] = AiohttpTransport(limits=limits)
    _original_init(self, *args, **kwargs)


def main() -> int:
    httpx.AsyncClient.__init__ = _init_with_aiohttp  # type: ignore[method-assign]
    return consumer_main(["run"])


if __name__ == "__main__":
    sys.exit(main())
