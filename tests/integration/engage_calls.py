"""Helpers of the tests that drive the Engage client and dispatcher against the simulator."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from consumer.config import Secret
from consumer.engage import EngageClientSettings
from consumer.retry import RetryPolicy
from consumer.service import DispatchSettings, open_dispatcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from consumer.sandbox.engage import EngageSimulator
    from consumer.service import Dispatcher

FAST_RETRY = RetryPolicy(base=0.05, cap=0.5, max_attempts=8)


def order(order_id: str, *, contact: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"orderId": order_id, "status": "placed", "currencyCode": "SEK"}
    if contact:
        body["contact"] = {"matchKey": f"{order_id}@example.com", "matchKeyType": "Email"}
    return body


@asynccontextmanager
async def dispatcher_for(
    sim: EngageSimulator, *, api_key: str | None = None, **settings: Any
) -> AsyncIterator[Dispatcher]:
    client_settings = EngageClientSettings(
        base_url=sim.base_url,
        api_key=Secret(api_key or sim.api_key),
        user_agent="engage-consumer-tests/1",
        read_timeout=5.0,
    )
    async with open_dispatcher(
        client_settings, DispatchSettings(**{"retry": FAST_RETRY, **settings})
    ) as dispatcher:
        yield dispatcher


def deadline(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def actions(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The simulator's journal entries of accepted actions."""
    return [e for e in journal if e["kind"] == "action"]
