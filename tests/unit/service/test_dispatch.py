"""Dispatch policy: in-flight bounds, and how the dispatcher classifies answers.

The dispatcher tests talk HTTP through a scripted ``httpx`` transport (a fake that implements
httpx's transport protocol, not a mock): each test lists Engage's answers in order and checks
what was sent. The same behaviours are checked against the real simulator in
tests/integration/test_engage_client.py.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import httpx
import orjson
import pytest

from consumer.config import Secret
from consumer.credentials import CredentialsGate, CredentialsSettings
from consumer.engage import EngageClient, EngageClientSettings
from consumer.errors import EngageRetriable, SendRefused
from consumer.ratebudget import RateBudget, RateBudgetSettings
from consumer.retry import RetryPolicy
from consumer.service.dispatch import Dispatcher, DispatchResult, DispatchSettings
from consumer.service.gate import CallGate

BASE = "http://engage.test"
KEY = "unit-test-key-123"

# -- CallGate ------------------------------------------------------------------------------------


def open_budget() -> RateBudget:
    return RateBudget(RateBudgetSettings(ceiling=10_000.0, burst=10_000.0))


async def test_gate_bounds_concurrent_calls() -> None:
    """With max_in_flight=3, at most three calls hold a place at once."""
    gate = CallGate(max_in_flight=3, max_polls_in_flight=1, budget=open_budget())
    peak = 0
    current = 0

    async def call() -> None:
        nonlocal peak, current
        async with gate.slot("call", deadline=None):
            current += 1
            peak = max(peak, current)
            await anyio.sleep(0.01)
            current -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(12):
            tg.start_soon(call)
    assert (peak, gate.in_flight) == (3, 0)


async def test_polls_cannot_starve_calls() -> None:
    """With every poll place taken (and more polls waiting), a write/action call still goes."""
    gate = CallGate(max_in_flight=2, max_polls_in_flight=2, budget=open_budget())
    release = anyio.Event()

    async def hold_poll() -> None:
        async with gate.slot("poll", deadline=None):
            await release.wait()

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(hold_poll)
        await anyio.wait_all_tasks_blocked()
        assert gate.polls_in_flight == 2
        with anyio.fail_after(1):
            async with gate.slot("call", deadline=None):
                assert gate.in_flight == 1
        release.set()


async def test_gate_gives_up_at_the_deadline_and_frees_its_place() -> None:
    """A request still waiting for a place at its deadline raises retriable, holding nothing."""
    gate = CallGate(max_in_flight=1, max_polls_in_flight=1, budget=open_budget())
    release = anyio.Event()

    async def hold() -> None:
        async with gate.slot("call", deadline=None):
            await release.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(EngageRetriable, match="deadline"):
            async with gate.slot("call", deadline=time.monotonic() + 0.05):
                pytest.fail("must not get a place")
        release.set()
    assert gate.in_flight == 0


async def test_every_slot_spends_a_rate_token() -> None:
    """Polls and calls draw from one budget: after the burst, the next request must wait."""
    budget = RateBudget(RateBudgetSettings(ceiling=1.0, burst=2.0, floor=1.0))
    gate = CallGate(max_in_flight=5, max_polls_in_flight=5, budget=budget)
    async with gate.slot("call", deadline=None):
        pass
    async with gate.slot("poll", deadline=None):
        pass
    with pytest.raises(EngageRetriable):
        async with gate.slot("call", deadline=time.monotonic() + 0.05):
            pass
    assert gate.in_flight == 0


async def test_before_send_runs_without_holding_a_place_and_can_refuse() -> None:
    """An action's intent commit must not occupy an in-flight place; refusing sends nothing."""
    gate = CallGate(max_in_flight=1, max_polls_in_flight=1, budget=open_budget())
    release = anyio.Event()
    seen: list[int] = []

    async def hold() -> None:
        async with gate.slot("call", deadline=None):
            await release.wait()

    async def before_send() -> None:
        seen.append(gate.in_flight)
        release.set()

    async def refuse() -> None:
        raise SendRefused("revoked")

    async with anyio.create_task_group() as tg:
        tg.start_soon(hold)
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(1):
            async with gate.slot("call", deadline=None, before_send=before_send):
                assert gate.in_flight == 1
    # It ran while the only place was still held by another request.
    assert seen == [1]
    with pytest.raises(SendRefused):
        async with gate.slot("call", deadline=None, before_send=refuse):
            pytest.fail("must not be let through")
    assert gate.in_flight == 0


# -- Dispatcher over a scripted transport --------------------------------------------------------

Answer = httpx.Response | Exception


