"""The Engage client and dispatcher over real HTTP against the project's Engage simulator.

Each test drives one behaviour of engage-api.md through ``Dispatcher`` (client, gate, rate
budget and retry policy together) and checks it twice: in the result the runner would see, and
in the simulator's journal and request counters, which say what Engage really received.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from consumer.ratebudget import RateBudgetSettings
from consumer.sandbox.engage import Delay, Faults, SimulatorSettings
from tests.fixtures.engage import FAST_SETTINGS
from tests.integration.engage_calls import actions, deadline, dispatcher_for, order

if TYPE_CHECKING:
    from consumer.sandbox.engage import EngageSimulator
    from consumer.service import Dispatcher
    from tests.fixtures.engage import EngageSimFactory

pytestmark = pytest.mark.engage

ACTION_ROUTE = "POST /api/v3/orders/{orderId}/action"


async def write(dispatcher: Dispatcher, order_id: str, **kwargs: Any) -> str:
    """Write an order that must be accepted; return its tag."""
    exists = kwargs.pop("exists", None)
    result = await dispatcher.write(
        order_id, order(order_id, **kwargs), exists=exists, deadline=deadline()
    )
    assert result.status == "accepted", result
    assert result.version_tag is not None
    return result.version_tag


async def test_write_polls_the_job_and_learns_the_new_tag(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """A create is accepted, its job polled to 302, and the tag read is the one Engage made."""
    sim = await engage_sim_factory(
        SimulatorSettings(job_delay=Delay.fixed(0.35), strict_content_type=True)
    )
    async with dispatcher_for(sim) as dispatcher:
        result = await dispatcher.write("o-1", order("o-1"), exists=None, deadline=deadline())
    journal = await sim.journal()
    processed = [e for e in journal if e["kind"] == "processed"]
    assert (result.status, result.http_status, result.attempts) == ("accepted", 202, 1)
    assert result.version_tag == sim.state.version_tag("o-1")
    assert [(e["operation"], e["versionTag"]) for e in processed] == [
        ("create", result.version_tag)
    ]
    # One POST, at least two polls (the job takes 350 ms, the first poll comes at 200 ms), one
    # GET; all counted, all timed.
    stats = (await sim.stats())["requests"]
    polls = sum(stats["GET /api/v3/orders/jobs/{jobId}"].values())
    assert polls >= 2
    assert result.requests == 1 + polls + 1 == (await sim.stats())["requestsTotal"]
    assert result.engage_ms > 0


async def test_a_tag_nobody_wants_is_not_read_and_the_gaps_go_through_wait(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """``tag_wanted`` False: POST and polls, no GET; each gap between polls is slept by ``wait``."""
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.fixed(0.35)))
    gaps: list[float] = []
    asked: list[bool] = []

    async def wait(seconds: float) -> None:
        gaps.append(seconds)
        await anyio.sleep(seconds)

    def tag_wanted() -> bool:
        asked.append(True)
        return False

    async with dispatcher_for(sim) as dispatcher:
        result = await dispatcher.write(
            "o-1", order("o-1"), exists=None, deadline=deadline(), wait=wait, tag_wanted=tag_wanted
        )
    assert (result.status, result.version_tag, asked) == ("accepted", None, [True])
    stats = (await sim.stats())["requests"]
    polls = sum(stats["GET /api/v3/orders/jobs/{jobId}"].values())
    assert "GET /api/v3/orders/{orderId}" not in stats
    assert len(gaps) == polls >= 2
    assert result.requests == 1 + polls


async def test_post_for_an_existing_order_switches_to_put(engage_sim: EngageSimulator) -> None:
    """Writing an order Engage already has: POST answers 409, the client replaces with PUT."""
    async with dispatcher_for(engage_sim) as dispatcher:
        first = await write(dispatcher, "o-1")
        second = await write(dispatcher, "o-1", exists=None)
    writes = [e for e in await engage_sim.journal() if e["kind"] == "write"]
    assert [e["method"] for e in writes] == ["POST", "PUT"]
    assert second != first
    assert second == engage_sim.state.version_tag("o-1")
    assert (await engage_sim.stats())["requests"]["POST /api/v3/orders"] == {"202": 1, "409": 1}


async def test_put_for_an_absent_order_switches_to_post(engage_sim: EngageSimulator) -> None:
    """Replacing an order Engage lacks: PUT answers 404, the client creates with POST."""
    async with dispatcher_for(engage_sim) as dispatcher:
        tag = await write(dispatcher, "o-1", exists=True)
    writes = [e for e in await engage_sim.journal() if e["kind"] == "write"]
    assert [(e["operation"], e["method"]) for e in writes] == [("create", "POST")]
    assert tag == engage_sim.state.version_tag("o-1")
    assert (await engage_sim.stats())["requests"]["PUT /api/v3/orders/{orderId}"] == {"404": 1}


async def test_failed_job_fails_the_write_with_its_reason(engage_sim: EngageSimulator) -> None:
    """A job that fails (422) makes the write `failed`/`job_failed` with Engage's message."""
    await engage_sim.fail_next_job("o-1", "unprocessable")
    async with dispatcher_for(engage_sim) as dispatcher:
        result = await dispatcher.write("o-1", order("o-1"), exists=None, deadline=deadline())
    assert (result.status, result.reason, result.http_status) == ("failed", "job_failed", 422)
    assert "unprocessable" in (result.detail or "")
    assert engage_sim.state.version_tag("o-1") is None


