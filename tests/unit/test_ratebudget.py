"""RateBudget: token bucket arithmetic, AIMD on 429, Retry-After blocking, a member's share."""

from __future__ import annotations

import math

import anyio
import pytest

from consumer.ratebudget import RateBudget, RateBudgetSettings


class FakeClock:
    """A clock that moves only when told to, or when a fake sleep sleeps."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_budget(clock: FakeClock, **overrides: float) -> RateBudget:
    settings = RateBudgetSettings(**{"ceiling": 50.0, "burst": 10.0, "floor": 1.0, **overrides})
    return RateBudget(settings, clock=clock, sleep=clock.sleep)


def take_all(budget: RateBudget) -> int:
    """Take tokens until the bucket says wait; return how many were taken."""
    taken = 0
    while budget.try_acquire_nowait() == 0:
        taken += 1
    return taken


def test_starts_with_a_full_burst_then_paces_at_the_rate() -> None:
    """A new budget lets `burst` requests through at once, then one per 1/rate seconds."""
    clock = FakeClock()
    budget = make_budget(clock)
    assert take_all(budget) == 10
    assert budget.try_acquire_nowait() == pytest.approx(1 / 50)


def test_refills_at_the_ceiling_rate_up_to_the_burst() -> None:
    """Tokens come back at `ceiling` per second and never pile up beyond `burst`."""
    clock = FakeClock()
    budget = make_budget(clock)
    take_all(budget)
    clock.advance(0.1)
    assert take_all(budget) == 5
    clock.advance(60)
    assert take_all(budget) == 10


def test_429_halves_the_rate_and_empties_the_bucket() -> None:
    """A 429 multiplies the rate by the decrease factor and leaves no token to burst with."""
    clock = FakeClock()
    budget = make_budget(clock)
    budget.throttled(None)
    assert budget.rate == 25.0
    assert budget.try_acquire_nowait() == pytest.approx(1 / 25)
    assert budget.throttle_count == 1


def test_rate_never_drops_below_the_floor() -> None:
    """However many 429s arrive, the rate stays at or above the floor."""
    clock = FakeClock()
    budget = make_budget(clock, floor=4.0, increase_per_second=0.0)
    for _ in range(20):
        budget.throttled(None)
        clock.advance(1.0)
    assert budget.rate == 4.0


def test_429s_inside_the_cooldown_count_as_one_signal() -> None:
    """A burst of 429s for requests already in flight halves the rate once, not once each."""
    clock = FakeClock()
    budget = make_budget(clock, increase_per_second=0.0, decrease_cooldown=1.0)
    for _ in range(10):
        budget.throttled(None)
        clock.advance(0.05)
    assert budget.rate == 25.0
    clock.advance(1.0)
    budget.throttled(None)
    assert budget.rate == 12.5


def test_rate_grows_back_additively_up_to_the_ceiling() -> None:
    """Without 429s the rate climbs by `increase_per_second` a second, stopping at the ceiling."""
    clock = FakeClock()
    budget = make_budget(clock, increase_per_second=1.0)
    budget.throttled(None)
    clock.advance(5.0)
    assert budget.rate == pytest.approx(30.0)
    clock.advance(100.0)
    assert budget.rate == 50.0


def test_tokens_follow_the_rising_rate() -> None:
    """While the rate rises linearly, the tokens gained are its integral (rate·t + slope·t²/2)."""
    clock = FakeClock()
    budget = make_budget(clock, burst=1000.0, increase_per_second=2.0)
    budget.throttled(None)  # rate 25, bucket empty
    clock.advance(3.0)
    # 25·3 + 2·9/2 = 84 tokens
    assert take_all(budget) == 84
    assert budget.rate == pytest.approx(31.0)


def test_tokens_integral_stops_rising_at_the_ceiling() -> None:
    """Past the moment the rate meets the ceiling, tokens come at the ceiling rate."""
    clock = FakeClock()
    budget = make_budget(clock, ceiling=10.0, burst=1000.0, increase_per_second=5.0)
    budget.throttled(None)  # rate 5, reaches 10 after 1 s
    clock.advance(3.0)
    # 5·1 + 5·1/2 = 7.5 while rising, then 10·2 = 20: 27.5 tokens
    assert take_all(budget) == 27


def test_retry_after_blocks_every_send_until_it_has_passed() -> None:
    """With Retry-After, no token is handed out until then, and the wait says how long."""
    clock = FakeClock()
    budget = make_budget(clock)
    budget.throttled(2.0)
    assert budget.try_acquire_nowait() == pytest.approx(2.0)
    assert budget.blocked_for() == pytest.approx(2.0)
    clock.advance(1.5)
    assert budget.try_acquire_nowait() == pytest.approx(0.5)
    clock.advance(0.5)
    assert budget.blocked_for() == 0.0
    # The bucket starts empty at the end of the block: one token per 1/rate.
    assert budget.try_acquire_nowait() == pytest.approx(1 / 25)


def test_rate_does_not_grow_while_blocked() -> None:
    """The additive increase starts when the Retry-After block ends, not when the 429 came."""
    clock = FakeClock()
    budget = make_budget(clock, increase_per_second=1.0)
    budget.throttled(10.0)
    clock.advance(10.0)
    assert budget.rate == 25.0
    clock.advance(2.0)
    assert budget.rate == pytest.approx(27.0)


def test_a_shorter_retry_after_does_not_shorten_a_block() -> None:
    """A later 429 with a smaller Retry-After keeps the longer block already in force."""
    clock = FakeClock()
    budget = make_budget(clock)
    budget.throttled(5.0)
    budget.throttled(1.0)
    assert budget.blocked_for() == pytest.approx(5.0)


async def test_acquire_paces_requests_at_the_rate() -> None:
    """Awaiting acquire 60 times at 50/s with a burst of 10 takes one second of clock time."""
    clock = FakeClock()
    budget = make_budget(clock)
    start = clock.now
    for _ in range(60):
        await budget.acquire()
    assert clock.now - start == pytest.approx(1.0)


async def test_acquire_waits_out_a_retry_after() -> None:
    """An acquire during a Retry-After block returns only after the block (plus one token)."""
    clock = FakeClock()
    budget = make_budget(clock)
    budget.throttled(3.0)
    start = clock.now
    await budget.acquire()
    assert clock.now - start == pytest.approx(3.0 + 1 / 25)


async def test_a_free_token_is_not_taken_past_a_queued_waiter() -> None:
    """take_nowait takes a token only when nobody queues: a refill goes to the waiter first."""
    clock = FakeClock()
    woken = anyio.Event()

    async def sleep(seconds: float) -> None:
        clock.slept.append(seconds)
        await woken.wait()

    budget = RateBudget(
        RateBudgetSettings(ceiling=20.0, burst=2.0, floor=1.0), clock=clock, sleep=sleep
    )
    assert budget.take_nowait()
    assert budget.take_nowait()
    assert not budget.take_nowait()  # empty
    order: list[str] = []

    async def waiter() -> None:
        await budget.acquire()
        order.append("waiter")

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        clock.advance(0.1)  # two tokens' worth of refill while the waiter still sleeps
        assert not budget.take_nowait()
        woken.set()
    assert order == ["waiter"]
    assert budget.take_nowait()  # the second token, now that nobody queues


def test_settings_refuse_nonsense() -> None:
    """A floor above the ceiling, a zero burst or a factor outside (0, 1) is refused."""
    with pytest.raises(ValueError, match="floor"):
        RateBudgetSettings(ceiling=1.0, floor=2.0)
    with pytest.raises(ValueError, match="burst"):
        RateBudgetSettings(burst=0.5)
    with pytest.raises(ValueError, match="decrease_factor"):
        RateBudgetSettings(decrease_factor=1.0)


def test_a_share_scales_the_ceiling_and_the_burst() -> None:
    """A member with a third of the partitions spends a third of the key's budget, burst too."""
    clock = FakeClock()
    budget = make_budget(clock, ceiling=60.0, burst=12.0)
    budget.set_share(1 / 3)
    assert [budget.ceiling, budget.rate, budget.share] == pytest.approx([20.0, 20.0, 1 / 3])
    assert take_all(budget) == 4
    clock.advance(1.0)
    assert take_all(budget) == 4, "refills at 20/s, but holds no more than its burst"
    taken = 0
    for _ in range(100):
        clock.advance(0.01)
        taken += take_all(budget)
    assert taken == 20


