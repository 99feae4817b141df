"""Call places: a write waiting for its job gives its place back and gets one first.

The pipeline runs against a scripted Engage (no HTTP, no Kafka): each write sleeps through the
``wait`` hook a few times, as the client does between job polls, and the test watches how many
calls hold a place at any moment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from consumer.config import Secret, Settings
from consumer.offsets import OffsetTracker
from consumer.orders import OrderBook
from consumer.sandbox.workload import EventFactory
from consumer.service.dispatch import DispatchResult
from consumer.service.pipeline import Pipeline
from consumer.service.wiring import pipeline_settings

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from consumer.engage import BeforeSend, SendGuard
    from consumer.types import Headers

TOPIC = "orders"


@dataclass
class Rec:
    """The parts of a consumed record the pipeline reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass
class ListSink:
    records: list[tuple[str, bytes | None]] = field(default_factory=list)

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        finishes: tuple[tuple[str, int], int] | None = None,
        partition: int | None = None,
    ) -> None:
        self.records.append((topic, value))


class JobsThatTakeThreeGaps:
    """Writes that wait three gaps for their job, each followed by a 10 ms poll (holding a
    place); counts the calls holding one."""

    def __init__(self, pipeline_of: Callable[[], Pipeline], *, gap: float = 0.05) -> None:
        self.pipeline_of = pipeline_of
        self.gap = gap
        self.started = 0
        self.most_running = 0
        self.log: list[str] = []

    def _note(self) -> None:
        self.most_running = max(self.most_running, self.pipeline_of().scheduler.places_taken)

    async def write(
        self,
        order_id: str,
        body: Mapping[str, Any],
        *,
        exists: bool | None,
        deadline: float,
        wait: Callable[[float], Awaitable[None]],
        tag_wanted: Callable[[], bool] | None,
        guard: SendGuard | None = None,
        embedded: Mapping[str, Any] | None = None,
        before_send: BeforeSend | None = None,
        patient: Callable[[], bool] | None = None,
    ) -> DispatchResult:
        self.started += 1
        self.log.append(f"start {order_id}")
        for _ in range(3):
            self._note()
            await wait(self.gap)
            self._note()
            await anyio.sleep(0.01)
            self.log.append(f"poll {order_id}")
        self._note()
        return DispatchResult(
            operation="upsert",
            status="accepted",
            http_status=202,
            version_tag=f"tag-{order_id}",
            attempts=1,
            engage_ms=1.0,
            requests=4,
        )

    async def delete(self, *_: Any, **__: Any) -> DispatchResult:
        raise NotImplementedError

    async def action(self, *_: Any, **__: Any) -> DispatchResult:
        raise NotImplementedError

    async def read_tag(self, *_: Any, **__: Any) -> DispatchResult:
        raise NotImplementedError


def settings(**overrides: Any) -> Settings:
    return Settings(
        kafka_bootstrap_servers="127.0.0.1:1",
        input_topics=(TOPIC,),
        engage_base_url="http://127.0.0.1:1",
        engage_api_key=Secret("k"),
        engage_max_in_flight=1,
        engage_max_polls_in_flight=1,
        **overrides,
    )


async def run_writes(
    orders: int, *, cancel_when_queued: bool = False
) -> tuple[Pipeline, JobsThatTakeThreeGaps, int]:
    """Feed one upsert per order and run until all finished.

    ``cancel_when_queued``: cancel everything (a shutdown) as soon as writes queue for a place
    again; returns how many queued then.
    """
    queued = 0
    factory = EventFactory(prefix="p")
    sink = ListSink()
    pipeline: Pipeline | None = None
    engage = JobsThatTakeThreeGaps(lambda: pipeline)  # type: ignore[arg-type,return-value]
    async with anyio.create_task_group() as tg:
        pipeline = Pipeline(
            settings=pipeline_settings(settings()),
            book=OrderBook(max_tracked=100, clock=time.monotonic, revision_wait=1.0),
            engage=engage,
            sink=sink,
            tracker=OffsetTracker(),
            task_group=tg,
        )
        for offset in range(orders):
            event = factory.upserted(f"O-{offset}", 1)
            pipeline.take(Rec(TOPIC, 0, offset, event.key, event.value))
        with anyio.fail_after(10):
            while pipeline.counts.get("finished", 0) < orders:
                if cancel_when_queued and pipeline.scheduler.waiting_to_poll:
                    queued = len(pipeline.scheduler.waiting_to_poll)
                    tg.cancel_scope.cancel()
                    break
                await anyio.sleep(0.002)
    assert pipeline is not None
    return pipeline, engage, queued


async def test_writes_sleeping_between_polls_hold_no_place() -> None:
    """Two places, six slow writes: all six start before the first one ends, never over two."""
    pipeline, engage, _ = await run_writes(6)
    assert engage.started == 6
    first_end = engage.log.index("poll O-0", engage.log.index("poll O-0") + 1)
    assert [e for e in engage.log[:first_end] if e.startswith("start")] == [
        f"start O-{n}" for n in range(6)
    ]
    assert engage.most_running <= pipeline.scheduler.places == 2
    assert (
        pipeline.scheduler.places_taken,
        len(pipeline.scheduler.waiting_to_poll),
        pipeline.calls_running(),
    ) == (0, 0, 0)


async def test_cancelled_while_waiting_for_a_place_leaves_the_count_straight() -> None:
    """Cancelled (a shutdown) while writes queue for a place, the count of places comes back
    to zero: each write gives back exactly the place it held or was given."""
    pipeline, engage, queued = await run_writes(6, cancel_when_queued=True)
    assert queued > 0
    assert engage.started == 6
    assert (pipeline.scheduler.places_taken, len(pipeline.scheduler.waiting_to_poll)) == (0, 0)
