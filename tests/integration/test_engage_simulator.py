"""The Engage simulator over real HTTP with httpx: every documented answer, faults, journal."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest

from consumer.sandbox.engage import (
    Delay,
    Faults,
    SimulatorSettings,
    body_digest,
    open_engage_simulator_process,
)
from tests.fixtures.engage import FAST_SETTINGS, engage_headers, finish_job, order_body

if TYPE_CHECKING:
    from consumer.sandbox.engage import EngageSimulator
    from tests.fixtures.engage import EngageSimFactory

pytestmark = pytest.mark.engage


async def _write(api: httpx.AsyncClient, method: str, path: str, body: Any = None) -> str:
    """Send a write, check it was accepted, wait for its job, return the order's new tag."""
    answer = await api.request(method, path, json=body)
    assert answer.status_code == 202, answer.text
    done = await finish_job(api, answer.headers["Location"])
    assert done.status_code == 302, done.text
    order = await api.get(done.headers["Location"])
    tag: str = order.json()["versionTag"]
    return tag


async def test_write_answers_202_with_job_link_then_pending_then_302(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """POST is 202 with the job in Location and body; polling is 202 until 302 to the order."""
    answer = await api.post("/api/v3/orders", json=order_body())
    assert answer.status_code == 202
    job_id = answer.json()["jobId"]
    location = f"/api/v3/orders/jobs/{job_id}"
    assert answer.headers["Location"] == location
    assert answer.json() == {"jobId": job_id, "location": location}
    pending = await api.get(location)
    assert pending.status_code == 202
    assert pending.json() == {"jobId": job_id, "orderId": "o-1", "status": "Processing"}
    done = await finish_job(api, location)
    assert (done.status_code, done.headers["Location"]) == (302, "/api/v3/orders/o-1")
    assert done.json() == {"jobId": job_id, "orderId": "o-1", "status": "Succeeded"}
    order = await api.get("/api/v3/orders/o-1")
    assert order.status_code == 200
    assert order.json() == {**order_body(), "versionTag": engage_sim.state.version_tag("o-1")}


async def test_unknown_job_and_unknown_order_are_404(api: httpx.AsyncClient) -> None:
    """Polling a job that never existed, or reading an absent order, answers 404."""
    assert (await api.get("/api/v3/orders/jobs/nope")).status_code == 404
    assert (await api.get("/api/v3/orders/o-404")).status_code == 404


async def test_every_processed_write_changes_the_version_tag(api: httpx.AsyncClient) -> None:
    """Create, replace with the same body, replace again: three different tags."""
    tags = [
        await _write(api, "POST", "/api/v3/orders", order_body()),
        await _write(api, "PUT", "/api/v3/orders/o-1", order_body()),
        await _write(api, "PUT", "/api/v3/orders/o-1", order_body(status="Shipped")),
    ]
    assert len(set(tags)) == 3
    assert (await api.get("/api/v3/orders/o-1")).json()["status"] == "Shipped"


async def test_duplicate_post_is_409_put_and_delete_of_absent_are_404(
    api: httpx.AsyncClient,
) -> None:
    """POST of an existing orderId is 409; PUT and DELETE of an absent order are 404."""
    await _write(api, "POST", "/api/v3/orders", order_body())
    assert (await api.post("/api/v3/orders", json=order_body())).status_code == 409
    assert (await api.put("/api/v3/orders/o-2", json=order_body("o-2"))).status_code == 404
    assert (await api.delete("/api/v3/orders/o-2")).status_code == 404


async def test_delete_job_removes_the_order(api: httpx.AsyncClient) -> None:
    """A DELETE is accepted as a job; once processed the order answers 404."""
    await _write(api, "POST", "/api/v3/orders", order_body())
    answer = await api.delete("/api/v3/orders/o-1")
    assert answer.status_code == 202
    assert (await finish_job(api, answer.headers["Location"])).status_code == 302
    assert (await api.get("/api/v3/orders/o-1")).status_code == 404


async def test_failed_job_answers_its_error_status_and_body(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """A failing job polls as 422 with a Failed body, and the order keeps its previous tag."""
    tag = await _write(api, "POST", "/api/v3/orders", order_body())
    await engage_sim.fail_next_job("o-1", "unprocessable")
    answer = await api.put("/api/v3/orders/o-1", json=order_body(status="X"))
    failed = await finish_job(api, answer.headers["Location"])
    assert failed.status_code == 422
    assert failed.json() == {
        "jobId": answer.json()["jobId"],
        "orderId": "o-1",
        "status": "Failed",
        "errorCode": "UnprocessableOrder",
        "message": "the replace job failed (unprocessable, simulated)",
    }
    assert (await api.get("/api/v3/orders/o-1")).json()["versionTag"] == tag


async def test_job_failure_rate_fails_jobs(engage_sim_factory: EngageSimFactory) -> None:
    """With job_failure_rate 1 and kind internal, every write's job ends in 500."""
    sim = await engage_sim_factory(
        SimulatorSettings(
            job_delay=Delay.fixed(0.005), job_failure_rate=1.0, job_failure_kinds=("internal",)
        )
    )
    async with httpx.AsyncClient(base_url=sim.base_url, headers=engage_headers(sim)) as http:
        answer = await http.post("/api/v3/orders", json=order_body())
        failed = await finish_job(http, answer.headers["Location"])
    assert (failed.status_code, failed.json()["status"]) == (500, "Failed")


async def test_action_answers_202_404_422(api: httpx.AsyncClient) -> None:
    """Current tag: 202; stale tag or unknown order: 404; order without contact: 422."""
    old = await _write(api, "POST", "/api/v3/orders", order_body())
    tag = await _write(api, "PUT", "/api/v3/orders/o-1", order_body())
    no_contact_tag = await _write(api, "POST", "/api/v3/orders", {"orderId": "o-2"})
    action = "/api/v3/orders/{}/action"
    accepted = await api.post(action.format("o-1"), json={"action": "A", "versionTag": tag})
    stale = await api.post(action.format("o-1"), json={"action": "A", "versionTag": old})
    unknown = await api.post(action.format("o-9"), json={"action": "A", "versionTag": tag})
    no_contact = await api.post(
        action.format("o-2"), json={"action": "A", "versionTag": no_contact_tag}
    )
    assert [r.status_code for r in (accepted, stale, unknown, no_contact)] == [202, 404, 404, 422]
    assert stale.json()["errorCode"] == "VersionTagMismatch"
    assert unknown.json()["errorCode"] == "OrderNotFound"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"versionTag": "t"}',
        b'{"action": 1, "versionTag": "t"}',
        b'{"action": "ConfirmOrder"}',
    ],
)
async def test_malformed_action_is_400(api: httpx.AsyncClient, content: bytes) -> None:
    """Bad JSON, a missing or non-string action, or a missing versionTag answer 400."""
    await _write(api, "POST", "/api/v3/orders", order_body())
    answer = await api.post("/api/v3/orders/o-1/action", content=content)
    assert answer.status_code == 400


