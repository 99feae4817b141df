"""Tests for the metrics registry: counters, scrape-time gauges, labels, and the retry counter."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from aiokafka.structs import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from consumer.metrics import ENDPOINTS, PREFIX, Metrics, endpoint_of


@dataclass
class FakeBook:
    tracked_n: int = 0
    busy_n: int = 0
    gated_n: int = 0
    age: float = 0.0

    def tracked(self) -> int:
        return self.tracked_n

    def busy(self) -> int:
        return self.busy_n

    def oldest_gated_age(self) -> float:
        return self.age

    def gated(self) -> int:
        return self.gated_n


@dataclass
class FakePipeline:
    progress: int = 0
    writes: int = 0
    waiting: int = 0

    def in_progress(self) -> int:
        return self.progress

    def publishing(self) -> int:
        return self.writes

    def calls_waiting(self) -> int:
        return self.waiting


@dataclass
class FakeBudget:
    rate: float = 50.0
    throttle_count: int = 0
    share: float = 1.0
    ceiling: float = 50.0
    spent: int = 0
    saturated: float = 0.0

    def saturation(self) -> float:
        return self.saturated


@dataclass
class FakeCredentials:
    refused: bool = False
    refusals: int = 0
    held: float = 0.0

    def held_seconds(self) -> float:
        return self.held


@dataclass
class FakeGate:
    in_flight: int = 0
    polls_in_flight: int = 0
    budget: FakeBudget = field(default_factory=FakeBudget)
    credentials: FakeCredentials = field(default_factory=FakeCredentials)


@dataclass
class FakePolls:
    typical: float = 0.2


@dataclass
class FakeConsumer:
    assigned: set[TopicPartition] = field(default_factory=set)
    paused_tps: set[TopicPartition] = field(default_factory=set)
    marks: dict[TopicPartition, int] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def paused(self) -> set[TopicPartition]:
        return set(self.paused_tps)

    def highwater(self, partition: TopicPartition) -> int | None:
        assert partition in self.assigned, "aiokafka asserts the partition is assigned"
        return self.marks.get(partition)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(PREFIX + name, labels)


def test_counters_count_by_their_labels() -> None:
    """Hot-path calls land in the right series with the right labels."""
    m = Metrics(process=False)
    m.event_consumed("orders", "order.upserted")
    m.event_consumed("orders", "order.upserted")
    m.event_consumed("orders", "invalid")
    m.outcome("accepted", "upsert")
    m.outcome("invalid", None)
    m.dead_letter("schema")
    m.retried("throttled")
    assert [
        value(m, "events_consumed_total", topic="orders", type="order.upserted"),
        value(m, "events_consumed_total", topic="orders", type="invalid"),
        value(m, "outcomes_total", status="accepted", operation="upsert"),
        value(m, "outcomes_total", status="invalid", operation="none"),
        value(m, "dead_lettered_total", reason="schema"),
        value(m, "retries_total", reason="throttled"),
    ] == [2.0, 1.0, 1.0, 1.0, 1.0, 1.0]


def test_request_done_counts_and_times_by_endpoint() -> None:
    """A request is counted by endpoint and status and observed in that endpoint's histogram."""
    m = Metrics(process=False)
    m.request_done(
        method="POST", kind="call", url="/api/v3/orders/A-1/action", status="202", seconds=0.007
    )
    m.request_done(
        method="GET", kind="poll", url="http://x/api/v3/orders/jobs/j", status="302", seconds=0.2
    )
    m.request_done(
        method="PUT", kind="call", url="/api/v3/orders/A-1", status="ReadTimeout", seconds=30.5
    )
    assert value(m, "engage_requests_total", endpoint="action", status="202") == 1.0
    assert value(m, "engage_requests_total", endpoint="job_poll", status="302") == 1.0
    assert value(m, "engage_requests_total", endpoint="orders_write", status="ReadTimeout") == 1.0
    hist = "engage_request_duration_seconds_bucket"
    assert value(m, hist, endpoint="action", le="0.005") == 0.0
    assert value(m, hist, endpoint="action", le="0.01") == 1.0
    assert value(m, hist, endpoint="orders_write", le="30.0") == 0.0
    assert value(m, hist, endpoint="orders_write", le="+Inf") == 1.0
    assert value(m, "engage_request_duration_seconds_sum", endpoint="job_poll") == pytest.approx(
        0.2
    )


