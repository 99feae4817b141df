"""An action riding in a write, through ``Dispatcher.write`` over real HTTP to the simulator.

What the result says of the rider (``DispatchResult.rider``) is checked against what the
simulator received and ran: the action once, on the write it came with, or not at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import pytest

from consumer.sandbox.engage import Delay, Faults, SimulatorSettings
from tests.integration.engage_calls import actions, deadline, dispatcher_for, order

if TYPE_CHECKING:
    from consumer.sandbox.engage import EngageSimulator
    from tests.fixtures.engage import EngageSimFactory

pytestmark = pytest.mark.engage

WRITE_ROUTES = ("POST /api/v3/orders", "PUT /api/v3/orders/{orderId}")


async def writes_sent(sim: EngageSimulator) -> int:
    requests = (await sim.stats())["requests"]
    return sum(sum(requests.get(route, {}).values()) for route in WRITE_ROUTES)


async def test_the_rider_runs_with_its_write_and_no_tag_is_read(
    engage_sim: EngageSimulator,
) -> None:
    intents: list[str] = []

    async def record_intent() -> None:
        intents.append("o-1")

    async with dispatcher_for(engage_sim) as dispatcher:
        result = await dispatcher.write(
            "o-1",
            order("o-1"),
            exists=None,
            deadline=deadline(),
            tag_wanted=lambda: False,
            embedded={"action": "ConfirmOrder", "language": "sv-SE"},
            before_send=record_intent,
        )
    assert result.status == "accepted"
    assert result.rider is not None
    assert (result.rider.status, result.rider.reason) == ("accepted", None)
    assert intents == ["o-1"]  # once, before the one request that carried it
    (action,) = actions(await engage_sim.journal())
    assert (action["action"], action["embedded"]) == ("ConfirmOrder", True)
    assert action["versionTag"] == engage_sim.state.version_tag("o-1")
    assert await writes_sent(engage_sim) == 1


async def test_a_write_refused_for_its_action_is_stored_without_it(
    engage_sim: EngageSimulator,
) -> None:
    """A malformed rider (it carries a versionTag): 400, then the order alone; action rejected."""
    async with dispatcher_for(engage_sim) as dispatcher:
        result = await dispatcher.write(
            "o-2",
            order("o-2"),
            exists=None,
            deadline=deadline(),
            embedded={"action": "ConfirmOrder", "versionTag": "x"},
        )
    assert result.status == "accepted"
    assert result.rider is not None
    assert (result.rider.status, result.rider.reason) == ("rejected", "bad_action")
    assert "answered 400" in (result.rider.detail or "")
    assert actions(await engage_sim.journal()) == []
    assert await writes_sent(engage_sim) == 2


async def test_a_rider_whose_write_went_unanswered_is_unknown_and_never_sent_again(
    engage_sim_factory: EngageSimFactory,
) -> None:
    """The first write is processed but its answer lost: the retries go without the action."""
    sim = await engage_sim_factory(SimulatorSettings(job_delay=Delay.fixed(0.05)))
    await sim.set_faults(Faults(drop_rate=1.0, drop_when="after"))

    async def heal_after_first_write() -> None:
        with anyio.fail_after(10):
            while await writes_sent(sim) == 0:
                await anyio.sleep(0.01)
        await sim.set_faults(Faults())

    async with dispatcher_for(sim) as dispatcher, anyio.create_task_group() as tg:
        tg.start_soon(heal_after_first_write)
        result = await dispatcher.write(
            "o-3",
            order("o-3"),
            exists=None,
            deadline=deadline(15),
            embedded={"action": "ConfirmOrder"},
        )
    assert result.status == "accepted"
    assert result.rider is not None
    assert (result.rider.status, result.rider.reason) == ("unknown", "ambiguous")
    with anyio.fail_after(5):
        while not actions(await sim.journal()):
            await anyio.sleep(0.05)  # the first write's job ran the action it carried
    assert len(actions(await sim.journal())) == 1
    assert await writes_sent(sim) >= 2
