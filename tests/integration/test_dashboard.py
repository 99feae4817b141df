"""Every metric the chart's dashboard and alerts read is one a running consumer serves.

One short run of the real ``Service`` against the session's Kafka broker and an Engage
simulator (writes, actions, a poison record for a dead letter), then one scrape of its
/metrics. A name counts when the registry declares it: a counter family ``x`` serves
``x_total``, a histogram ``x_bucket``/``x_sum``/``x_count``, so a labelled series that only
appears after an event of its kind (a retry) is still known by its family. That the run served
samples of nearly all of them shows the scrape was of a consumer at work.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

import anyio
import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from consumer.sandbox.workload import lifecycle_stream
from tests.helm.manifests import CHART
from tests.helm.promql import grafana_query_names, metric_names
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
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

#: The series names a metric family of each type serves (``_created`` is switched off).
SERIES_SUFFIXES: Final = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
    "unknown": ("",),
}
#: Declared, but only served after an event this run does not make happen.
NOT_IN_THIS_RUN: Final = frozenset({"engage_consumer_retries_total"})


def dashboard_names() -> set[str]:
    """The metric names of every panel query and every variable query of the dashboard."""
    dashboard = json.loads((CHART / "dashboards" / "engage-consumer.json").read_text("utf-8"))
    names = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in metric_names(target["expr"])
    }
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            names |= grafana_query_names(variable["query"])
    return names


def alert_names() -> set[str]:
    """The metric names of every rule of the chart's alerts file."""
    rules = yaml.safe_load((CHART / "rules" / "engage-consumer-alerts.yaml").read_text("utf-8"))
    return {
        name
        for group in rules["groups"]
        for rule in group["rules"]
        for name in metric_names(rule["expr"])
    }


def served_names(text: str) -> tuple[set[str], set[str]]:
    """(series names the scraped registry declares, the names it served samples of)."""
    declared: set[str] = set()
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        declared |= {family.name + suffix for suffix in SERIES_SUFFIXES[family.type]}
        sampled |= {sample.name for sample in family.samples}
    return declared, sampled


async def test_dashboard_and_alerts_read_only_metrics_the_consumer_serves(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """Each name in the dashboard's and the alerts' PromQL is declared by a live /metrics."""
    sim = await engage_sim_factory()
    topics = await make_topics(new_topic, partitions=2)
    records = [*as_records(lifecycle_stream(6, seed=14)), (b"BAD-1", b"\x00 not json")]
    settings = consumer_settings(kafka_broker, sim, topics)
    async with running(settings) as service:
        with anyio.fail_after(30):
            while service.http_port is None:
                await anyio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.http_port}") as client:
            await produce(kafka_broker, topics.inputs[0], records)
            await wait_for(service, finished=len(records))
            # Lag is served per partition once a commit and a fetch are known for it.
            with anyio.fail_after(20):
                while True:
                    response = await client.get("/metrics")
                    families = text_string_to_metric_families(response.text)
                    lag = next(f for f in families if f.name == "engage_consumer_lag")
                    if len(lag.samples) == 2:
                        break
                    await anyio.sleep(0.1)
    declared, sampled = served_names(response.text)
    wanted = dashboard_names() | alert_names()
    assert len(wanted) > 20
    assert sorted(wanted - declared) == []
    assert wanted - sampled <= NOT_IN_THIS_RUN