class ScriptedEngage(httpx.AsyncBaseTransport):
    """Answers requests from a script of (method, path-prefix) → answer, recording each one."""

    def __init__(self, script: list[tuple[str, str, Answer]]) -> None:
        self.script = list(script)
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        if not self.script:
            pytest.fail(f"unexpected request {request.method} {request.url}")
        method, prefix, answer = self.script.pop(0)
        assert (request.method, request.url.path[: len(prefix)]) == (method, prefix)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def calls(self) -> list[tuple[str, str]]:
        return [(r.method, r.url.path) for r in self.sent]


def json_answer(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Answer:
    content = orjson.dumps(body) if body is not None else b""
    return httpx.Response(status, content=content, headers=headers)


def accepted_job(job_id: str = "j1") -> Answer:
    return json_answer(202, {"jobId": job_id}, {"Location": f"/api/v3/orders/jobs/{job_id}"})


def make_dispatcher(transport: ScriptedEngage, **settings: Any) -> Dispatcher:
    gate = CallGate(max_in_flight=4, max_polls_in_flight=2, budget=open_budget())
    client = EngageClient(
        EngageClientSettings(base_url=BASE, api_key=Secret(KEY), user_agent="unit/1"),
        gate=gate,
        transport=transport,
    )
    defaults: dict[str, Any] = {"retry": RetryPolicy(base=0.01, cap=0.02, max_attempts=4)}
    return Dispatcher(client, gate, DispatchSettings(**{**defaults, **settings}))


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


async def run_action(dispatcher: Dispatcher) -> DispatchResult:
    try:
        return await dispatcher.action(
            "o-1", action="ConfirmOrder", version_tag="t1", deadline=soon()
        )
    finally:
        await dispatcher.client.aclose()


async def test_ambiguous_action_is_unknown_and_not_resent() -> None:
    """A read timeout after sending an action ends in `unknown` with exactly one request."""
    transport = ScriptedEngage([("POST", "/api/v3/orders/o-1/action", httpx.ReadTimeout("slow"))])
    result = await run_action(make_dispatcher(transport))
    assert (result.status, result.reason, result.attempts) == ("unknown", "ambiguous", 1)
    assert len(transport.sent) == 1


async def test_ambiguous_action_retried_once_when_allowed() -> None:
    """With retry_ambiguous_actions, a dropped action is sent exactly once more."""
    transport = ScriptedEngage(
        [
            ("POST", "/api/v3/orders/o-1/action", httpx.RemoteProtocolError("dropped")),
            ("POST", "/api/v3/orders/o-1/action", httpx.ReadError("dropped again")),
        ]
    )
    result = await run_action(make_dispatcher(transport, retry_ambiguous_actions=True))
    assert (result.status, result.attempts, len(transport.sent)) == ("unknown", 2, 2)


async def test_gateway_timeout_on_an_action_is_ambiguous() -> None:
    """A 504 may hide an action Engage ran: `unknown`, not retried."""
    transport = ScriptedEngage([("POST", "/api/v3/orders/o-1/action", json_answer(504))])
    result = await run_action(make_dispatcher(transport))
    assert (result.status, result.http_status, len(transport.sent)) == ("unknown", 504, 1)


async def test_action_retried_when_nothing_reached_engage() -> None:
    """A refused connection and a 503 are retried; the third try is accepted."""
    transport = ScriptedEngage(
        [
            ("POST", "/api/v3/orders/o-1/action", httpx.ConnectError("refused")),
            ("POST", "/api/v3/orders/o-1/action", json_answer(503)),
            ("POST", "/api/v3/orders/o-1/action", json_answer(202)),
        ]
    )
    result = await run_action(make_dispatcher(transport))
    assert result == DispatchResult(
        operation="action",
        status="accepted",
        http_status=202,
        version_tag="t1",
        attempts=3,
        engage_ms=result.engage_ms,
        requests=3,
    )


def key_holding_dispatcher(transport: ScriptedEngage, credentials: CredentialsGate) -> Dispatcher:
    clock = credentials.deadline_clock
    gate = CallGate(
        max_in_flight=4, max_polls_in_flight=2, budget=open_budget(), credentials=credentials
    )
    client = EngageClient(
        EngageClientSettings(base_url=BASE, api_key=Secret(KEY), user_agent="unit/1"),
        gate=gate,
        transport=transport,
        clock=clock,
    )
    policy = RetryPolicy(base=0.01, cap=0.02, max_attempts=1)
    return Dispatcher(client, gate, DispatchSettings(retry=policy), clock=clock)


async def test_a_refused_key_holds_the_action_and_sends_it_once_the_key_works() -> None:
    """401, 403, then accepted: no outcome for the refusals, no attempt spent on them (the policy
    allows one), and the gate was locked in between."""
    transport = ScriptedEngage(
        [
            ("POST", "/api/v3/orders/o-1/action", json_answer(401, {"message": "bad key"})),
            ("POST", "/api/v3/orders/o-1/action", json_answer(403)),
            ("POST", "/api/v3/orders/o-1/action", json_answer(202)),
        ]
    )
    changes: list[int | None] = []
    credentials = CredentialsGate(
        CredentialsSettings(first_probe=0.01, max_probe_gap=0.02), on_change=changes.append
    )
    dispatcher = key_holding_dispatcher(transport, credentials)
    with anyio.fail_after(5):
        result = await dispatcher.action(
            "o-1",
            action="ConfirmOrder",
            version_tag="t1",
            deadline=credentials.deadline_clock() + 5,
        )
    await dispatcher.client.aclose()
    assert (result.status, result.requests) == ("accepted", 3)
    assert changes == [401, None]
    assert credentials.refusals == 2


async def test_a_refused_key_on_a_job_poll_is_not_the_jobs_failure() -> None:
    """A poll answered 401 polls again once the key works: the write is accepted."""
    transport = ScriptedEngage(
        [
            ("POST", "/api/v3/orders", accepted_job()),
            ("GET", "/api/v3/orders/jobs/j1", json_answer(401)),
            ("GET", "/api/v3/orders/jobs/j1", json_answer(302, headers={"Location": "/x"})),
            ("GET", "/api/v3/orders/o-1", json_answer(200, {"versionTag": "v2"})),
        ]
    )
    credentials = CredentialsGate(CredentialsSettings(first_probe=0.01, max_probe_gap=0.02))
    dispatcher = key_holding_dispatcher(transport, credentials)
    with anyio.fail_after(5):
        result = await dispatcher.write(
            "o-1", {"orderId": "o-1"}, exists=False, deadline=credentials.deadline_clock() + 5
        )
    await dispatcher.client.aclose()
    assert (result.status, result.version_tag) == ("accepted", "v2")
    assert not credentials.refused


async def test_stale_tag_action_is_rejected_with_its_meaning() -> None:
    """A 404 on an action is `rejected` as stale tag or unknown order, and not retried."""
    transport = ScriptedEngage(
        [("POST", "/api/v3/orders/o-1/action", json_answer(404, {"message": "tag mismatch"}))]
    )
    result = await run_action(make_dispatcher(transport))
    assert (result.status, result.reason, result.http_status) == (
        "rejected",
        "stale_tag_or_unknown_order",
        404,
    )
    assert "tag mismatch" in (result.detail or "")


async def test_every_request_carries_the_required_headers() -> None:
    """apikey, User-Agent and Content-Type go on every request, and the action body is exact."""
    transport = ScriptedEngage([("POST", "/api/v3/orders/o-1/action", json_answer(202))])
    await run_action(make_dispatcher(transport))
    request = transport.sent[0]
    assert (
        request.headers["apikey"],
        request.headers["user-agent"],
        request.headers["content-type"],
    ) == (KEY, "unit/1", "application/json")
    assert orjson.loads(request.content) == {"action": "ConfirmOrder", "versionTag": "t1"}


async def test_client_repr_hides_the_api_key() -> None:
    """Neither the client nor its settings show the key in a repr."""
    transport = ScriptedEngage([])
    dispatcher = make_dispatcher(transport)
    await dispatcher.client.aclose()
    assert KEY not in repr(dispatcher.client)
    assert KEY not in repr(EngageClientSettings(base_url=BASE, api_key=Secret(KEY), user_agent="u"))


async def test_ambiguous_post_is_checked_with_a_get_before_writing_again() -> None:
    """After a POST times out, the order is read first; found, it is replaced with PUT."""
    transport = ScriptedEngage(
        [
            ("POST", "/api/v3/orders", httpx.ReadTimeout("slow")),
            ("GET", "/api/v3/orders/o-1", json_answer(200, {"orderId": "o-1", "versionTag": "a"})),
            ("PUT", "/api/v3/orders/o-1", accepted_job("j2")),
            ("GET", "/api/v3/orders/jobs/j2", json_answer(302, headers={"Location": "/x"})),
            ("GET", "/api/v3/orders/o-1", json_answer(200, {"orderId": "o-1", "versionTag": "b"})),
        ]
    )
    dispatcher = make_dispatcher(transport)
    try:
        result = await dispatcher.write("o-1", {"orderId": "o-1"}, exists=None, deadline=soon())
    finally:
        await dispatcher.client.aclose()
    assert (result.status, result.version_tag, result.attempts, result.requests) == (
        "accepted",
        "b",
        2,
        5,
    )


async def test_job_link_to_another_host_is_polled_on_our_own_engage() -> None:
    """A Location on a foreign host is not followed there: the key stays with our base URL."""
    transport = ScriptedEngage(
        [
            (
                "PUT",
                "/api/v3/orders/o-1",
                json_answer(202, headers={"Location": "https://evil.test/api/v3/orders/jobs/j9"}),
            ),
            ("GET", "/api/v3/orders/jobs/j9", json_answer(302)),
            ("GET", "/api/v3/orders/o-1", json_answer(200, {"versionTag": "v"})),
        ]
    )
    dispatcher = make_dispatcher(transport)
    try:
        result = await dispatcher.write("o-1", {"orderId": "o-1"}, exists=True, deadline=soon())
    finally:
        await dispatcher.client.aclose()
    assert result.status == "accepted"
    assert {r.url.host for r in transport.sent} == {"engage.test"}


async def test_job_failing_with_500_and_a_failed_body_is_a_failed_write() -> None:
    """A poll answering 500 with status Failed is the job's failure, reported with its reason."""
    transport = ScriptedEngage(
        [
            ("PUT", "/api/v3/orders/o-1", accepted_job()),
            ("GET", "/api/v3/orders/jobs/j1", json_answer(202, {"status": "Processing"})),
            (
                "GET",
                "/api/v3/orders/jobs/j1",
                json_answer(500, {"status": "Failed", "message": "boom"}),
            ),
        ]
    )
    dispatcher = make_dispatcher(transport)
    try:
        result = await dispatcher.write("o-1", {"orderId": "o-1"}, exists=True, deadline=soon())
    finally:
        await dispatcher.client.aclose()
    assert (result.status, result.reason, result.http_status, result.detail) == (
        "failed",
        "job_failed",
        500,
        "boom",
    )


async def test_past_deadline_fails_without_sending() -> None:
    """An operation whose deadline has already passed fails with reason deadline, sends nothing."""
    transport = ScriptedEngage([])
    dispatcher = make_dispatcher(transport)
    try:
        result = await dispatcher.read_tag("o-1", deadline=time.monotonic() - 1)
    finally:
        await dispatcher.client.aclose()
    assert (result.status, result.reason, result.requests) == ("failed", "deadline", 0)


async def test_the_poll_schedule_learns_only_from_jobs_polled_without_trouble() -> None:
    """A job whose poll met a 503 teaches nothing about job times; a clean one does."""

    def job_polled(job: str, *trouble: Answer) -> list[tuple[str, str, Answer]]:
        return [
            ("PUT", "/api/v3/orders/o-1", accepted_job(job)),
            *[("GET", f"/api/v3/orders/jobs/{job}", answer) for answer in trouble],
            ("GET", f"/api/v3/orders/jobs/{job}", json_answer(302)),
        ]

    troubled = [*job_polled("j1", json_answer(503)), *job_polled("j2", json_answer(429))]
    transport = ScriptedEngage([*troubled, *job_polled("j3")])
    dispatcher = make_dispatcher(transport)
    schedule = dispatcher.client.poll_schedule
    first = schedule.typical
    try:
        for _ in range(2):
            result = await dispatcher.write(
                "o-1", {"orderId": "o-1"}, exists=True, deadline=soon(), tag_wanted=lambda: False
            )
            assert result.status == "accepted"
            assert schedule.typical == first
        await dispatcher.write(
            "o-1", {"orderId": "o-1"}, exists=True, deadline=soon(), tag_wanted=lambda: False
        )
    finally:
        await dispatcher.client.aclose()
    assert transport.script == []
    # Done at its first poll: remembered as half that gap.
    assert schedule.typical < first


async def test_job_unknown_to_engage_is_lost_not_failed() -> None:
    """A poll answering 404 means Engage forgot the job: failed, but the tag is in doubt."""
    transport = ScriptedEngage(
        [
            ("PUT", "/api/v3/orders/o-1", accepted_job()),
            ("GET", "/api/v3/orders/jobs/j1", json_answer(404, {"message": "job unknown"})),
        ]
    )
    dispatcher = make_dispatcher(transport)
    try:
        result = await dispatcher.write("o-1", {"orderId": "o-1"}, exists=True, deadline=soon())
    finally:
        await dispatcher.client.aclose()
    assert (result.status, result.reason, result.tag_uncertain) == ("failed", "job_lost", True)
