"""Memory of idle tracked orders: fill an ``OrderBook`` with N confirmed, idle orders and measure.

Run in a fresh process (``python -m bench.memory --orders 1000000 --mode rss``) so that nothing
else lives in the heap. Each order goes through the book's own path: a write submitted, then
reported done with a 16-hex-digit versionTag (the simulator's format) and a revision, which
leaves it idle and confirmed. Two measurements, each in its own process:

- ``rss``: resident set before and after (after ``gc.collect()``), divided by N: what the
  operating system charges per order, key string and tag included;
- ``tracemalloc``: bytes Python allocated and still holds, divided by N (no allocator slack).

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
from typing import Any

import orjson
import psutil

from consumer.orders import OrderBook, Write


def fill(book: OrderBook, orders: int) -> None:
    """Make ``orders`` orders idle and confirmed in ``book``."""
    for n in range(orders):
        # Order ids as producers write them; built per order, like decoded records would be.
        order_id = f"ORD-2026-{n:08d}"
        write = Write(token=n, kind="upsert", revision=3, deadline=1e18)
        book.submit(order_id, write)
        book.write_done(
            order_id, n, tag=f"{n * 2654435761 % 2**64:016x}", status="accepted", reason=None
        )


def measure(orders: int, mode: str) -> dict[str, Any]:
    """Fill a book and report the memory it holds per idle order."""
    process = psutil.Process()
    gc.collect()
    if mode == "tracemalloc":
        tracemalloc.start()
    rss_before = process.memory_info().rss
    book = OrderBook(max_tracked=orders + 1, clock=time.monotonic, revision_wait=30.0)
    started = time.perf_counter()
    fill(book, orders)
    seconds = time.perf_counter() - started
    gc.collect()
    rss_after = process.memory_info().rss
    result: dict[str, Any] = {
        "mode": mode,
        "orders": orders,
        "tracked": book.tracked(),
        "busy": book.busy(),
        "fill_seconds": round(seconds, 2),
        "rss_before": rss_before,
        "rss_after": rss_after,
    }
    if mode == "tracemalloc":
        traced, _peak = tracemalloc.get_traced_memory()
        result["traced_bytes"] = traced
        result["bytes_per_order"] = traced / orders
    else:
        result["bytes_per_order"] = (rss_after - rss_before) / orders
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--mode", choices=("rss", "tracemalloc"), default="rss")
    args = parser.parse_args()
    sys.stdout.write(orjson.dumps(measure(args.orders, args.mode)).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
