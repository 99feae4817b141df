"""Inspecting an order on a running consumer: its health port answers what the book knows.

The consumer runs in this process against the real broker and the simulator; Engage's jobs take
seconds, so an order is caught mid-write with its action queued behind it, then idle with the
tag it confirmed. ``engage-consumer inspect`` prints the same answer for a person.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import pytest

from consumer.sandbox.engage import Delay, SimulatorSettings
from consumer.sandbox.workload import EventFactory
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


async def _port(service: Service) -> int:
    with anyio.fail_after(30):
        while service.http_port is None:
            await anyio.sleep(0.02)
    return service.http_port


async def _order(client: httpx.AsyncClient, order_id: str) -> dict[str, Any]:
    answer = await client.get(f"/orders/{order_id}")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


async def _inspect(order_id: str, url: str) -> subprocess.CompletedProcess[str]:
    """``engage-consumer inspect`` as a process; its output as text."""
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-m", "consumer.cli", "inspect", order_id, "--url", url], check=False
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


async def test_an_order_mid_write_then_confirmed_and_one_nobody_knows(
    kafka_broker: KafkaBroker, engage_sim_factory: EngageSimFactory, new_topic: TopicFactory
) -> None:
    """Mid-write: state writing, the upsert writing and its action queued, with where they came
    from; done: confirmed with the tag Engage has; unknown order: not tracked. The command
    prints it, and says where nobody answers."""
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.parse("fixed:2")))
    topics = await make_topics(new_topic, partitions=2)
    factory = EventFactory(prefix="ins")
    events = [factory.upserted("INS-1", 1), factory.action("INS-1", "ConfirmOrder")]
    settings = consumer_settings(kafka_broker, sim, topics)
    async with running(settings) as service:
        port = await _port(service)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            await produce(kafka_broker, topics.inputs[0], as_records(events))
            with anyio.fail_after(30):
                while (busy := await _order(client, "INS-1"))["state"] != "writing":
                    await anyio.sleep(0.05)
            printed = await _inspect("INS-1", base)
            await wait_for(service, finished=len(events))
            done = await _order(client, "INS-1")
            nobody = await _order(client, "NO-SUCH-ORDER")
    stages = [(op["stage"], op["role"], op["eventId"]) for op in busy["waiting"]]
    assert stages == [
        ("writing", "write", events[0].event_id),
        ("queued", "action", events[1].event_id),
    ]
    assert busy["waiting"][0]["topic"] == topics.inputs[0]
    assert busy["waiting"][0]["offset"] == 0
    assert busy["busySince"] == busy["waiting"][0]["receivedAt"]
    assert busy["ownedHere"] is True
    assert [p["topic"] for p in busy["partitions"]] == [topics.inputs[0]]
    assert busy["partitions"][0]["partition"] == busy["waiting"][0]["partition"]
    engage_tag = (await sim.journal())[-1].get("versionTag")
    assert (done["state"], done["revision"], done["waiting"]) == ("confirmed", 1, [])
    assert done["versionTag"] is not None
    assert engage_tag in (None, done["versionTag"])
    assert (nobody["tracked"], nobody["state"], nobody["waiting"]) == (False, "unknown", [])
    assert settings.engage_api_key.reveal() not in str([busy, done, nobody])

    print("engage-consumer inspect INS-1, mid-write:\n" + printed.stdout)
    assert printed.returncode == 0, printed.stderr
    assert "order INS-1" in printed.stdout
    assert "writing" in printed.stdout
    assert "ConfirmOrder" in printed.stdout

    gone = await _inspect("INS-1", base)
    assert gone.returncode == 1
    assert "no consumer answered" in gone.stderr
