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

The arithmetic (``try_acquire_nowait``, ``throttled``) is synchronous and reads an injected
clock, so unit tests drive it with a fake clock; ``acquire`` is the async face for real use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable


_EPSILON: Final = 1e-9


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
        self._rate = self.settings.ceiling
        self._tokens = self.settings.burst
        self._updated = now
        self._blocked_until = now
        self._last_decrease = now - self.settings.decrease_cooldown
        self._throttle_count = 0
        # Waiters queue here (anyio locks are fair), so one sleeps for the next token at a time
        # instead of every waiter waking on every token. The lock never covers an HTTP call.
        self._waiters = anyio.Lock()

    @property
    def rate(self) -> float:
        """The refill rate now, in requests per second (a metric)."""
        self._advance(self._clock())
        return self._rate

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
        rate, ceiling, slope = self._rate, self.settings.ceiling, self.settings.increase_per_second
        # Tokens are the integral of a rate that rises linearly until it meets the ceiling.
        if slope > 0 and rate < ceiling:
            to_ceiling = (ceiling - rate) / slope
            rising = min(elapsed, to_ceiling)
            gained = rate * rising + slope * rising * rising / 2 + ceiling * (elapsed - rising)
            rate = min(rate + slope * elapsed, ceiling)
        else:
            gained = rate * elapsed
        self._rate = rate
        self._tokens = min(self._tokens + gained, self.settings.burst)

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
            return 0.0
        return (1 - self._tokens) / self._rate

    def take_nowait(self) -> bool:
        """Take a token at once if one is there and nobody queues for one; else take nothing."""
        return not self._waiters.locked() and self.try_acquire_nowait() == 0.0

    async def acquire(self) -> None:
        """Wait until one request may be sent, and take its token."""
        # Without the lock when a token is there: the lock's checkpoints cost more CPU than the
        # rest of a request's bookkeeping together (py-spy, 1,500 actions/s).
        if self.take_nowait():
            return
        async with self._waiters:
            while (wait := self.try_acquire_nowait()) > 0:
                await self._sleep(wait)

    def throttled(self, retry_after: float | None = None) -> None:
        """Engage answered 429: cut the rate, drain the bucket, block for ``retry_after``."""
        now = self._clock()
        self._advance(now)
        self._throttle_count += 1
        if retry_after is not None and retry_after > 0:
            self._blocked_until = max(self._blocked_until, now + retry_after)
            self._updated = max(self._updated, now)
        if now - self._last_decrease >= self.settings.decrease_cooldown:
            self._rate = max(self._rate * self.settings.decrease_factor, self.settings.floor)
            self._last_decrease = now
        self._tokens = 0.0
