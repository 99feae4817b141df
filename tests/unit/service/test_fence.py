"""The fence on a fake clock: who may send, what a lapsed lease holds back, what a revoke ends."""

from __future__ import annotations

import anyio
import pytest

from consumer.errors import SendRefused
from consumer.service.fence import Fence

TP0 = ("orders", 0)
TP1 = ("orders", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def fence_with(*tps: tuple[str, int]) -> tuple[Fence, Clock]:
    clock = Clock()
    fence = Fence(session_timeout=10.0, margin=2.0, clock=clock)
    fence.grant(tps)
    return fence, clock


def test_an_owned_partition_may_send_until_the_lease_runs_out() -> None:
    """Granted at 100 s: the lease holds for the session less the margin, 8 s."""
    fence, clock = fence_with(TP0)
    guard = fence.guard(TP0)
    assert (guard.ready(finishing=False), fence.guard(TP1).ready(finishing=False)) == (True, False)
    clock.now = 107.9
    assert guard.ready(finishing=False)
    clock.now = 108.0
    assert (guard.ready(finishing=True), fence.lease_valid()) == (False, False)


def test_a_heartbeat_renews_from_when_it_was_sent() -> None:
    """A heartbeat sent at 105 and answered later renews the lease to 113, not past it."""
    fence, clock = fence_with(TP0)
    clock.now = 107.0
    fence.renew(105.0)
    clock.now = 112.9
    assert fence.lease_valid()
    fence.renew(104.0)  # an older answer arriving late shortens nothing
    clock.now = 113.0
    assert not fence.lease_valid()


async def test_a_request_waits_out_a_lapsed_lease_and_goes_when_it_is_renewed() -> None:
    """Cut off from the coordinator: requests wait; the next answered heartbeat lets them go."""
    fence, clock = fence_with(TP0)
    clock.now = 200.0
    went: list[float] = []

    async def request() -> None:
        await fence.guard(TP0).wait(finishing=True)
        went.append(clock.now)

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            await anyio.sleep(0.05)
            assert went == []
            fence.renew(200.0)
    assert went == [200.0]


async def test_a_revoke_refuses_waiting_and_later_requests() -> None:
    """A revoke ends the wait of a held request with SendRefused, and every later one."""
    fence, clock = fence_with(TP0, TP1)
    clock.now = 200.0
    refused: list[str] = []

    async def request() -> None:
        try:
            await fence.guard(TP0).wait(finishing=True)
        except SendRefused as exc:
            refused.append(str(exc))

    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            tg.start_soon(request)
            await anyio.sleep(0.05)
            fence.revoke([TP0])
    assert refused == ["partition orders-0 is no longer this member's"]
    with pytest.raises(SendRefused):
        await fence.guard(TP0).wait(finishing=True)
    assert fence.owns(TP1)


async def test_a_revoke_wakes_a_write_asleep_between_polls() -> None:
    """The event of a revoked partition is set; a granted one gets a fresh one."""
    fence, _clock = fence_with(TP0)
    lost = fence.lost(TP0)
    assert lost is not None
    assert not lost.is_set()
    fence.revoke([TP0])
    assert lost.is_set()
    assert fence.lost(TP0) is None
    fence.grant([TP0])
    again = fence.lost(TP0)
    assert again is not None
    assert not again.is_set()


def test_a_margin_as_long_as_the_session_is_refused() -> None:
    """A lease of no length would hold every request forever."""
    with pytest.raises(ValueError, match="margin"):
        Fence(session_timeout=5.0, margin=5.0)


async def test_a_closing_partition_finishes_work_but_starts_none() -> None:
    """While a revocation waits, polls and actions go; a new write is refused at once."""
    fence, _clock = fence_with(TP0)
    guard = fence.guard(TP0)
    closed = guard.lost(finishing=False)
    assert closed is not None
    fence.close([TP0])
    assert closed.is_set()
    assert (guard.ready(finishing=True), guard.ready(finishing=False)) == (True, False)
    await guard.wait(finishing=True)
    with pytest.raises(SendRefused, match="being revoked"):
        await guard.wait(finishing=False)
    fence.revoke([TP0])
    assert guard.ready(finishing=True) is False
    with pytest.raises(SendRefused, match="no longer"):
        await guard.wait(finishing=True)


def test_a_partition_granted_again_is_open_again() -> None:
    """Closed, then re-assigned to this member in the next generation: new work goes."""
    fence, _clock = fence_with(TP0)
    fence.close([TP0])
    fence.revoke([TP0])
    fence.grant([TP0])
    assert fence.guard(TP0).ready(finishing=False)
