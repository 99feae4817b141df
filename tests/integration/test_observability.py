"""/metrics, /livez and /readyz scraped over real HTTP while the consumer runs against the broker.

The consumer is the real ``Service`` with its health server on a free loopback port; events flow
from the session's Kafka broker to the Engage simulator, and the tests check that the numbers
move the way the events do: consumed, outcomes, Engage requests, offsets and lag.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consumer.config import Secret
from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import EventFactory, lifecycle_stream
from tests.integration.harness import (
    as_records,
    consumer_settings,
    make_topics,
    produce,
    running,
    wait_for,
)

if TYPE_CHECKING:
    from consumer.sandbox.kafka import KafkaBroker
    from consumer.service import Service
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

Samples = list[tuple[str, dict[str, str], float]]


async def scrape(client: httpx.AsyncClient) -> tuple[Samples, str]:
    """All samples of one /metrics scrape, and the raw text."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    samples = [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    ]
    return samples, response.text


def total(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when none)."""
    return sum(
        v for n, ls, v in samples if n == name and all(ls.get(k) == x for k, x in labels.items())
    )


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    """Samples of ``name`` summed per value of ``label``."""
    out: dict[str, float] = {}
    for n, ls, v in samples:
        if n == name:
            out[ls[label]] = out.get(ls[label], 0.0) + v
    return out


async def http_port(service: Service) -> int:
    """The health server's port, once ``run`` has bound it."""
    with anyio.fail_after(30):
        while service.http_port is None:
            await anyio.sleep(0.01)
    return service.http_port


async def until_ready(client: httpx.AsyncClient, *, wait_seconds: float = 30.0) -> dict[str, Any]:
    """Poll /readyz until it answers 200; return its body."""
    with anyio.move_on_after(wait_seconds):
        while True:
            response = await client.get("/readyz")
            if response.status_code == 200:
                body: dict[str, Any] = response.json()
                return body
            await anyio.sleep(0.1)
    pytest.fail(f"/readyz not ready after {wait_seconds}s: {response.json()}")


async def test_metrics_and_probes_follow_the_events(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """Ready once assigned, alive; consumed, outcomes, requests and offsets move; lag ends at 0."""
    # Jobs that take a while, so that work is visibly in flight while we scrape.
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.fixed(0.3)))
    topics = await make_topics(new_topic, partitions=2)
    topic = topics.inputs[0]
    events = lifecycle_stream(25, seed=7)
    poison = (b"BAD-1", b"\x00 not json")
    records = [*as_records(events), poison]
    # Under the simulator's 200 requests/s, so that no 429 muddles the at-rest figures.
    settings = consumer_settings(kafka_broker, sim, topics, engage_rate_limit=150.0)
    async with running(settings) as service:
        port = await http_port(service)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            ready = await until_ready(client)
            assert (sorted(ready["assigned"]), ready["idle"], ready["draining"]) == (
                [f"{topic}-0", f"{topic}-1"],
                False,
                False,
            )
            live = await client.get("/livez")
            assert (live.status_code, live.json()["phase"]) == (200, "running")
            before, _ = await scrape(client)
            assert total(before, "engage_consumer_events_consumed_total") == 0
            assert total(before, "engage_consumer_assigned_partitions") == 2

            await produce(kafka_broker, topic, records)
            peak: Counter[str] = Counter()
            with anyio.fail_after(60):
                while service.count("finished") < len(records):
                    samples, _ = await scrape(client)
                    # Not engage_polls_in_flight: a poll is on the wire for a millisecond or
                    # two and the gaps between polls hold nothing, so a scrape rarely sees one
                    # (the polls are counted in engage_requests_total below).
                    for name in (
                        "engage_consumer_events_in_progress",
                        "engage_consumer_busy_orders",
                    ):
                        peak[name] = max(peak[name], int(total(samples, name)))
                    await anyio.sleep(0.05)
            await wait_for(service, finished=len(records))
            # Commits run every 0.2 s: lag reaches 0 shortly after the last outcome.
            with anyio.fail_after(20):
                while True:
                    after, text = await scrape(client)
                    lags = by_label(after, "engage_consumer_lag", "partition")
                    if lags == {"0": 0, "1": 0}:
                        break
                    await anyio.sleep(0.1)
            live = await client.get("/livez")
            ready_body = (await client.get("/readyz")).json()
        assert live.status_code == 200
        assert ready_body["status"] == "ready"

    # Work was visibly in flight while the events flowed.
    assert min(peak.values()) > 0, peak

    # Every record counted once, by its CloudEvent type; the poison one as invalid.
    expected_types = Counter(e.event["type"] for e in events) + Counter({"invalid": 1})
    assert by_label(after, "engage_consumer_events_consumed_total", "type") == expected_types
    assert total(after, "engage_consumer_dead_lettered_total", reason="undecodable") == 1

    # One acknowledged outcome per record, by status, matching the pipeline's own count.
    outcomes = by_label(after, "engage_consumer_outcomes_total", "status")
    assert sum(outcomes.values()) == service.count("outcomes") == len(records)
    assert outcomes["invalid"] == 1
    assert set(outcomes) <= {"accepted", "skipped", "invalid"}

    # Engage requests by endpoint agree with what the simulator saw.
    journal = await sim.journal()
    actions = sum(1 for e in journal if e["kind"] == "action")
    requests = by_label(after, "engage_consumer_engage_requests_total", "endpoint")
    assert (
        total(after, "engage_consumer_engage_requests_total", endpoint="action", status="202")
        == actions
    )
    assert requests["job_poll"] > 0
    assert requests["orders_write"] > 0
    assert requests["order_read"] > 0
    timed = by_label(after, "engage_consumer_engage_request_duration_seconds_count", "endpoint")
    assert timed == requests
    slow_polls = total(
        after,
        "engage_consumer_engage_request_duration_seconds_bucket",
        endpoint="job_poll",
        le="+Inf",
    )
    assert slow_polls == requests["job_poll"]

    # Offsets: committed up to the high watermark on both partitions, all records accounted for.
    committed = by_label(after, "engage_consumer_committed_offset", "partition")
    highwater = by_label(after, "engage_consumer_high_watermark", "partition")
    assert committed == highwater
    assert sum(highwater.values()) == len(records)
    assert total(after, "engage_consumer_commits_total") > 0

    # At rest: nothing in flight, nothing queued, no 429, the budget at its ceiling.
    at_rest = {
        name: total(after, f"engage_consumer_{name}")
        for name in (
            "events_in_progress",
            "outcomes_publishing",
            "engage_calls_in_flight",
            "engage_polls_in_flight",
            "busy_orders",
            "gated_actions",
            "oldest_gated_action_age_seconds",
            "paused_partitions",
            "engage_throttled_total",
            "retries_total",
        )
    }
    assert at_rest == dict.fromkeys(at_rest, 0.0)
    assert total(after, "engage_consumer_tracked_orders") == len({e.order_id for e in events})
    assert math.isclose(total(after, "engage_consumer_rate_budget_requests_per_second"), 150.0)
    # Jobs take 0.3 s: the learned typical time moved up from the 0.2 s the client starts with.
    assert 0.2 < total(after, "engage_consumer_engage_job_typical_seconds") < 1.0
    assert total(after, "process_resident_memory_bytes") > 0
    assert sim.api_key not in text

    # After stop, the health server is gone.
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/livez")


