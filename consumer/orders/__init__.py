"""The per-order state machine: which write or action of each order goes to Engage next, and how.

Pure: no I/O, no asyncio, no wall clock; imports nothing of the consumer outside this folder.
``book`` keeps the orders and is what callers use, ``machine`` applies the rules (its
docstring holds the transition table), ``ops`` the values they trade in (ops in, effects out,
the states, ``Knowledge``), ``entries`` what is remembered per order.
"""

from consumer.orders.book import OrderBook
from consumer.orders.ops import (
    Action,
    Call,
    Effect,
    FetchTag,
    Knowledge,
    Op,
    OrderSnapshot,
    ResultStatus,
    SendAction,
    SendWrite,
    Settle,
    SettleStatus,
    State,
    Write,
)

__all__ = [
    "Action",
    "Call",
    "Effect",
    "FetchTag",
    "Knowledge",
    "Op",
    "OrderBook",
    "OrderSnapshot",
    "ResultStatus",
    "SendAction",
    "SendWrite",
    "Settle",
    "SettleStatus",
    "State",
    "Write",
]