async def test_job_still_running_at_the_deadline_is_a_timeout_with_the_tag_in_doubt(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """A job slower than the job timeout ends `failed`/`job_timeout`, tag marked uncertain."""
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.fixed(3.0)))
    async with dispatcher_for(sim, job_timeout=0.3) as dispatcher:
        started = time.monotonic()
        result = await dispatcher.write("o-1", order("o-1"), exists=None, deadline=deadline())
        elapsed = time.monotonic() - started
    assert (result.status, result.reason, result.tag_uncertain) == ("failed", "job_timeout", True)
    assert 0.3 <= elapsed < 1.5


async def test_action_with_a_stale_tag_is_rejected_and_not_run(
    engage_sim: EngageSimulator,
) -> None:
    """An action carrying the tag of an older write: 404 → rejected, stale tag; nothing runs."""
    async with dispatcher_for(engage_sim) as dispatcher:
        old = await write(dispatcher, "o-1")
        await write(dispatcher, "o-1", exists=True)
        result = await dispatcher.action(
            "o-1", action="ConfirmOrder", version_tag=old, deadline=deadline()
        )
    assert (result.status, result.http_status, result.reason) == (
        "rejected",
        404,
        "stale_tag_or_unknown_order",
    )
    assert actions(await engage_sim.journal()) == []


async def test_action_on_an_order_without_contact_is_rejected_422(
    engage_sim: EngageSimulator,
) -> None:
    """An order with no contact: the action is `rejected` with 422 and Engage's reason."""
    async with dispatcher_for(engage_sim) as dispatcher:
        tag = await write(dispatcher, "o-1", contact=False)
        result = await dispatcher.action(
            "o-1", action="ConfirmOrder", version_tag=tag, deadline=deadline()
        )
    assert (result.status, result.http_status, result.reason, result.attempts) == (
        "rejected",
        422,
        "no_contact",
        1,
    )
    assert "no contact" in (result.detail or "")


async def test_action_with_the_current_tag_runs_once_with_the_exact_body(
    engage_sim: EngageSimulator,
) -> None:
    """An accepted action reaches Engage once, with its tag, language and data as sent."""
    async with dispatcher_for(engage_sim) as dispatcher:
        tag = await write(dispatcher, "o-1")
        result = await dispatcher.action(
            "o-1",
            action="ConfirmShipment",
            version_tag=tag,
            language="sv-SE",
            data={"parcelCount": 1},
            deadline=deadline(),
        )
    assert (result.status, result.http_status, result.attempts) == ("accepted", 202, 1)
    assert [
        (e["action"], e["versionTag"], e["language"], e["data"])
        for e in actions(await engage_sim.journal())
    ] == [("ConfirmShipment", tag, "sv-SE", {"parcelCount": 1})]