async def test_apikey_is_checked(api: httpx.AsyncClient) -> None:
    """No apikey or an unknown one answers 401."""
    missing = await api.get("/api/v3/orders/o-1", headers={"apikey": ""})
    wrong = await api.get("/api/v3/orders/o-1", headers={"apikey": "not-the-key"})
    assert [missing.status_code, wrong.status_code] == [401, 401]


async def test_user_agent_is_required(engage_sim: EngageSimulator) -> None:
    """A request without User-Agent answers 400."""
    headers = {"apikey": engage_sim.api_key, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=engage_sim.base_url) as http:
        request = http.build_request("GET", "/api/v3/orders/o-1", headers=headers)
        del request.headers["User-Agent"]
        answer = await http.send(request)
    assert (answer.status_code, answer.json()["errorCode"]) == (400, "MissingUserAgent")


async def test_content_type_is_required_where_a_body_is_sent(
    api: httpx.AsyncClient, engage_sim_factory: EngageSimFactory
) -> None:
    """POST without Content-Type: 500 (as Engage); GET passes unless strict_content_type."""
    plain = {"Content-Type": "text/plain"}
    post = await api.post("/api/v3/orders", content=b'{"orderId": "o-1"}', headers=plain)
    assert post.status_code == 500
    assert (await api.get("/api/v3/orders/o-1", headers=plain)).status_code == 404
    strict = await engage_sim_factory(replace(FAST_SETTINGS, strict_content_type=True))
    async with httpx.AsyncClient(base_url=strict.base_url, headers=engage_headers(strict)) as http:
        assert (await http.get("/api/v3/orders/o-1", headers=plain)).status_code == 500
        ok = await http.get("/api/v3/orders/o-1", headers={"Content-Type": "application/json"})
        assert ok.status_code == 404