async def test_throttling_shows_in_429s_retries_and_the_budget(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """An Engage that allows 20 requests/s: 429s counted, retries by reason, the budget shrinks."""
    sim = await engage_sim_factory(
        SimulatorSettings(
            job_delay=Delay.fixed(0.01), rate_limit=20.0, rate_burst=5, retry_after=None
        )
    )
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="thr")
    events = [factory.upserted(f"T-{n}", 1) for n in range(30)]
    settings = consumer_settings(kafka_broker, sim, topics, engage_rate_limit=200.0)
    async with running(settings) as service:
        port = await http_port(service)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await until_ready(client)
            await produce(kafka_broker, topics.inputs[0], as_records(events))
            await wait_for(service, finished=len(events), wait_seconds=90)
            samples, text = await scrape(client)
    throttled = total(samples, "engage_consumer_engage_throttled_total")
    answered_429 = total(samples, "engage_consumer_engage_requests_total", status="429")
    assert throttled > 0
    assert throttled == answered_429
    assert total(samples, "engage_consumer_retries_total", reason="throttled") > 0
    assert set(by_label(samples, "engage_consumer_retries_total", "reason")) <= {"throttled"}
    assert total(samples, "engage_consumer_rate_budget_requests_per_second") < 200.0
    assert sim.api_key not in text


async def test_metrics_and_probes_never_show_the_api_key(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """A key Engage refuses: its 401s are counted, readiness fails naming the setting, and the
    key appears in no response body."""
    sim = await engage_sim_factory()
    canary = "canary-apikey-6f1d2c9e"
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="key")
    events = [factory.upserted("K-1", 1), factory.action("K-1", "ConfirmOrder")]
    settings = consumer_settings(kafka_broker, sim, topics, engage_api_key=Secret(canary))
    async with running(settings) as service:
        port = await http_port(service)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await until_ready(client)
            await produce(kafka_broker, topics.inputs[0], as_records(events))
            # Nothing finishes while the key is refused: wait for the refusal to show instead.
            with anyio.fail_after(30):
                while (await client.get("/readyz")).status_code != 503:
                    await anyio.sleep(0.05)
            samples, text = await scrape(client)
            ready = await client.get("/readyz")
            bodies = [text, (await client.get("/livez")).text, ready.text]
            assert service.count("finished") == 0
    assert total(samples, "engage_consumer_engage_requests_total", status="401") > 0
    assert total(samples, "engage_consumer_engage_api_key_refused") == 1.0
    assert "ENGAGE_API_KEY" in ready.json()["reason"]
    assert [canary in body for body in bodies] == [False, False, False]
    assert [sim.api_key in body for body in bodies] == [False, False, False]


async def test_idle_member_of_a_healthy_group_is_ready(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """Two members, one partition: both ready, exactly one owns it and the other is idle."""
    sim = await engage_sim_factory()
    topics = await make_topics(new_topic, partitions=1)
    first = consumer_settings(kafka_broker, sim, topics)
    second = replace(first, kafka_client_id="engage-consumer-2")
    async with running(first) as one, running(second) as two:
        ports = [await http_port(one), await http_port(two)]
        async with httpx.AsyncClient(timeout=10) as client:
            with anyio.fail_after(60):
                while True:
                    answers = [await client.get(f"http://127.0.0.1:{p}/readyz") for p in ports]
                    bodies = [a.json() for a in answers]
                    owned = sorted(b["assigned"] for b in bodies)
                    ready = [a.status_code for a in answers] == [200, 200]
                    if ready and owned == [[], [f"{topics.inputs[0]}-0"]]:
                        break
                    await anyio.sleep(0.2)
    assert sorted(b["idle"] for b in bodies) == [False, True]