@pytest.mark.parametrize(
    ("method", "kind", "url", "endpoint"),
    [
        ("POST", "call", "/api/v3/orders", "orders_write"),
        ("PUT", "call", "/api/v3/orders/A%2Faction", "orders_write"),
        ("DELETE", "call", "/api/v3/orders/A-1", "orders_delete"),
        ("GET", "poll", "https://t.voyado.com/api/v3/orders/jobs/1", "job_poll"),
        ("GET", "call", "/api/v3/orders/A-1", "order_read"),
        ("POST", "call", "/api/v3/orders/A-1/action", "action"),
    ],
)
def test_endpoint_of_names_every_call(method: str, kind: str, url: str, endpoint: str) -> None:
    """Each request the client sends maps to one of the five endpoint labels."""
    assert endpoint_of(method=method, kind=kind, url=url) == endpoint
    assert endpoint in ENDPOINTS


def test_state_is_read_at_scrape_time() -> None:
    """Gauges show what the watched objects say now, not what they said earlier."""
    m = Metrics(process=False)
    book = FakeBook(tracked_n=5, busy_n=2, gated_n=1, age=3.5)
    pipeline = FakePipeline(progress=7, writes=3)
    gate = FakeGate(in_flight=4, polls_in_flight=6, budget=FakeBudget(rate=25.0, throttle_count=2))
    polls = FakePolls(typical=0.8)
    m.watch(book=book, pipeline=pipeline, gate=gate, polls=polls)
    names = [
        "tracked_orders",
        "busy_orders",
        "gated_actions",
        "oldest_gated_action_age_seconds",
        "events_in_progress",
        "outcomes_publishing",
        "engage_calls_in_flight",
        "engage_polls_in_flight",
        "rate_budget_requests_per_second",
        "engage_throttled_total",
        "engage_job_typical_seconds",
    ]
    assert [value(m, n) for n in names] == [5, 2, 1, 3.5, 7, 3, 4, 6, 25.0, 2, 0.8]
    book.busy_n, pipeline.progress, gate.in_flight, gate.budget.rate = 0, 0, 0, 12.5
    polls.typical = 1.5
    assert value(m, "engage_job_typical_seconds") == 1.5
    assert [
        value(m, n) for n in ("busy_orders", "events_in_progress", "engage_calls_in_flight")
    ] == [0, 0, 0]
    assert value(m, "rate_budget_requests_per_second") == 12.5


def test_partition_offsets_and_lag() -> None:
    """Lag is high watermark minus committed; a partition without both has no lag sample."""
    m = Metrics(process=False)
    t0, t1, t2 = (TopicPartition("in", n) for n in range(3))
    consumer = FakeConsumer(assigned={t0, t1, t2}, paused_tps={t1}, marks={t0: 100, t1: 40})
    m.watch(consumer=consumer)
    m.offset_known(("in", 0), 90)
    m.offset_known(("in", 2), None)  # never committed by this group
    m.offsets_committed({("in", 1): (40, "ec1:")})
    assert value(m, "assigned_partitions") == 3
    assert value(m, "paused_partitions") == 1
    assert [value(m, "lag", topic="in", partition=str(n)) for n in range(3)] == [10, 0, None]
    assert [value(m, "committed_offset", topic="in", partition=str(n)) for n in range(3)] == [
        90,
        40,
        None,
    ]
    assert value(m, "high_watermark", topic="in", partition="0") == 100
    assert value(m, "commits_total") == 1
    m.offsets_committed({("in", 0): (100, "ec1:")})
    assert value(m, "lag", topic="in", partition="0") == 0


def test_revoked_partitions_leave_no_series() -> None:
    """After a revoke, the partition's offset series disappear instead of going stale."""
    m = Metrics(process=False)
    t0, t1 = TopicPartition("in", 0), TopicPartition("in", 1)
    consumer = FakeConsumer(assigned={t0, t1}, marks={t0: 5, t1: 5})
    m.watch(consumer=consumer)
    m.offsets_committed({("in", 0): (5, ""), ("in", 1): (3, "")})
    consumer.assigned = {t0}
    m.forget([("in", 1)])
    assert m.committed == {("in", 0): 5}
    assert value(m, "lag", topic="in", partition="1") is None
    assert value(m, "committed_offset", topic="in", partition="1") is None
    assert value(m, "lag", topic="in", partition="0") == 0


