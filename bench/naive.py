"""The naive baseline: how a Kafka → Engage integration is commonly written by hand.

One event at a time per partition (a worker per partition, so partitions do not block each
other), each event carried through to the end before the next: write the order (POST, or PUT
when it was written before), poll its job at a fixed interval until it is done, GET the order
for its versionTag, then post the action with that tag. A 429 waits a second and tries again.
Offsets are committed per partition after each event; an outcome per event goes to the results
topic, in the fields the benchmark reads. aiokafka + httpx, as such code usually is.

    python -m bench.naive --bootstrap H:P --topic T --results R --group G \
        --base-url URL --api-key KEY [--poll-interval 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from consumer.events import DEFAULT_ACTION_MAP

#: Seconds spent inside Engage calls by the event being handled (one worker = one context).
_ENGAGE_SECONDS: ContextVar[list[float]] = ContextVar("engage_seconds")


class NaiveConsumer:
    """Sequential per partition; see the module docstring."""

    def __init__(self, args: argparse.Namespace, http: httpx.AsyncClient) -> None:
        self.args = args
        self.http = http
        self.tags: dict[str, str] = {}
        self.known: set[str] = set()

    async def call(self, method: str, url: str, body: object = None) -> httpx.Response:
        """One request; waits and retries on 429 and 5xx (a sleep, as hand-written code does)."""
        content = None if body is None else orjson.dumps(body)
        for _ in range(100):
            started = time.perf_counter()
            answer = await self.http.request(method, url, content=content)
            _ENGAGE_SECONDS.get([0.0])[0] += time.perf_counter() - started
            if answer.status_code != 429 and answer.status_code < 500:
                return answer
            await asyncio.sleep(1.0)
        return answer

    async def write(self, order_id: str, body: dict[str, Any]) -> tuple[str, int]:
        """Write the order, poll its job at a fixed interval, read the new tag."""
        if order_id in self.known:
            answer = await self.call("PUT", f"/api/v3/orders/{order_id}", body)
            if answer.status_code == 404:
                answer = await self.call("POST", "/api/v3/orders", body)
        else:
            answer = await self.call("POST", "/api/v3/orders", body)
            if answer.status_code == 409:
                answer = await self.call("PUT", f"/api/v3/orders/{order_id}", body)
        if answer.status_code not in {201, 202}:
            return "rejected", answer.status_code
        job = answer.headers["Location"]
        for _ in range(10_000):
            await asyncio.sleep(self.args.poll_interval)
            polled = await self.call("GET", job)
            if polled.status_code == 302:
                break
            if polled.status_code >= 400:
                return "failed", polled.status_code
        self.known.add(order_id)
        order = await self.call("GET", f"/api/v3/orders/{order_id}")
        self.tags[order_id] = order.json()["versionTag"]
        return "accepted", answer.status_code

    async def action(self, order_id: str, name: str, data: dict[str, Any]) -> tuple[str, int]:
        """Post the action with the tag of the order's last write (GET it when unknown)."""
        if order_id not in self.tags:
            order = await self.call("GET", f"/api/v3/orders/{order_id}")
            if order.status_code != 200:
                return "rejected", order.status_code
            self.tags[order_id] = order.json()["versionTag"]
        body: dict[str, Any] = {"action": name, "versionTag": self.tags[order_id]}
        if data.get("language"):
            body["language"] = data["language"]
        extra = data.get("actionData", data.get("data"))
        if extra is not None:
            body["data"] = extra
        answer = await self.call("POST", f"/api/v3/orders/{order_id}/action", body)
        return ("accepted" if answer.status_code == 202 else "rejected"), answer.status_code

    async def handle(self, event: dict[str, Any]) -> tuple[str, str, int]:
        """Carry one event through; returns (operation, status, http status)."""
        order_id, kind, data = event["subject"], event["type"], event.get("data") or {}
        if kind == "order.upserted":
            return ("upsert", *await self.write(order_id, data["order"]))
        if kind == "order.deleted":
            answer = await self.call("DELETE", f"/api/v3/orders/{order_id}")
            self.tags.pop(order_id, None)
            return "delete", "accepted", answer.status_code
        if kind == "order.action":
            return ("action", *await self.action(order_id, data["action"], data))
        if isinstance(data.get("order"), dict):
            status, code = await self.write(order_id, data["order"])
            if status != "accepted":
                return "action", "failed", code
        return ("action", *await self.action(order_id, DEFAULT_ACTION_MAP[kind], data))


async def run(args: argparse.Namespace) -> None:
    """Consume until SIGTERM."""
    consumer = AIOKafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    headers = {"apikey": args.api_key, "User-Agent": "naive/1", "Content-Type": "application/json"}
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await producer.start()
    await consumer.start()
    queues: dict[TopicPartition, asyncio.Queue[Any]] = {}
    workers: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=args.base_url, headers=headers, timeout=60) as http:
        naive = NaiveConsumer(args, http)

        async def worker(tp: TopicPartition, queue: asyncio.Queue[Any]) -> None:
            while True:
                record = await queue.get()
                received = datetime.now(UTC)
                started, meter = time.perf_counter(), [0.0]
                _ENGAGE_SECONDS.set(meter)
                event = orjson.loads(record.value)
                operation, status, code = await naive.handle(event)
                outcome = {
                    "data": {
                        "eventId": event["id"],
                        "eventType": event["type"],
                        "operation": operation,
                        "status": status,
                        "httpStatus": code,
                        "timings": {
                            "receivedAt": received.isoformat(),
                            "finishedAt": datetime.now(UTC).isoformat(),
                            "totalMs": (time.perf_counter() - started) * 1000,
                            "engageMs": meter[0] * 1000,
                        },
                    }
                }
                await producer.send_and_wait(args.results, orjson.dumps(outcome), key=record.key)
                await consumer.commit({tp: OffsetAndMetadata(record.offset + 1, "")})

        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                for tp, records in batch.items():
                    if tp not in queues:
                        queues[tp] = asyncio.Queue()
                        workers.append(asyncio.create_task(worker(tp, queues[tp])))
                    for record in records:
                        queues[tp].put_nowait(record)
        finally:
            for task in workers:
                task.cancel()
            if workers:
                await asyncio.wait(workers)
            await consumer.stop()
            await producer.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("bootstrap", "topic", "results", "group", "base-url", "api-key"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--poll-interval", type=float, default=0.5)
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
