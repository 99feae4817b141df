"""Embedded order actions in the Engage simulator, over real HTTP with httpx."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from consumer.sandbox.audit import audit
from consumer.sandbox.engage import (
    Delay,
    SimulatorSettings,
    body_digest,
    open_engage_simulator_process,
)
from consumer.sandbox.workload import EventFactory, GeneratedEvent
from tests.fixtures.engage import FAST_SETTINGS, engage_headers, finish_job, order_body

if TYPE_CHECKING:
    from consumer.sandbox.engage import EngageSimulator
    from tests.fixtures.engage import EngageSimFactory

pytestmark = pytest.mark.engage

ACTION = {"action": "ConfirmOrder", "language": "sv-SE", "data": {"parcelCount": 1}}


async def _write(
    api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any]
) -> httpx.Response:
    """Send a write, check it was accepted, and return its job's final answer."""
    answer = await api.request(method, path, json=body)
    assert answer.status_code == 202, answer.text
    return await finish_job(api, answer.headers["Location"])


async def test_embedded_action_runs_on_its_write_and_the_job_says_so(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """POST with orderAction: 302 reporting Succeeded; journaled on the write's tag, embedded."""
    done = await _write(api, "POST", "/api/v3/orders", order_body(orderAction=ACTION))
    job_id = done.json()["jobId"]
    assert (done.status_code, done.json()) == (
        302,
        {
            "jobId": job_id,
            "orderId": "o-1",
            "status": "Succeeded",
            "orderAction": {"status": "Succeeded"},
        },
    )
    order = (await api.get(done.headers["Location"])).json()
    tag = order.pop("versionTag")
    assert order == order_body()
    journal = await engage_sim.journal()
    assert [{k: v for k, v in e.items() if k not in {"seq", "t"}} for e in journal[1:]] == [
        {
            "kind": "processed",
            "operation": "create",
            "orderId": "o-1",
            "jobId": job_id,
            "versionTag": tag,
        },
        {
            "kind": "action",
            "orderId": "o-1",
            "action": "ConfirmOrder",
            "versionTag": tag,
            "language": "sv-SE",
            "data": {"parcelCount": 1},
            "embedded": True,
            "jobId": job_id,
        },
    ]
    # A separate action on the same tag is journaled with the same fields, minus the two marks.
    separate = await api.post("/api/v3/orders/o-1/action", json={**ACTION, "versionTag": tag})
    assert separate.status_code == 202
    last = (await engage_sim.journal())[-1]
    assert set(journal[-1]) - set(last) == {"embedded", "jobId"}
    assert (await engage_sim.stats())["actionsAccepted"] == 2


async def test_embedded_action_without_contact_fails_while_the_job_succeeds(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """PUT of an order without contact: 302, the report says OrderHasNoContact, no action."""
    await _write(api, "POST", "/api/v3/orders", {"orderId": "o-1"})
    done = await _write(api, "PUT", "/api/v3/orders/o-1", {"orderId": "o-1", "orderAction": ACTION})
    assert done.status_code == 302
    assert done.json()["orderAction"] == {"status": "Failed", "errorCode": "OrderHasNoContact"}
    tag = (await api.get("/api/v3/orders/o-1")).json()["versionTag"]
    # The same condition makes the action endpoint answer 422.
    separate = await api.post("/api/v3/orders/o-1/action", json={**ACTION, "versionTag": tag})
    assert (separate.status_code, separate.json()["errorCode"]) == (422, "OrderHasNoContact")
    kinds = [e["kind"] for e in await engage_sim.journal()]
    assert kinds == ["write", "processed", "write", "processed"]


async def test_failed_job_does_not_run_its_embedded_action(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """A scripted job failure: the failure answer reports NotRun and nothing is journaled."""
    await engage_sim.fail_next_job("o-1", "internal")
    failed = await _write(api, "POST", "/api/v3/orders", order_body(orderAction=ACTION))
    assert failed.status_code == 500
    assert failed.json() == {
        "jobId": failed.json()["jobId"],
        "orderId": "o-1",
        "status": "Failed",
        "errorCode": "InternalError",
        "message": "the create job failed (internal, simulated)",
        "orderAction": {"status": "NotRun"},
    }
    assert [e["kind"] for e in await engage_sim.journal()] == ["write", "job_failed"]
    assert (await engage_sim.stats())["embeddedActions"] == {
        "succeeded": 0,
        "failed": 0,
        "notRun": 1,
    }


async def test_job_failure_rate_leaves_embedded_actions_not_run(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """With every job failing (the random fault), no embedded action ever runs."""
    sim = await engage_sim_factory(replace(FAST_SETTINGS, job_failure_rate=1.0))
    async with httpx.AsyncClient(base_url=sim.base_url, headers=engage_headers(sim)) as http:
        for n in range(3):
            failed = await _write(
                http, "POST", "/api/v3/orders", order_body(f"o-{n}", orderAction=ACTION)
            )
            assert failed.json()["status"] == "Failed"
            assert failed.json()["orderAction"] == {"status": "NotRun"}
    assert [e for e in await sim.journal() if e["kind"] == "action"] == []


@pytest.mark.parametrize(
    "embedded",
    [
        None,
        "ConfirmOrder",
        {"action": "ConfirmOrder", "versionTag": "abc"},
        {"action": ""},
        {"language": "sv-SE"},
        {"action": "ConfirmOrder", "language": ["sv-SE"]},
    ],
)
async def test_malformed_embedded_action_refuses_the_write(
    api: httpx.AsyncClient, engage_sim: EngageSimulator, embedded: object
) -> None:
    """POST and PUT answer 400 InvalidOrderAction in the usual error shape; nothing changes."""
    create = await api.post("/api/v3/orders", json=order_body(orderAction=embedded))
    assert create.status_code == 400
    assert create.json()["errorCode"] == "InvalidOrderAction"
    assert set(create.json()) == {"errorCode", "message"}
    assert (await api.get("/api/v3/orders/o-1")).status_code == 404
    assert await engage_sim.journal() == []
    await _write(api, "POST", "/api/v3/orders", order_body())
    before = (await api.get("/api/v3/orders/o-1")).json()
    replace_ = await api.put(
        "/api/v3/orders/o-1", json=order_body(status="Shipped", orderAction=embedded)
    )
    assert (replace_.status_code, replace_.json()["errorCode"]) == (400, "InvalidOrderAction")
    await asyncio.sleep(0.03)  # longer than any job: a job started by mistake would be done
    assert (await api.get("/api/v3/orders/o-1")).json() == before
    assert len(await engage_sim.journal()) == 2
    assert (await engage_sim.stats())["jobs"]["accepted"] == 1


async def test_field_is_stripped_before_storing_and_tagging(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """Two simulators with one seed: with and without orderAction, same documents and tags."""
    seeded = replace(FAST_SETTINGS, seed=11)
    stored: list[tuple[dict[str, Any], list[str | None]]] = []
    for with_action in (False, True):
        sim = await engage_sim_factory(seeded)
        extra: dict[str, Any] = {"orderAction": ACTION} if with_action else {}
        async with httpx.AsyncClient(base_url=sim.base_url, headers=engage_headers(sim)) as http:
            await _write(http, "POST", "/api/v3/orders", order_body(**extra))
            await _write(http, "PUT", "/api/v3/orders/o-1", order_body(status="Shipped", **extra))
            order = (await http.get("/api/v3/orders/o-1")).json()
        digests = [e["bodyDigest"] for e in await sim.journal() if e["kind"] == "write"]
        stored.append((order, digests))
    assert stored[0] == stored[1]
    order, digests = stored[1]
    assert "orderAction" not in order
    assert digests == [body_digest(order_body()), body_digest(order_body(status="Shipped"))]


async def test_embedded_action_costs_no_request_of_its_own(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """A bucket of 3: write + poll + separate action pass, the 4th request is 429."""
    settings = SimulatorSettings(job_delay=Delay.fixed(0.0), rate_limit=0.001, rate_burst=3)
    sim = await engage_sim_factory(settings)
    async with httpx.AsyncClient(base_url=sim.base_url, headers=engage_headers(sim)) as http:
        done = await _write(http, "POST", "/api/v3/orders", order_body(orderAction=ACTION))
        assert done.json()["orderAction"] == {"status": "Succeeded"}
        tag = (await sim.journal())[-1]["versionTag"]  # the control route is free
        separate = await http.post(
            "/api/v3/orders/o-1/action", json={"action": "ConfirmShipment", "versionTag": tag}
        )
        assert separate.status_code == 202
        assert (await http.get("/api/v3/orders/o-1")).status_code == 429
    stats = await sim.stats()
    assert (stats["requestsTotal"], stats["actionsAccepted"], stats["rateLimited"]) == (4, 2, 1)


def _confirmed_stream() -> tuple[GeneratedEvent, GeneratedEvent]:
    factory = EventFactory(prefix="emb")
    return (
        factory.upserted("o-1", 1, status="Created"),
        factory.lifecycle("confirmed", "o-1", revision=2, snapshot_status="Paid"),
    )


def _outcomes(*events: GeneratedEvent) -> list[dict[str, Any]]:
    return [
        {"data": {"eventId": e.event_id, "operation": "upsert", "status": "accepted"}}
        for e in events
    ]


@pytest.mark.parametrize("also_separately", [False, True])
async def test_audit_of_embedded_actions_over_http(
    api: httpx.AsyncClient, engage_sim: EngageSimulator, *, also_separately: bool
) -> None:
    """The audit accepts a lifecycle action embedded in its snapshot, and flags it as a
    duplicate when the same event's action is also posted separately."""
    created, confirmed = _confirmed_stream()
    data = confirmed.event["data"]
    embedded = {"action": "ConfirmOrder", "language": "sv-SE", "data": data["actionData"]}
    await _write(api, "POST", "/api/v3/orders", created.event["data"]["order"])
    done = await _write(
        api, "PUT", "/api/v3/orders/o-1", {**data["order"], "orderAction": embedded}
    )
    assert done.json()["orderAction"] == {"status": "Succeeded"}
    if also_separately:
        tag = (await api.get("/api/v3/orders/o-1")).json()["versionTag"]
        separate = await api.post("/api/v3/orders/o-1/action", json={**embedded, "versionTag": tag})
        assert separate.status_code == 202
    report = audit(
        events=[created, confirmed],
        journal=await engage_sim.journal(),
        outcomes=_outcomes(created, confirmed),
    )
    assert report.correct
    assert report.embedded_actions == 1
    if also_separately:
        assert (report.duplicate_actions, report.duplicated_event_ids) == (1, [confirmed.event_id])
    else:
        assert (report.actions_accepted, report.duplicate_actions) == (1, 0)


async def test_field_name_setting_reaches_a_child_process() -> None:
    """--embedded-action-field: the child reads and reports the action under that name."""
    settings = replace(FAST_SETTINGS, embedded_action_field="embeddedAction")
    async with open_engage_simulator_process(settings) as sim:
        headers = {"apikey": sim.api_key, "User-Agent": "t/1"}
        async with httpx.AsyncClient(base_url=sim.base_url, headers=headers) as http:
            done = await _write(http, "POST", "/api/v3/orders", order_body(embeddedAction=ACTION))
            assert done.json()["embeddedAction"] == {"status": "Succeeded"}
            assert "orderAction" not in done.json()
            stored = (await http.get("/api/v3/orders/o-1")).json()
        assert "embeddedAction" not in stored
        actions = [e for e in await sim.journal() if e["kind"] == "action"]
        assert [(a["action"], a["embedded"]) for a in actions] == [("ConfirmOrder", True)]
