"""The health server: /livez, /readyz and /metrics on HTTP_PORT, for Kubernetes and Prometheus.

- ``/livez`` says whether the process should be restarted: the event loop answered this very
  request, and the commit loop advanced recently (a loop stuck on a hung commit or starved by a
  runaway task would otherwise go unnoticed while offsets stand still).
- ``/readyz`` says whether this member is doing its job in the consumer group: the Kafka
  consumer is started and either has partitions or is an idle member of a healthy group (more
  members than partitions). It is 503 before start, while draining after SIGTERM, and while the
  group coordinator is unknown (the broker is gone or the coordinator moved).
- ``/metrics`` renders the service's own registry (``consumer.metrics``).
- ``/orders/{orderId}`` answers what the service knows of one order (read-only JSON, built by
  ``consumer.service.inspect``), for ``engage-consumer inspect``.

Both probes answer JSON that says why. The judgement is pure (``judge_liveness``,
``judge_readiness``) over small values; ``Probe`` gathers those values from the running
service, and ``HealthServer`` is the aiohttp adapter around it.
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio
import orjson
from aiohttp import web
from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

    from aiokafka import AIOKafkaConsumer

    from consumer.metrics import Metrics
    from consumer.types import TP


#: The commit loop counts as stuck after this many commit intervals without an iteration...
STALE_INTERVALS: Final = 10
#: ...but never sooner than this: a loop briefly starved under load is not a reason to restart.
MIN_STALE_SECONDS: Final = 30.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """A probe's answer: healthy or not, and a JSON-able body that says why."""

    ok: bool
    body: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupState:
    """What the Kafka consumer knows about its group membership right now."""

    started: bool
    coordinator_known: bool = False
    generation: int = -1
    member: bool = False
    rejoining: bool = False
    assigned: tuple[TP, ...] = ()
    paused: tuple[TP, ...] = ()


def stale_after(commit_interval: float) -> float:
    """Seconds without a commit-loop iteration after which the process counts as stuck."""
    return max(MIN_STALE_SECONDS, STALE_INTERVALS * commit_interval)


def judge_liveness(
    *, running: bool, draining: bool, since_commit_loop: float, limit: float
) -> Verdict:
    """Alive unless the commit loop should be running and has not advanced within ``limit``.

    Before the loops start (joining the group) and while draining (loops stopped on purpose)
    the loop's age proves nothing; that this answer was computed shows the event loop runs.
    """
    body: dict[str, Any] = {
        "commit_loop_age_seconds": round(since_commit_loop, 3),
        "limit_seconds": limit,
    }
    if draining:
        return Verdict(ok=True, body={"status": "alive", "phase": "draining", **body})
    if not running:
        return Verdict(ok=True, body={"status": "alive", "phase": "starting", **body})
    if since_commit_loop > limit:
        return Verdict(
            ok=False,
            body={
                "status": "dead",
                "phase": "running",
                "reason": "commit loop has not advanced",
                **body,
            },
        )
    return Verdict(ok=True, body={"status": "alive", "phase": "running", **body})


def judge_readiness(
    group: GroupState, *, draining: bool, engage_key_refused: bool = False
) -> Verdict:
    """Ready when started, not draining, the coordinator is known, and we are a member.

    Never ready while Engage refuses the API key: the rollout that brought a bad secret halts
    before it replaces the pods that still work.

    A member with partitions is ready even while a rebalance is under way (it still owns and
    finishes them). An idle member (joined, nothing assigned: more members than partitions) is
    ready too: it is a healthy standby, and failing it would block rolling updates for nothing.
    """
    body: dict[str, Any] = {
        "assigned": [f"{t}-{p}" for t, p in group.assigned],
        "paused": [f"{t}-{p}" for t, p in group.paused],
        "draining": draining,
        "generation": group.generation,
        "rejoining": group.rejoining,
    }

    reason = _not_ready_because(group, draining=draining, engage_key_refused=engage_key_refused)
    if reason is not None:
        return Verdict(ok=False, body={"status": "not_ready", "reason": reason, **body})
    return Verdict(ok=True, body={"status": "ready", "idle": not group.assigned, **body})


def _not_ready_because(
    group: GroupState, *, draining: bool, engage_key_refused: bool
) -> str | None:
    if not group.started:
        return "kafka consumer not started"
    if draining:
        return "draining"
    if engage_key_refused:
        return "Engage refuses the API key (ENGAGE_API_KEY): every event waits"
    if not group.coordinator_known:
        return "group coordinator unknown"
    if group.assigned or group.member:
        return None
    return "joining the group"