def test_shares_that_add_up_to_one_spend_the_key_budget_together() -> None:
    """Three members with 2, 2 and 2 of 6 partitions: each second, 60 in all, never more."""
    clock = FakeClock()
    members = [make_budget(clock, ceiling=60.0, burst=12.0) for _ in range(3)]
    for member in members:
        member.set_share(2 / 6)
        take_all(member)
    per_second = []
    for _ in range(5):
        spent = 0
        for _ in range(100):
            clock.advance(0.01)
            spent += sum(take_all(member) for member in members)
        per_second.append(spent)
    assert per_second == [60] * 5


def test_a_member_without_partitions_spends_nothing() -> None:
    """Share 0: no token, however long it waits; a share again: tokens again."""
    clock = FakeClock()
    budget = make_budget(clock)
    budget.set_share(0.0)
    assert budget.try_acquire_nowait() > 0
    clock.advance(3600)
    assert take_all(budget) == 0
    budget.set_share(0.5)
    clock.advance(1.0)
    assert take_all(budget) == 5


def test_a_share_keeps_the_aimd_level() -> None:
    """Halved by a 429, then given half the partitions: half of half the new ceiling."""
    clock = FakeClock()
    budget = make_budget(clock, ceiling=40.0, increase_per_second=0.0)
    budget.throttled(None)
    assert budget.rate == pytest.approx(20.0)
    budget.set_share(0.5)
    assert [budget.ceiling, budget.rate] == pytest.approx([20.0, 10.0])


