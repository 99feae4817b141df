"""FastStream peer: the action-only workload through FastStream + faststream-concurrent-aiokafka.

What a team would write with FastStream: one subscriber, the concurrent-processing middleware
(manual acks, ``concurrency_limit`` = the in-flight bound), httpx for Engage (the same HTTP
client as ours), an outcome published per event. It learns a key's versionTag with one GET on
first sight (one shared future per key, so concurrent events of a new key do not GET twice);
it has no per-key ordering, which the action-only workload does not need (every action of a key
carries the same tag).

    python -m bench.faststream_peer --bootstrap H:P --topic T --results R --group G \
        --base-url URL --api-key KEY --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from faststream import FastStream
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.middlewares import AckPolicy
from faststream_concurrent_aiokafka import (
    KafkaConcurrentProcessingMiddleware,
    initialize_concurrent_processing,
    stop_concurrent_processing,
)


def build(args: argparse.Namespace) -> FastStream:
    """The FastStream app: broker, middleware, one subscriber."""
    broker = KafkaBroker(args.bootstrap, logger=None)
    broker.add_middleware(KafkaConcurrentProcessingMiddleware)
    headers = {
        "apikey": args.api_key,
        "User-Agent": "faststream/1",
        "Content-Type": "application/json",
    }
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    http = httpx.AsyncClient(base_url=args.base_url, headers=headers, limits=limits, timeout=60)
    tags: dict[str, asyncio.Future[str]] = {}

    async def tag_of(order_id: str) -> str:
        future = tags.get(order_id)
        if future is None:
            future = tags[order_id] = asyncio.get_running_loop().create_future()
            answer = await http.get(f"/api/v3/orders/{order_id}")
            future.set_result(answer.json()["versionTag"])
        return await future

    @broker.subscriber(  # type: ignore[untyped-decorator]  # FastStream's overloads are untyped
        args.topic,
        group_id=args.group,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
    )
    async def handle(event: dict[str, Any], msg: KafkaMessage) -> None:
        # FastStream decodes the JSON body itself (its idiomatic use); timing starts after that.
        received = datetime.now(UTC)
        started = time.perf_counter()
        data = event["data"]
        order_id = event["subject"]
        engage_started = time.perf_counter()
        tag = await tag_of(order_id)
        payload = {"action": data["action"], "versionTag": tag, "language": data.get("language")}
        if "data" in data:
            payload["data"] = data["data"]
        answer = await http.post(f"/api/v3/orders/{order_id}/action", content=orjson.dumps(payload))
        engage_ms = (time.perf_counter() - engage_started) * 1000
        outcome = {
            "data": {
                "eventId": event["id"],
                "eventType": event["type"],
                "operation": "action",
                "status": "accepted" if answer.status_code == 202 else "rejected",
                "httpStatus": answer.status_code,
                "timings": {
                    "receivedAt": received.isoformat(),
                    "finishedAt": datetime.now(UTC).isoformat(),
                    "totalMs": (time.perf_counter() - started) * 1000,
                    "engageMs": engage_ms,
                },
            }
        }
        await broker.publish(orjson.dumps(outcome), topic=args.results, key=order_id.encode())
        await msg.ack()

    async def start_processing() -> None:
        await initialize_concurrent_processing(
            context=broker.context,
            concurrency_limit=args.concurrency,
            commit_batch_size=100,
            commit_batch_timeout_sec=1.0,
        )

    async def stop_processing() -> None:
        await stop_concurrent_processing(broker.context)
        await http.aclose()

    return FastStream(broker, on_startup=[start_processing], on_shutdown=[stop_processing])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("bootstrap", "topic", "results", "group", "base-url", "api-key"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--concurrency", type=int, default=64)
    app = build(parser.parse_args())
    asyncio.run(app.run(log_level=logging.WARNING))
    return 0


if __name__ == "__main__":
    sys.exit(main())