def group_state(consumer: AIOKafkaConsumer | None) -> GroupState:
    """Read an aiokafka consumer's membership (from its coordinator: aiokafka has no public view).

    aiokafka creates the coordinator in ``start()``; it forgets the coordinator's id when the
    coordinator is lost and keeps generation -1 until the member has joined.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if consumer is None or coordinator is None or getattr(consumer, "_closed", False):
        return GroupState(started=False)
    generation = int(getattr(coordinator, "generation", -1))
    rejoin = getattr(coordinator, "_rejoin_needed_fut", None)
    return GroupState(
        started=True,
        coordinator_known=getattr(coordinator, "coordinator_id", None) is not None,
        generation=generation,
        member=generation > 0 and bool(getattr(coordinator, "member_id", "")),
        rejoining=bool(rejoin is not None and rejoin.done()),
        assigned=tuple(sorted((tp.topic, tp.partition) for tp in consumer.assignment())),
        paused=tuple(sorted((tp.topic, tp.partition) for tp in consumer.paused())),
    )


class ProbedService(Protocol):
    """What the probes read from the running service (``consumer.service.runner.Service``)."""

    @property
    def stopping(self) -> anyio.Event:
        """Set once a drain was asked for."""
        ...

    @property
    def commit_loop_at(self) -> float | None:
        """``time.monotonic()`` of the commit loop's latest iteration; None before it runs."""
        ...

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The Kafka consumer, once made."""
        ...

    @property
    def engage_key_refused(self) -> bool:
        """Engage refuses the API key (401/403) and has not accepted it since."""
        ...


class Probe:
    """Turns the service's state into the two verdicts, at request time."""

    def __init__(
        self,
        service: ProbedService,
        *,
        commit_interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.service = service
        self.limit = stale_after(commit_interval)
        self._clock = clock

    def liveness(self) -> Verdict:
        """/livez."""
        beat = self.service.commit_loop_at
        return judge_liveness(
            running=beat is not None,
            draining=self.service.stopping.is_set(),
            since_commit_loop=0.0 if beat is None else self._clock() - beat,
            limit=self.limit,
        )

    def readiness(self) -> Verdict:
        """/readyz."""
        return judge_readiness(
            group_state(self.service.consumer),
            draining=self.service.stopping.is_set(),
            engage_key_refused=self.service.engage_key_refused,
        )


class HealthServer:
    """aiohttp server for the probes, the metrics and order inspection of one service."""

    def __init__(
        self,
        probe: Probe,
        metrics: Metrics,
        *,
        host: str | None,
        port: int,
        orders: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        """``host`` None binds every interface; ``port`` 0 lets the OS choose (see ``port``).

        ``orders`` answers ``GET /orders/{orderId}``: what the service knows of one order.
        """
        self._probe = probe
        self._metrics = metrics
        self._orders = orders
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The port actually bound (the chosen one when asked for 0)."""
        if self._runner is None:
            raise RuntimeError("the health server is not running")
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Bind and serve."""
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/metrics", self._metrics_page)
        app.router.add_get("/orders/{orderId}", self._order)
        # Probes every few seconds would flood the log; a short shutdown timeout because a
        # scrape in progress is not worth holding up the pod's exit.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        """Close the listening sockets and open connections."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _livez(self, _request: web.Request) -> web.Response:
        return _verdict(self._probe.liveness())

    async def _readyz(self, _request: web.Request) -> web.Response:
        return _verdict(self._probe.readiness())

    async def _metrics_page(self, request: web.Request) -> web.Response:
        # Prometheus asks for OpenMetrics in its Accept header; curl gets the text format.
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(
            body=self._metrics.render(encoder), headers={"Content-Type": content_type}
        )

    async def _order(self, request: web.Request) -> web.Response:
        if self._orders is None:
            return _json(404, {"message": "order inspection is not available here"})
        return _json(200, self._orders(request.match_info["orderId"]))


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )


def _verdict(verdict: Verdict) -> web.Response:
    return web.Response(
        status=200 if verdict.ok else 503,
        body=orjson.dumps(verdict.body),
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )


def bind_host(port: int) -> str | None:
    """Where to listen: every interface for a fixed port (the kubelet probes the pod's IP).

    Port 0 (any free port) binds loopback only: a port nobody can know in advance is only
    reachable by the process that asked for it (tests, the demo), and binding every interface
    would give IPv4 and IPv6 two different ports.
    """
    return "127.0.0.1" if port == 0 else None


@asynccontextmanager
async def open_health_server(
    probe: Probe,
    metrics: Metrics,
    *,
    port: int,
    host: str | None = None,
    orders: Callable[[str], dict[str, Any]] | None = None,
) -> AsyncIterator[HealthServer]:
    """Serve the probes and metrics until the block ends (closing even when cancelled)."""
    server = HealthServer(
        probe,
        metrics,
        host=host if host is not None else bind_host(port),
        port=port,
        orders=orders,
    )
    await server.start()
    try:
        yield server
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop()