def test_a_share_outside_zero_to_one_is_refused() -> None:
    """No member may spend more than the key's budget, nor less than nothing."""
    budget = make_budget(FakeClock())
    for share in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="share"):
            budget.set_share(share)


def test_saturation_is_spent_over_allowed_in_the_last_seconds() -> None:
    """Spending the whole rate for 30 s is saturation 1; half of it, 0.5; idle, 0."""
    clock = FakeClock()
    budget = make_budget(clock, ceiling=10.0, burst=1.0, increase_per_second=0.0)
    assert budget.saturation() == 0.0
    for _ in range(300):
        clock.advance(0.1)
        take_all(budget)
    assert budget.saturation() == pytest.approx(1.0, abs=0.05)
    for _ in range(150):
        clock.advance(0.2)
        assert budget.try_acquire_nowait() == 0
    assert budget.saturation() == pytest.approx(0.5, abs=0.05)
    clock.advance(31)
    assert budget.saturation() == 0.0
    assert budget.spent == 300 + 150


async def test_finishing_requests_get_the_next_tokens_before_new_writes() -> None:
    """Two new writes queue, then a poll: the poll gets the next token, then the writes in
    the order they came."""
    budget = RateBudget(RateBudgetSettings(ceiling=20.0, burst=1.0))
    assert budget.take_nowait()
    order: list[str] = []

    async def request(name: str, *, finishing: bool) -> None:
        await budget.acquire(finishing=finishing)
        order.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: request("write-1", finishing=False))
            await anyio.sleep(0.001)
            tg.start_soon(lambda: request("write-2", finishing=False))
            await anyio.sleep(0.001)
            tg.start_soon(lambda: request("poll", finishing=True))
    # write-1 already held the turn, sleeping for its token, when the poll came.
    assert order == ["write-1", "poll", "write-2"]


async def test_a_waiter_cancelled_in_the_queue_stalls_nobody() -> None:
    """Requests queue for tokens; the one in the middle is cancelled (its call gave up): the
    ones behind it still get theirs, in order."""
    budget = RateBudget(RateBudgetSettings(ceiling=50.0, burst=1.0))
    assert budget.take_nowait()
    got: list[str] = []
    victim = anyio.CancelScope()

    async def request(name: str, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            await budget.acquire()
            got.append(name)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for name in ("a", "victim", "b", "c"):
                tg.start_soon(request, name, victim if name == "victim" else None)
                await anyio.sleep(0.001)
            victim.cancel()
    assert got == ["a", "b", "c"]