async def test_429_with_retry_after_shrinks_the_budget_and_succeeds_after_waiting(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """Over Engage's rate, a 429 halves the budget, blocks for Retry-After, then goes through."""
    sim = await engage_sim_factory(
        SimulatorSettings(
            api_keys=("reader-key", "writer-key"),
            job_delay=FAST_SETTINGS.job_delay,
            rate_limit=2.0,
            rate_burst=2,
            retry_after=1,
        )
    )
    # The order is written with another key: the limit, like Engage's, is per key.
    async with dispatcher_for(sim, api_key="writer-key") as writer:
        tag = await write(writer, "o-1")
        writer_throttled = writer.budget.throttle_count
    async with dispatcher_for(sim, api_key="reader-key") as reader:
        first = await reader.read_tag("o-1", deadline=deadline())
        second = await reader.read_tag("o-1", deadline=deadline())
        started = time.monotonic()
        third = await reader.read_tag("o-1", deadline=deadline())
        waited = time.monotonic() - started
        budget = reader.budget
        assert budget.throttle_count == 1
        assert budget.rate == pytest.approx(25.0, abs=1.5)  # halved, then +1/s while waiting
    assert [r.version_tag for r in (first, second, third)] == [tag, tag, tag]
    assert (first.attempts, second.attempts, third.attempts) == (1, 1, 2)
    assert waited >= 0.95
    # Every 429 Engage sent reached a budget: one for the reader, any for the writer's own burst.
    assert (await sim.stats())["rateLimited"] == 1 + writer_throttled


async def test_503_is_retried_until_engage_answers(engage_sim: EngageSimulator) -> None:
    """During a short outage answering 503, the action is retried and accepted once, after it."""
    async with dispatcher_for(engage_sim) as dispatcher:
        tag = await write(dispatcher, "o-1")
        await engage_sim.set_faults(Faults(outage_seconds=0.3, outage_mode="error"))
        result = await dispatcher.action(
            "o-1", action="ConfirmOrder", version_tag=tag, deadline=deadline()
        )
    assert (result.status, result.http_status) == ("accepted", 202)
    assert result.attempts >= 2
    routes = (await engage_sim.stats())["requests"]
    assert routes[ACTION_ROUTE]["202"] == 1
    assert routes[ACTION_ROUTE]["503"] == result.attempts - 1
    assert len(actions(await engage_sim.journal())) == 1


async def test_refused_connections_are_retried(engage_sim: EngageSimulator) -> None:
    """While Engage refuses connections nothing reached it, so reading is retried until it works."""
    async with dispatcher_for(engage_sim) as dispatcher:
        tag = await write(dispatcher, "o-1")
        await engage_sim.set_faults(Faults(outage_seconds=0.3, outage_mode="refuse"))
        result = await dispatcher.read_tag("o-1", deadline=deadline())
    assert (result.status, result.version_tag) == ("accepted", tag)
    assert result.attempts >= 2


async def test_dropped_connection_on_an_action_is_unknown_and_not_resent(
    engage_sim: EngageSimulator,
) -> None:
    """Engage runs the action but the answer is lost: `unknown`, and it is never sent again."""
    async with dispatcher_for(engage_sim) as dispatcher:
        tag = await write(dispatcher, "o-1")
        await engage_sim.set_faults(Faults(drop_rate=1.0, drop_when="after"))
        result = await dispatcher.action(
            "o-1", action="ConfirmOrder", version_tag=tag, deadline=deadline()
        )
    assert (result.status, result.reason, result.attempts) == ("unknown", "ambiguous", 1)
    assert len(actions(await engage_sim.journal())) == 1
    assert (await engage_sim.stats())["requests"][ACTION_ROUTE] == {"dropped": 1}


async def test_ambiguous_action_is_retried_exactly_once_when_the_setting_allows(
    engage_sim: EngageSimulator,
) -> None:
    """With retry_ambiguous_actions, a dropped action is sent once more, and only once."""
    async with dispatcher_for(engage_sim, retry_ambiguous_actions=True) as dispatcher:
        tag = await write(dispatcher, "o-1")
        await engage_sim.set_faults(Faults(drop_rate=1.0, drop_when="before"))
        result = await dispatcher.action(
            "o-1", action="ConfirmOrder", version_tag=tag, deadline=deadline()
        )
    assert (result.status, result.attempts) == ("unknown", 2)
    assert (await engage_sim.stats())["requests"][ACTION_ROUTE] == {"dropped": 2}
    assert actions(await engage_sim.journal()) == []


async def test_delete_of_an_absent_order_counts_as_done(engage_sim: EngageSimulator) -> None:
    """Deleting an order Engage does not have is accepted at once (404 means already gone)."""
    async with dispatcher_for(engage_sim) as dispatcher:
        await write(dispatcher, "o-1")
        deleted = await dispatcher.delete("o-1", deadline=deadline())
        again = await dispatcher.delete("o-1", deadline=deadline())
        read = await dispatcher.read_tag("o-1", deadline=deadline())
    assert (deleted.status, again.status, again.requests) == ("accepted", "accepted", 1)
    assert (read.status, read.reason) == ("rejected", "not_found")


async def test_budget_paces_a_burst_under_engages_limit(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """At a budget of 20/s, 30 reads take about a second and Engage never answers 429."""
    sim = await engage_sim_factory(SimulatorSettings(rate_limit=25.0, rate_burst=10))
    async with dispatcher_for(
        sim, budget=RateBudgetSettings(ceiling=20.0, burst=5.0, floor=1.0)
    ) as dispatcher:
        started = time.monotonic()
        for _ in range(30):
            await dispatcher.read_tag("absent", deadline=deadline())
        elapsed = time.monotonic() - started
    assert (await sim.stats())["rateLimited"] == 0
    assert 1.1 <= elapsed < 3.0  # (30 - 5 burst) / 20 per second = 1.25 s
