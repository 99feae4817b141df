"""The rate budget: how many requests per second one Engage API key may spend right now.

Engage limits requests per API key: stay under 50/s normally, and above 200/s it answers 429.
``RateBudget`` is a token bucket whose refill rate adapts the way TCP's congestion window does
(AIMD):

- every request takes one token; tokens refill at the current ``rate`` up to ``burst``;
- on a 429 the rate is multiplied by ``decrease_factor`` (not below ``floor``), the bucket is
  emptied, and a ``Retry-After`` blocks every send until it has passed;
- while no 429 arrives the rate grows back by ``increase_per_second`` each second, up to
  ``ceiling``.

A burst of requests already in flight when Engage starts refusing all come back 429 together;
halving once per answer would crash the rate to the floor for what is one signal. So after a
decrease, further 429s within ``decrease_cooldown`` only extend the Retry-After block.

The limit is per API key, and every replica of the service uses the same key: the settings
are the whole group's budget, and each member spends its ``share`` of it (``set_share``, its
part of the input partitions, recomputed at every assignment). Ceiling, burst, floor and the
additive growth all scale with the share, so the members' budgets add up to the key's and the
group together behaves like one process; a member without partitions spends nothing. AIMD runs
per member on top: each member halves its own rate on the 429s it sees.

The arithmetic (``try_acquire_nowait``, ``throttled``) is synchronous and reads an injected
clock, so unit tests drive it with a fake clock; ``acquire`` is the async face for real use.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


_EPSILON: Final = 1e-9
#: How far back ``saturation`` looks, in seconds.
SATURATION_WINDOW: Final = 30
#: The longest a waiter sleeps at once: a share that grows back (or a Retry-After that a newer,
#: shorter answer would end) is noticed this soon.
_MAX_NAP: Final = 0.5


@dataclass(frozen=True, kw_only=True, slots=True)
class RateBudgetSettings:
    """The shape of one API key's budget; the defaults follow Engage's documented limits."""

    ceiling: float = 50.0
    burst: float = 10.0
    floor: float = 1.0
    decrease_factor: float = 0.5
    increase_per_second: float = 1.0
    decrease_cooldown: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.floor <= self.ceiling:
            raise ValueError("need 0 < floor <= ceiling")
        if self.burst < 1:
            raise ValueError("burst must allow at least one request")
        if not 0 < self.decrease_factor < 1:
            raise ValueError("decrease_factor must be between 0 and 1")
        if self.increase_per_second < 0 or self.decrease_cooldown < 0:
            raise ValueError("increase_per_second and decrease_cooldown must not be negative")


class RateBudget:
    """A token bucket with an AIMD refill rate, for one API key."""

    def __init__(
        self,
        settings: RateBudgetSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.settings = settings or RateBudgetSettings()
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._share = 1.0
        self._ceiling = self.settings.ceiling
        self._burst = self.settings.burst
        self._floor = self.settings.floor
        self._slope = self.settings.increase_per_second
        self._rate = self._ceiling
        self._tokens = self._burst
        self._updated = now
        self._blocked_until = now
        self._last_decrease = now - self.settings.decrease_cooldown
        self._throttle_count = 0
        self._spent = 0
        #: (second, tokens taken in it) for the last SATURATION_WINDOW seconds
        self._spent_per_second: deque[list[int]] = deque()
        # Waiters queue here, so one sleeps for the next token at a time instead of every
        # waiter waking on every token. The turn never covers an HTTP call.
        self._waiters = _Turns()

    @property
    def rate(self) -> float:
        """The refill rate now, in requests per second (a metric)."""
        self._advance(self._clock())
        return self._rate

    @property
    def share(self) -> float:
        """This member's part of the key's budget, 0..1 (a metric)."""
        return self._share

    @property
    def ceiling(self) -> float:
        """This member's budget: its share of the key's, in requests per second (a metric)."""
        return self._ceiling

    @property
    def spent(self) -> int:
        """Tokens taken so far: requests this member sent or is about to send (a metric)."""
        return self._spent

    def set_share(self, share: float) -> None:
        """Spend ``share`` (0..1) of the key's budget from now on; AIMD keeps its place in it.

        The burst shrinks with the share (never below one request while the share is above
        zero), so the members' bursts add up to one process's.
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a share must be between 0 and 1, not {share}")
        now = self._clock()
        self._advance(now)
        settings = self.settings
        # Where AIMD stood between floor and ceiling, kept across the change of scale.
        level = self._rate / self._ceiling if self._ceiling > 0 else 1.0
        self._share = share
        self._ceiling = settings.ceiling * share
        self._burst = max(1.0, settings.burst * share) if share > 0 else 0.0
        self._floor = min(settings.floor, self._ceiling)
        self._slope = settings.increase_per_second * share
        self._rate = max(self._floor, min(self._ceiling, level * self._ceiling))
        self._tokens = min(self._tokens, self._burst)

    def saturation(self) -> float:
        """Requests spent over the last seconds as a part of what the budget allowed (0..1+).

        Near 1 the budget binds: more replicas would add no throughput, only split it.
        """
        now = self._clock()
        self._advance(now)
        second = int(now)
        spent = sum(n for s, n in self._spent_per_second if s > second - SATURATION_WINDOW)
        allowed = self._rate * SATURATION_WINDOW
        if allowed <= 0:
            return 1.0 if spent else 0.0
        return spent / allowed

    def _count_spent(self, now: float) -> None:
        self._spent += 1
        second = int(now)
        window = self._spent_per_second
        if window and window[-1][0] == second:
            window[-1][1] += 1
        else:
            window.append([second, 1])
            while window[0][0] <= second - SATURATION_WINDOW:
                window.popleft()

    @property
    def throttle_count(self) -> int:
        """How many 429 answers the budget has been told about (a metric)."""
        return self._throttle_count

    def blocked_for(self) -> float:
        """Seconds until sends may resume after a Retry-After; 0 when not blocked."""
        return max(self._blocked_until - self._clock(), 0.0)

    def _advance(self, now: float) -> None:
        """Bring rate and tokens up to ``now``; nothing refills or grows while blocked."""
        start = max(self._updated, self._blocked_until)
        self._updated = max(self._updated, now)
        if now <= start:
            return
        elapsed = now - start
        rate, ceiling, slope = self._rate, self._ceiling, self._slope
        # Tokens are the integral of a rate that rises linearly until it meets the ceiling.
        if slope > 0 and rate < ceiling:
            to_ceiling = (ceiling - rate) / slope
            rising = min(elapsed, to_ceiling)
            gained = rate * rising + slope * rising * rising / 2 + ceiling * (elapsed - rising)
            rate = min(rate + slope * elapsed, ceiling)
        else:
            gained = rate * elapsed
        self._rate = rate
        self._tokens = min(self._tokens + gained, self._burst)

    def try_acquire_nowait(self) -> float:
        """Take one token if there is one and return 0, else return the seconds to wait."""
        now = self._clock()
        self._advance(now)
        if now < self._blocked_until:
            return self._blocked_until - now
        # The epsilon absorbs float rounding: a wait of (1 - tokens) / rate computed from the
        # clock can land a hair short of a whole token, and a sleep of 1e-17 s never ends it.
        if self._tokens >= 1 - _EPSILON:
            self._tokens = max(self._tokens - 1, 0.0)
            self._count_spent(now)
            return 0.0
        if self._rate <= 0:
            return math.inf  # no share: nothing to spend until an assignment brings one
        return (1 - self._tokens) / self._rate

    def take_nowait(self) -> bool:
        """Take a token at once if one is there and nobody queues for one; else take nothing."""
        return not self._waiters.taken() and self.try_acquire_nowait() == 0.0

    async def acquire(self, *, finishing: bool = False) -> None:
        """Wait until one request may be sent, and take its token.

        ``finishing`` requests (a job poll, the GET of a tag an action waits for, the action
        itself) queue ahead of the others (new writes): when the budget binds, work already
        under way completes first, so an action follows its write by its own few requests and
        not by the whole queue's, and the throughput stays the same.
        """
        # Without the queue when a token is there: its checkpoints cost more CPU than the rest
        # of a request's bookkeeping together (py-spy, 1,500 actions/s).
        if self.take_nowait():
            return
        await self._waiters.take(urgent=finishing)
        try:
            while (wait := self.try_acquire_nowait()) > 0:
                await self._sleep(min(wait, _MAX_NAP))
        finally:
            self._waiters.give_back()

    def throttled(self, retry_after: float | None = None) -> None:
        """Engage answered 429: cut the rate, drain the bucket, block for ``retry_after``."""
        now = self._clock()
        self._advance(now)
        self._throttle_count += 1
        if retry_after is not None and retry_after > 0:
            self._blocked_until = max(self._blocked_until, now + retry_after)
            self._updated = max(self._updated, now)
        if now - self._last_decrease >= self.settings.decrease_cooldown:
            self._rate = max(self._rate * self.settings.decrease_factor, self._floor)
            self._last_decrease = now
        self._tokens = 0.0


class _Turns:
    """A lock with two queues: urgent waiters get the next turn before the others.

    Each queue is first come, first served; a turn is handed straight to the next waiter, so
    nobody who arrives later can slip in between.
    """

    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[anyio.Event] = deque()
        self._others: deque[anyio.Event] = deque()

    def taken(self) -> bool:
        """Whether someone holds the turn or waits for one."""
        return self._held or bool(self._urgent) or bool(self._others)

    async def take(self, *, urgent: bool) -> None:
        """Wait for the turn (ahead of the others when ``urgent``)."""
        if not self.taken():
            self._held = True
            return
        mine = anyio.Event()
        queue = self._urgent if urgent else self._others
        queue.append(mine)
        try:
            await mine.wait()
        except BaseException:
            if mine.is_set():
                self.give_back()  # handed the turn while being cancelled: pass it on
            else:
                queue.remove(mine)
            raise

    def give_back(self) -> None:
        """End the turn: hand it to the next waiter, urgent ones first."""
        queue = self._urgent or self._others
        if queue:
            queue.popleft().set()
        else:
            self._held = False
