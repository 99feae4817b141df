"""The per-order state machine: which write or action of each order goes to Engage next, and how.

Pure: no I/O, no asyncio, no wall clock; imports nothing of the consumer outside this folder.
``book`` is the machine (its docstring holds the transition table), ``ops`` the values it
trades in (ops in, effects out, the states), ``entries`` what it remembers per order.
"""

from consumer.orders.book import OrderBook
from consumer.orders.ops import (
    Action,
    Call,
    Effect,
    FetchTag,
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
