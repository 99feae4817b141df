"""A refused API key stops the service instead of rejecting the backlog.

`engage-consumer run` against the simulator, whose accepted API keys change at its control
route the way a secret rotation changes Engage's. While Engage answers 401, nothing is
committed, readiness fails naming ``ENGAGE_API_KEY`` (one error line says so), and no event gets
an outcome; once the key works, every event gets its true outcome, none lost, none twice.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import orjson
import pytest

from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import lifecycle_stream
from tests.integration.harness import (
    ConsumerProcess,
    actions_reach,
    as_records,
    assert_guarantees,
    check,
    committed_lag,
    consumer_settings,
    drained,
    make_topics,
    produce,
    settings_env,
)

if TYPE_CHECKING:
    from pathlib import Path

    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker
    from tests.fixtures.engage import EngageSimFactory
    from tests.fixtures.kafka import TopicFactory

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

#: The key Engage holds while the consumer still sends the old one (a rotation half done).
OTHER_KEY = "rotated-key-0000000000"


async def _health_port(log: Path) -> int:
    with anyio.fail_after(30):
        while True:
            for line in log.read_text().splitlines() if log.exists() else []:
                if '"event":"health server listening"' in line:
                    return int(orjson.loads(line)["port"])
            await anyio.sleep(0.05)


async def _wait_until_refused(client: httpx.AsyncClient) -> dict[str, Any]:
    """Wait for readiness to fail because of the key; returns the /readyz body."""
    with anyio.fail_after(30):
        while True:
            answer = await client.get("/readyz")
            body: dict[str, Any] = answer.json()
            if answer.status_code == 503 and "ENGAGE_API_KEY" in body.get("reason", ""):
                return body
            await anyio.sleep(0.05)


def _key_errors(log: Path) -> list[dict[str, Any]]:
    """The consumer's own error lines (aiokafka's, which carry no component, are not ours)."""
    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("level") == "error" and "component" in line]


async def _refusals(sim: EngageSimulator) -> int:
    requests = (await sim.stats())["requests"]
    return sum(int(by_status.get("401", 0)) for by_status in requests.values())


async def _held(sim: EngageSimulator, client: httpx.AsyncClient, seconds: float) -> int:
    """Stay refused for ``seconds``; returns the 401s Engage answered meanwhile."""
    before = await _refusals(sim)
    await anyio.sleep(seconds)
    assert (await client.get("/readyz")).status_code == 503
    return await _refusals(sim) - before


async def test_a_key_refused_from_the_start_holds_every_event_until_engage_accepts_it(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """Started with a key Engage refuses: readiness 503, nothing committed, one error line, a
    few probes; Engage then accepts the key: every event answered truly, 0 lost, 0 twice."""
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.parse("uniform:0.01,0.1")))
    await sim.set_api_keys((OTHER_KEY,))
    topics = await make_topics(new_topic, partitions=3)
    events = lifecycle_stream(40, seed=13)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, sim, topics, event_deadline_seconds=5.0)
    log = tmp_path / "consumer.log"
    process = ConsumerProcess(settings_env(settings), str(log))
    try:
        port = await _health_port(log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            body = await _wait_until_refused(client)
            # Held for longer than the event deadline: no event may fail for that time.
            probes = await _held(sim, client, 6.0)
            lag_while_refused = await committed_lag(
                kafka_broker, settings.kafka_group_id, topics.inputs[0]
            )
            metrics = (await client.get("/metrics")).text
            await sim.set_api_keys((sim.api_key,))
            await drained(kafka_broker, settings.kafka_group_id, topics.inputs[0], 60)
            assert (await client.get("/readyz")).status_code == 200
        process.signal(signal.SIGTERM)
        assert await process.wait() == 0
    finally:
        process.close()
    report, outcomes = await check(kafka_broker, sim, topics, events)
    errors = _key_errors(log)
    print(
        "refused from the start:",
        {"probes_in_6s": probes, "lag_while_refused": lag_while_refused, **report.summary()},
    )
    # Committed while refused: at most the writes that a later write of their order superseded
    # (settled `skipped` without a call); nothing that needs Engage.
    skipped = sum(1 for o in outcomes if o["data"]["status"] == "skipped")
    assert len(events) - skipped <= lag_while_refused <= len(events)
    assert "engage_consumer_engage_api_key_refused 1.0" in metrics
    assert body["assigned"], "the member keeps its partitions while it waits"
    assert 1 <= probes <= 6
    assert [e["event"] for e in errors] == ["Engage refused the API key: check ENGAGE_API_KEY"]
    assert '"event":"Engage accepts the API key again: resuming"' in log.read_text()
    assert_guarantees(report, outcomes)
    assert {o["data"]["status"] for o in outcomes} <= {"accepted", "skipped"}


async def test_a_key_rotated_away_mid_run_loses_nothing(
    kafka_broker: KafkaBroker,
    engage_sim_factory: EngageSimFactory,
    new_topic: TopicFactory,
    tmp_path: Path,
) -> None:
    """Engage stops accepting the key while calls are on the wire: they and everything after
    them wait, nothing is rejected; the key comes back and the run completes as if unbroken."""
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.parse("uniform:0.05,0.3")))
    topics = await make_topics(new_topic, partitions=3)
    events = lifecycle_stream(120, seed=17)
    await produce(kafka_broker, topics.inputs[0], as_records(events))
    settings = consumer_settings(kafka_broker, sim, topics, engage_rate_limit=150.0)
    log = tmp_path / "consumer.log"
    process = ConsumerProcess(settings_env(settings), str(log))
    try:
        port = await _health_port(log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            await actions_reach(sim, 40, wait_seconds=60)
            await sim.set_api_keys((OTHER_KEY,))
            await _wait_until_refused(client)
            accepted_at_rotation = (await sim.stats())["actionsAccepted"]
            await _held(sim, client, 3.0)
            accepted_while_refused = (await sim.stats())["actionsAccepted"] - accepted_at_rotation
            await sim.set_api_keys((sim.api_key,))
            await drained(kafka_broker, settings.kafka_group_id, topics.inputs[0], 60)
        process.signal(signal.SIGTERM)
        assert await process.wait() == 0
    finally:
        process.close()
    report, outcomes = await check(kafka_broker, sim, topics, events)
    print(
        "rotated mid-run:",
        {"accepted_at_rotation": accepted_at_rotation, **report.summary()},
    )
    assert accepted_while_refused == 0
    assert accepted_at_rotation < report.actions_accepted
    assert_guarantees(report, outcomes)
    assert {o["data"]["status"] for o in outcomes} <= {"accepted", "skipped"}
    assert [e["event"] for e in _key_errors(log)] == [
        "Engage refused the API key: check ENGAGE_API_KEY"
    ]