def test_unwatched_state_is_simply_absent() -> None:
    """Before the service runs, only the counters exist; scraping does not fail."""
    m = Metrics(process=False)
    text = m.render().decode()
    assert "engage_consumer_events_consumed" in text
    assert "engage_consumer_tracked_orders" not in text
    assert "engage_consumer_lag" not in text


def test_two_services_in_one_process_do_not_collide() -> None:
    """Each Metrics has its own registry: same names, separate values."""
    a, b = Metrics(), Metrics()
    a.event_consumed("t", "order.action")
    assert value(a, "events_consumed_total", topic="t", type="order.action") == 1
    assert value(b, "events_consumed_total", topic="t", type="order.action") is None


def test_exposition_parses_and_every_own_name_has_the_prefix() -> None:
    """The rendered text is valid Prometheus exposition; our families all start with the prefix."""
    m = Metrics()
    m.watch(
        book=FakeBook(),
        pipeline=FakePipeline(),
        gate=FakeGate(),
        consumer=FakeConsumer(
            assigned={TopicPartition("in", 0)}, marks={TopicPartition("in", 0): 1}
        ),
    )
    m.offset_known(("in", 0), 1)
    m.event_consumed("in", "order.upserted")
    families = {f.name for f in text_string_to_metric_families(m.render().decode())}
    own = {n for n in families if not n.startswith(("process_", "python_"))}
    assert own == {
        PREFIX + n
        for n in (
            "events_consumed",
            "outcomes",
            "engage_requests",
            "engage_request_duration_seconds",
            "retries",
            "dead_lettered",
            "commits",
            "engage_calls_in_flight",
            "engage_polls_in_flight",
            "engage_api_key_refused",
            "engage_api_key_refusals",
            "engage_api_key_refused_seconds",
            "rate_budget_requests_per_second",
            "engage_throttled",
            "rate_budget_share",
            "rate_budget_member_requests_per_second",
            "rate_budget_spent",
            "rate_budget_saturation",
            "scalable_backlog",
            "tracked_orders",
            "busy_orders",
            "gated_actions",
            "oldest_gated_action_age_seconds",
            "events_in_progress",
            "outcomes_publishing",
            "assigned_partitions",
            "paused_partitions",
            "committed_offset",
            "high_watermark",
            "lag",
        )
    }
    assert "process_resident_memory_bytes" in families


def test_the_budget_share_and_its_use_are_metrics() -> None:
    """A member's share, its budget, what it spent and how saturated the budget is."""
    m = Metrics(process=False)
    budget = FakeBudget(rate=18.0, share=1 / 3, ceiling=20.0, spent=1234, saturated=0.95)
    m.watch(gate=FakeGate(budget=budget))
    assert [
        value(m, n)
        for n in (
            "rate_budget_share",
            "rate_budget_member_requests_per_second",
            "rate_budget_spent_total",
            "rate_budget_saturation",
        )
    ] == [1 / 3, 20.0, 1234, 0.95]


def test_scalable_backlog_counts_what_another_replica_could_speed_up() -> None:
    """Records not taken in plus calls waiting for a place; nothing while the budget binds."""
    m = Metrics(process=False)
    t0 = TopicPartition("in", 0)
    budget = FakeBudget(saturated=0.5)
    pipeline = FakePipeline(progress=30, waiting=12)
    m.watch(
        pipeline=pipeline,
        gate=FakeGate(budget=budget),
        consumer=FakeConsumer(assigned={t0}, marks={t0: 500}),
    )
    m.offset_known(("in", 0), 100)
    assert value(m, "scalable_backlog") == (400 - 30) + 12
    budget.saturated = 0.93
    assert value(m, "scalable_backlog") == 0


def test_a_refused_api_key_is_a_metric_an_alert_can_use() -> None:
    """1 while Engage refuses the key, with the refusals and the seconds held as counters."""
    m = Metrics()
    gate = FakeGate(credentials=FakeCredentials(refused=True, refusals=7, held=12.5))
    m.watch(gate=gate)
    samples = {
        s.name: s.value
        for f in text_string_to_metric_families(m.render().decode())
        for s in f.samples
    }
    assert samples[PREFIX + "engage_api_key_refused"] == 1.0
    assert samples[PREFIX + "engage_api_key_refusals_total"] == 7.0
    assert samples[PREFIX + "engage_api_key_refused_seconds_total"] == 12.5
    gate.credentials.refused = False
    assert b"engage_consumer_engage_api_key_refused 0.0" in m.render()
