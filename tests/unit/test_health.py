"""Tests for the probes' judgement and the health server over real loopback HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import anyio
import httpx
import pytest
from aiokafka.structs import TopicPartition

from consumer.health import (
    MIN_STALE_SECONDS,
    GroupState,
    Probe,
    bind_host,
    group_state,
    judge_liveness,
    judge_readiness,
    open_health_server,
    stale_after,
)
from consumer.metrics import Metrics

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer


# -- liveness -------------------------------------------------------------------------------


def test_stale_after_is_ten_intervals_but_at_least_thirty_seconds() -> None:
    """A 1 s commit interval tolerates 30 s; a 5 s interval tolerates 50 s."""
    assert [stale_after(1.0), stale_after(5.0), stale_after(0.05)] == [30.0, 50.0, 30.0]
    assert MIN_STALE_SECONDS == 30.0


def test_liveness_fails_only_when_the_running_commit_loop_stalls() -> None:
    """Running with a fresh loop: alive; running with a stale loop: dead, saying why."""
    fresh = judge_liveness(running=True, draining=False, since_commit_loop=1.0, limit=30.0)
    stale = judge_liveness(running=True, draining=False, since_commit_loop=31.0, limit=30.0)
    assert fresh.ok
    assert (stale.ok, stale.body) == (
        False,
        {
            "status": "dead",
            "phase": "running",
            "reason": "commit loop has not advanced",
            "commit_loop_age_seconds": 31.0,
            "limit_seconds": 30.0,
        },
    )


def test_liveness_ignores_the_loop_before_start_and_while_draining() -> None:
    """Joining the group or draining is not a reason to be restarted."""
    starting = judge_liveness(running=False, draining=False, since_commit_loop=999.0, limit=30.0)
    draining = judge_liveness(running=True, draining=True, since_commit_loop=999.0, limit=30.0)
    assert (starting.ok, starting.body["phase"]) == (True, "starting")
    assert (draining.ok, draining.body["phase"]) == (True, "draining")


# -- readiness ------------------------------------------------------------------------------

MEMBER = GroupState(
    started=True, coordinator_known=True, generation=3, member=True, rejoining=False
)
ASSIGNED = GroupState(
    started=True, coordinator_known=True, generation=3, member=True, assigned=(("in", 0),)
)


def test_readiness_with_partitions() -> None:
    """A member with partitions is ready and lists them, paused ones too."""
    group = GroupState(
        started=True,
        coordinator_known=True,
        generation=3,
        member=True,
        assigned=(("in", 0), ("in", 1)),
        paused=(("in", 1),),
    )
    verdict = judge_readiness(group, draining=False)
    assert (verdict.ok, verdict.body) == (
        True,
        {
            "status": "ready",
            "idle": False,
            "assigned": ["in-0", "in-1"],
            "paused": ["in-1"],
            "draining": False,
            "generation": 3,
            "rejoining": False,
        },
    )


def test_idle_member_of_a_healthy_group_is_ready() -> None:
    """More members than partitions: joined with nothing assigned is still ready."""
    verdict = judge_readiness(MEMBER, draining=False)
    assert (verdict.ok, verdict.body["idle"], verdict.body["assigned"]) == (True, True, [])


@pytest.mark.parametrize(
    ("group", "draining", "reason"),
    [
        (GroupState(started=False), False, "kafka consumer not started"),
        (GroupState(started=True, coordinator_known=True), False, "joining the group"),
        (MEMBER, True, "draining"),
        (
            GroupState(started=True, coordinator_known=False, generation=3, member=True),
            False,
            "group coordinator unknown",
        ),
        (
            GroupState(started=True, coordinator_known=False, assigned=(("in", 0),)),
            False,
            "group coordinator unknown",
        ),
    ],
)
def test_not_ready(group: GroupState, draining: bool, reason: str) -> None:
    """Before start, while joining, while draining, and with the coordinator lost: 503."""
    verdict = judge_readiness(group, draining=draining)
    assert (verdict.ok, verdict.body["status"], verdict.body["reason"]) == (
        False,
        "not_ready",
        reason,
    )


def test_not_ready_while_engage_refuses_the_api_key() -> None:
    """A member holding partitions is not ready while every event waits for a working key:
    the rollout that brought a bad secret halts, and the reason names the setting."""
    verdict = judge_readiness(ASSIGNED, draining=False, engage_key_refused=True)
    assert not verdict.ok
    assert "ENGAGE_API_KEY" in verdict.body["reason"]
    assert judge_readiness(ASSIGNED, draining=False, engage_key_refused=False).ok


def test_member_with_partitions_stays_ready_during_a_rebalance() -> None:
    """A rejoin in progress does not flap readiness while partitions are still owned."""
    group = GroupState(
        started=True,
        coordinator_known=True,
        generation=3,
        member=True,
        rejoining=True,
        assigned=(("in", 0),),
    )
    assert judge_readiness(group, draining=False).ok


# -- reading aiokafka -----------------------------------------------------------------------


@dataclass
class FakeFuture:
    finished: bool

    def done(self) -> bool:
        return self.finished


@dataclass
class FakeCoordinator:
    coordinator_id: int | None = 1
    generation: int = 2
    member_id: str = "member-1"
    _rejoin_needed_fut: FakeFuture = field(default_factory=lambda: FakeFuture(finished=False))


@dataclass
class FakeConsumer:
    """Shaped like AIOKafkaConsumer where group_state reads it (a started one)."""

    _coordinator: FakeCoordinator | None = field(default_factory=FakeCoordinator)
    _closed: bool = False
    assigned: set[TopicPartition] = field(default_factory=set)
    paused_tps: set[TopicPartition] = field(default_factory=set)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def paused(self) -> set[TopicPartition]:
        return self.paused_tps


def as_consumer(fake: FakeConsumer) -> AIOKafkaConsumer:
    return cast("AIOKafkaConsumer", fake)


def test_group_state_reads_the_coordinator() -> None:
    """Joined member, coordinator known, sorted partitions."""
    fake = FakeConsumer(
        assigned={TopicPartition("in", 1), TopicPartition("in", 0)},
        paused_tps={TopicPartition("in", 1)},
    )
    assert group_state(as_consumer(fake)) == GroupState(
        started=True,
        coordinator_known=True,
        generation=2,
        member=True,
        rejoining=False,
        assigned=(("in", 0), ("in", 1)),
        paused=(("in", 1),),
    )


def test_group_state_before_start_after_stop_and_without_coordinator() -> None:
    """No coordinator object (not started) or closed: not started; lost coordinator: unknown."""
    assert group_state(None) == GroupState(started=False)
    assert group_state(as_consumer(FakeConsumer(_coordinator=None))) == GroupState(started=False)
    assert group_state(as_consumer(FakeConsumer(_closed=True))) == GroupState(started=False)
    lost = FakeConsumer(
        _coordinator=FakeCoordinator(coordinator_id=None, generation=-1, member_id="")
    )
    state = group_state(as_consumer(lost))
    assert (state.started, state.coordinator_known, state.member) == (True, False, False)


# -- the server over HTTP -------------------------------------------------------------------


@dataclass
class FakeService:
    stopping: anyio.Event = field(default_factory=anyio.Event)
    commit_loop_at: float | None = None
    consumer: AIOKafkaConsumer | None = None
    engage_key_refused: bool = False


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def get(client: httpx.AsyncClient, path: str) -> tuple[int, Any]:
    response = await client.get(path)
    if response.headers["content-type"] == "application/json":
        return response.status_code, response.json()
    return response.status_code, response.text


async def test_server_answers_probes_as_the_service_changes() -> None:
    """Over real HTTP: not ready before start, ready once joined, dead when the loop stalls."""
    clock = Clock()
    service = FakeService()
    probe = Probe(service, commit_interval=1.0, clock=clock)
    async with (
        open_health_server(probe, Metrics(process=False), port=0) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        assert server.port > 0
        status, body = await get(client, "/readyz")
        assert (status, body["reason"]) == (503, "kafka consumer not started")
        status, body = await get(client, "/livez")
        assert (status, body["phase"]) == (200, "starting")

        service.consumer = as_consumer(FakeConsumer(assigned={TopicPartition("in", 0)}))
        service.commit_loop_at = clock.now
        status, body = await get(client, "/readyz")
        assert (status, body["status"], body["assigned"]) == (200, "ready", ["in-0"])
        assert (await get(client, "/livez"))[0] == 200

        clock.now += 31.0
        status, body = await get(client, "/livez")
        assert (status, body["reason"]) == (503, "commit loop has not advanced")

        service.stopping.set()
        status, body = await get(client, "/readyz")
        assert (status, body["reason"], body["draining"]) == (503, "draining", True)
        assert (await get(client, "/livez"))[0] == 200

        assert (await client.get("/nothing")).status_code == 404


async def test_metrics_page_speaks_text_and_openmetrics() -> None:
    """Plain scrapes get the text format; Prometheus asking for OpenMetrics gets it."""
    metrics = Metrics(process=False)
    metrics.event_consumed("in", "order.upserted")
    probe = Probe(FakeService(), commit_interval=1.0)
    async with (
        open_health_server(probe, metrics, port=0) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client,
    ):
        plain = await client.get("/metrics")
        open_metrics = await client.get(
            "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert plain.status_code == 200
    assert plain.headers["content-type"].startswith("text/plain")
    assert (
        'engage_consumer_events_consumed_total{topic="in",type="order.upserted"} 1.0' in plain.text
    )
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.rstrip().endswith("# EOF")


async def test_server_is_closed_after_the_block() -> None:
    """Leaving the context closes the port: nothing answers there any more."""
    probe = Probe(FakeService(), commit_interval=1.0)
    async with open_health_server(probe, Metrics(process=False), port=0) as server:
        port = server.port
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/livez")
    with pytest.raises(RuntimeError):
        _ = server.port


def test_bind_host_is_loopback_for_port_zero_only() -> None:
    """Port 0 binds loopback; a fixed port binds every interface (the kubelet probes the pod IP)."""
    assert (bind_host(0), bind_host(8080)) == ("127.0.0.1", None)
