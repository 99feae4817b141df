"""The two workloads of the benchmark and the Kafka plumbing that feeds and reads them.

*lifecycle*: N orders through create → confirm → ship → deliver (some cancelled, bursts of
consecutive writes), interleaved, over 12 partitions: ``consumer.sandbox.workload``'s generator.

*action-only*: N ``order.action`` events over M order keys. The M orders are created in the
simulator beforehand with the bodies of M ``order.upserted`` events (which the audit then treats
as the writes the actions depend on), so every contender starts from orders whose tag it does
not know and learns it the same way, with one GET per key: during a warm-up of one action per
key that is produced and answered before the measured actions, so the measurement is the
steady state of raw dispatch.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

import httpx
import orjson

from consumer.sandbox.workload import EventFactory, GeneratedEvent, lifecycle_stream

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from consumer.sandbox.engage import EngageSimulatorProcess


@dataclass(frozen=True, kw_only=True, slots=True)
class ActionWorkload:
    """Orders to create first (not produced), then the actions that are produced."""

    upserts: list[GeneratedEvent]
    #: One action per key, produced (and answered) before the measurement starts.
    warmup: list[GeneratedEvent]
    actions: list[GeneratedEvent]

    @property
    def audited(self) -> list[GeneratedEvent]:
        """The stream the audit compares with: the creating writes, then the actions."""
        return [*self.upserts, *self.warmup, *self.actions]


def lifecycle_workload(orders: int, *, seed: int, tag: str) -> list[GeneratedEvent]:
    """The lifecycle stream; ``tag`` keeps ids unique across the runs of one simulator."""
    return lifecycle_stream(orders, seed=seed, prefix=f"{tag}-evt", order_prefix=f"{tag}-ORD")


def action_workload(keys: int, actions: int, *, seed: int, tag: str) -> ActionWorkload:
    """M upserts (one per key) and N actions on keys drawn uniformly at random."""
    rng = random.Random(seed)
    factory = EventFactory(prefix=f"{tag}-evt", rng=rng)
    order_ids = [f"{tag}-KEY-{n:06d}" for n in range(keys)]
    upserts = [factory.upserted(order_id, 1) for order_id in order_ids]
    names = ("ConfirmOrder", "ConfirmShipment", "ConfirmDelivery")
    warmup = [factory.action(order_id, "ConfirmOrder") for order_id in order_ids]
    acts = [factory.action(rng.choice(order_ids), rng.choice(names)) for _ in range(actions)]
    return ActionWorkload(upserts=upserts, warmup=warmup, actions=acts)


async def precreate(sim: EngageSimulatorProcess, upserts: Sequence[GeneratedEvent]) -> None:
    """Create the orders in the simulator and wait until every job is processed."""
    headers = {
        "apikey": sim.api_key,
        "User-Agent": "engage-bench/1",
        "Content-Type": "application/json",
    }
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=sim.base_url, headers=headers, limits=limits) as client:
        semaphore = asyncio.Semaphore(32)

        async def create(event: GeneratedEvent) -> None:
            async with semaphore:
                body = event.event["data"]["order"]
                answer = await client.post("/api/v3/orders", content=orjson.dumps(body))
                answer.raise_for_status()

        await asyncio.gather(*(create(e) for e in upserts))
    deadline = time.monotonic() + 120
    # The simulator's job queue is only visible through its counters: poll them.
    while (await sim.stats())["jobs"]["pending"] and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def produce(
    bootstrap: str,
    topic: str,
    events: Sequence[GeneratedEvent],
    *,
    rate: float | None = None,
    sent_at: dict[str, float] | None = None,
) -> float:
    """Publish the events in order (paced at ``rate`` per second if given); returns seconds.

    ``sent_at`` receives each event's send time (POSIX seconds), for end-to-end latency.
    """
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    started = time.monotonic()
    try:
        futures = []
        for n, event in enumerate(events):
            if rate is not None:
                due = started + n / rate
                if due > time.monotonic():
                    await asyncio.sleep(due - time.monotonic())
            if sent_at is not None:
                sent_at[event.event_id] = time.time()
            futures.append(await producer.send(topic, key=event.key, value=event.value))
        for future in futures:
            await future
    finally:
        await producer.stop()
    return time.monotonic() - started


class OutcomeTail:
    """Reads a results topic from the start in the background and keeps every outcome."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.outcomes: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._started = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._started.wait(), 30)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            # ``wait`` does not raise the task's CancelledError, so ours stays visible.
            await asyncio.wait([self._task])

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer  # noqa: PLC0415

        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        self._started.set()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=100, max_records=5000)
                for records in batch.values():
                    for record in records:
                        outcome = orjson.loads(record.value)
                        # The outcome's Kafka timestamp: when the contender produced it.
                        outcome["_kafka_ms"] = record.timestamp
                        self.outcomes.append(outcome)
        finally:
            await consumer.stop()

    async def wait_for(
        self, count: int, *, within: float, alive: Callable[[], bool] | None = None
    ) -> bool:
        """Wait until ``count`` outcomes arrived; False on timeout or when ``alive()`` is False."""
        deadline = time.monotonic() + within
        # Outcomes arrive in batches from the reader task; a short poll is all this needs.
        while len(self.outcomes) < count:
            if time.monotonic() > deadline or (alive is not None and not alive()):
                return False
            await asyncio.sleep(0.05)
        # A duplicate would arrive right behind the last one: give it a moment.
        await asyncio.sleep(0.3)
        return True


def request_floor(events: Sequence[GeneratedEvent]) -> dict[str, Any]:
    """The fewest Engage requests per action any correct consumer can make on ``events``.

    Per the API: a write is one request plus at least one job poll; an action needs the tag of
    the write before it, which costs one GET of the order after that write's job; an action is
    one request. Consecutive writes of an order with no action between them may be coalesced
    into the last (``coalesced`` assumes all such writes are, as a backlog allows).
    """
    writes = actions = groups = 0
    pending_write: dict[str, bool] = {}
    for generated in events:
        event = generated.event
        data = event.get("data") or {}
        kind = event["type"]
        order_id = generated.order_id
        if kind in {"order.upserted", "order.deleted"} or isinstance(data.get("order"), dict):
            writes += 1
            pending_write[order_id] = True
        if kind not in {"order.upserted", "order.deleted"}:
            actions += 1
            if pending_write.pop(order_id, False):
                groups += 1
    trailing = sum(1 for waiting in pending_write.values() if waiting)
    if not actions:
        return {"writes": writes, "actions": 0}
    return {
        "writes": writes,
        "actions": actions,
        "write_groups": groups + trailing,
        "floor_per_action": (2 * writes + groups + actions) / actions,
        "floor_per_action_coalesced": (2 * (groups + trailing) + groups + actions) / actions,
    }