async def test_rate_limit_answers_429_with_retry_after(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """Past the burst a key gets 429 with Retry-After; without the setting, no header."""
    for retry_after, header in ((3, "3"), (None, None)):
        sim = await engage_sim_factory(
            SimulatorSettings(rate_limit=1.0, rate_burst=2, retry_after=retry_after)
        )
        async with httpx.AsyncClient(base_url=sim.base_url, headers=engage_headers(sim)) as http:
            answers = [await http.get("/api/v3/orders/o-1") for _ in range(3)]
        assert [a.status_code for a in answers] == [404, 404, 429]
        assert answers[2].headers.get("Retry-After") == header
        assert (await sim.stats())["rateLimited"] == 1


async def test_journal_records_exactly_what_was_accepted(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """Accepted writes, processed jobs and accepted actions are journaled; refusals are not."""
    old = await _write(api, "POST", "/api/v3/orders", order_body())
    tag = await _write(api, "PUT", "/api/v3/orders/o-1", order_body())
    await api.post("/api/v3/orders", json=order_body())  # 409
    await api.post("/api/v3/orders/o-1/action", json={"action": "A", "versionTag": old})  # 404
    data = {"parcelCount": 1}
    action = {"action": "ConfirmShipment", "versionTag": tag, "language": "sv-SE", "data": data}
    assert (await api.post("/api/v3/orders/o-1/action", json=action)).status_code == 202
    journal = await engage_sim.journal()
    digest = {"bodyDigest": body_digest(order_body())}  # ties a tag to the body that made it
    assert [e["seq"] for e in journal] == list(range(1, 6))
    assert all(a["t"] <= b["t"] for a, b in itertools.pairwise(journal))
    assert [{k: v for k, v in e.items() if k not in {"seq", "t", "jobId"}} for e in journal] == [
        {"kind": "write", "operation": "create", "method": "POST", "orderId": "o-1", **digest},
        {"kind": "processed", "operation": "create", "orderId": "o-1", "versionTag": old},
        {"kind": "write", "operation": "replace", "method": "PUT", "orderId": "o-1", **digest},
        {"kind": "processed", "operation": "replace", "orderId": "o-1", "versionTag": tag},
        {"kind": "action", "orderId": "o-1", **action},
    ]
    assert journal[0]["jobId"] == journal[1]["jobId"] != journal[2]["jobId"] == journal[3]["jobId"]


async def test_control_routes_page_the_journal_and_report_stats(
    api: httpx.AsyncClient,
) -> None:
    """/_sim/journal pages with since and limit; /_sim/stats counts; /_sim/reset clears."""
    await _write(api, "POST", "/api/v3/orders", order_body())
    await _write(api, "POST", "/api/v3/orders", order_body("o-2"))
    page = (await api.get("/_sim/journal", params={"since": 1, "limit": 2})).json()
    assert ([e["seq"] for e in page["entries"]], page["lastSeq"], page["more"]) == ([2, 3], 3, True)
    rest = (await api.get("/_sim/journal", params={"since": 3})).json()
    assert ([e["seq"] for e in rest["entries"]], rest["more"]) == ([4], False)
    assert (await api.get("/_sim/journal", params={"since": "x"})).status_code == 400
    stats = (await api.get("/_sim/stats")).json()
    assert stats["requests"]["POST /api/v3/orders"] == {"202": 2}
    assert stats["jobs"]["processed"] == 2
    peek = (await api.get("/_sim/orders/o-1")).json()
    assert peek["order"] == order_body()
    assert (await api.post("/_sim/reset")).status_code == 200
    assert (await api.get("/_sim/journal")).json()["entries"] == []
    assert (await api.get("/api/v3/orders/o-1")).status_code == 404


async def test_control_route_sets_faults_and_rejects_bad_ones(
    api: httpx.AsyncClient,
) -> None:
    """POST /_sim/faults applies valid JSON and answers 400 to bad JSON or values."""
    set_ = await api.post("/_sim/faults", json={"errorRate": 1.0})
    assert set_.status_code == 200
    assert (await api.get("/_sim/faults")).json()["errorRate"] == 1.0
    assert (await api.get("/api/v3/orders/o-1")).status_code == 503
    assert (await api.post("/_sim/faults", content=b"{")).status_code == 400
    assert (await api.post("/_sim/faults", json={"errorRate": 7})).status_code == 400
    assert (await api.post("/_sim/faults", json={})).status_code == 200
    assert (await api.get("/api/v3/orders/o-1")).status_code == 404
    fail_next = await api.post("/_sim/fail-next", json={"orderId": "o-1", "kind": "boom"})
    assert fail_next.status_code == 400


async def test_error_rate_one_answers_503_and_changes_nothing(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """Every API request gets 503 and nothing is accepted; control routes still answer."""
    await engage_sim.set_faults(Faults(error_rate=1.0))
    answers = [
        await api.post("/api/v3/orders", json=order_body()),
        await api.get("/api/v3/orders/o-1"),
    ]
    assert [a.status_code for a in answers] == [503, 503]
    assert await engage_sim.journal() == []
    assert (await engage_sim.stats())["faultsInjected"] == {"error": 2}


async def test_dropped_connection_is_a_transport_error_and_not_processed(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """drop_rate 1 before processing: httpx sees the server hang up, and nothing is journaled."""
    await engage_sim.set_faults(Faults(drop_rate=1.0))
    with pytest.raises(httpx.TransportError):
        await api.post("/api/v3/orders", json=order_body())
    assert await engage_sim.journal() == []
    assert (await engage_sim.stats())["requests"]["POST /api/v3/orders"] == {"dropped": 1}


async def test_drop_after_processing_loses_only_the_answer(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """drop_when after: the action is accepted and journaled, but the api sees an error."""
    tag = await _write(api, "POST", "/api/v3/orders", order_body())
    await engage_sim.set_faults(Faults(drop_rate=1.0, drop_when="after"))
    with pytest.raises(httpx.TransportError):
        await api.post("/api/v3/orders/o-1/action", json={"action": "A", "versionTag": tag})
    assert (await engage_sim.journal())[-1]["kind"] == "action"


async def test_latency_delays_answers(api: httpx.AsyncClient, engage_sim: EngageSimulator) -> None:
    """Added latency makes each answer at least that slow."""
    await engage_sim.set_faults(Faults(latency=Delay.fixed(0.1)))
    started = time.monotonic()
    assert (await api.get("/api/v3/orders/o-1")).status_code == 404
    assert time.monotonic() - started >= 0.1


@pytest.mark.parametrize("mode", ["error", "drop", "refuse"])
async def test_timed_outage_then_recovery(
    api: httpx.AsyncClient, engage_sim: EngageSimulator, mode: str
) -> None:
    """During an outage requests get 503, a dropped or a refused connection; then all is well."""
    await engage_sim.set_faults(Faults(outage_seconds=0.3, outage_mode=mode))  # type: ignore[arg-type]
    if mode == "error":
        assert (await api.get("/api/v3/orders/o-1")).status_code == 503
    else:
        expected = httpx.ConnectError if mode == "refuse" else httpx.TransportError
        with pytest.raises(expected):
            await api.get("/api/v3/orders/o-1")
    await asyncio.sleep(0.35)
    assert (await api.get("/api/v3/orders/o-1")).status_code == 404
    await _write(api, "POST", "/api/v3/orders", order_body())


async def test_outage_set_at_start(engage_sim_factory: EngageSimFactory) -> None:
    """An outage in the start settings begins at once and ends on time."""
    sim = await engage_sim_factory(
        replace(FAST_SETTINGS, faults=Faults(outage_seconds=0.2, outage_mode="refuse"))
    )
    async with httpx.AsyncClient(base_url=sim.base_url, headers=engage_headers(sim)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("/api/v3/orders/o-1")
        await asyncio.sleep(0.25)
        assert (await http.get("/api/v3/orders/o-1")).status_code == 404


async def test_simulator_in_a_child_process() -> None:
    """The child-process handle starts the CLI, talks to it, sets faults, and stops it cleanly."""
    settings = replace(FAST_SETTINGS, api_keys=("proc-key",), seed=3)
    async with open_engage_simulator_process(settings) as sim:
        assert sim.api_key == "proc-key"
        headers = {"apikey": sim.api_key, "User-Agent": "t/1"}
        async with httpx.AsyncClient(base_url=sim.base_url, headers=headers) as http:
            assert (await http.post("/api/v3/orders", json=order_body())).status_code == 202
            await asyncio.sleep(0.05)
            await sim.set_faults(Faults(error_rate=1.0))
            assert (await http.get("/api/v3/orders/o-1")).status_code == 503
            await sim.set_faults(Faults())
            assert (await http.get("/api/v3/orders/o-1")).status_code == 200
        assert [e["kind"] for e in await sim.journal()] == ["write", "processed"]
        assert (await sim.stats())["jobs"]["processed"] == 1
        await sim.reset()
        assert await sim.journal() == []
        process = sim.process
    assert process.returncode == 0


async def test_refuse_outage_through_the_control_route(api: httpx.AsyncClient) -> None:
    """POST /_sim/faults can start a refuse outage: it answers, then connections fail, then heal."""
    answer = await api.post("/_sim/faults", json={"outageSeconds": 0.2, "outageMode": "refuse"})
    assert answer.status_code == 200
    with pytest.raises(httpx.TransportError):
        await api.get("/api/v3/orders/o-1")
    with pytest.raises(httpx.ConnectError):
        await api.get("/api/v3/orders/o-1")
    await asyncio.sleep(0.25)
    assert (await api.get("/api/v3/orders/o-1")).status_code == 404


@pytest.mark.parametrize("order_id", ["a/b", "å ö", "x%y", "a?b#c"])
async def test_order_ids_are_one_escaped_path_segment(
    api: httpx.AsyncClient, order_id: str
) -> None:
    """Ids with slashes, spaces or URL syntax work when escaped; the 302 escapes them too."""
    answer = await api.post("/api/v3/orders", json=order_body(order_id))
    done = await finish_job(api, answer.headers["Location"])
    assert done.headers["Location"] == f"/api/v3/orders/{quote(order_id, safe='')}"
    assert (await api.get(done.headers["Location"])).json()["orderId"] == order_id


async def test_accepted_keys_change_at_the_control_route(
    api: httpx.AsyncClient, engage_sim: EngageSimulator
) -> None:
    """A key rotated away is refused with 401 at once; granted back, it works again."""
    assert (await api.get("/api/v3/orders/none")).status_code == 404
    async with httpx.AsyncClient(base_url=engage_sim.base_url) as control:
        answer = await control.post("/_sim/api-keys", json={"apiKeys": ["the-new-key"]})
        assert answer.json() == {"apiKeys": 1}
        refused = await api.get("/api/v3/orders/none")
        assert (refused.status_code, refused.json()["errorCode"]) == (401, "Unauthorized")
        bad = await control.post("/_sim/api-keys", json={"apiKeys": []})
        assert bad.status_code == 400
        await control.post("/_sim/api-keys", json={"apiKeys": [engage_sim.api_key]})
    assert (await api.get("/api/v3/orders/none")).status_code == 404


async def test_requests_are_counted_per_second_with_their_429s(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """Every answered API request lands in the second it was answered in, 429s apart."""
    sim = await engage_sim_factory(replace(FAST_SETTINGS, rate_limit=5.0, rate_burst=5))
    async with httpx.AsyncClient(base_url=sim.base_url, headers=engage_headers(sim)) as http:
        statuses = [(await http.get("/api/v3/orders/none")).status_code for _ in range(8)]
        rows = (await http.get("/_sim/per-second")).json()
    assert statuses.count(429) == sum(row[2] for row in rows) >= 2
    assert sum(row[1] for row in rows) == 8
    assert (await sim.stats())["busiestSecond"] == max(row[1] for row in rows)
