"""The retry policy: when a call that failed harmlessly is tried again, and when we give up.

``RetryPolicy`` is pure arithmetic: exponential backoff with full jitter (a delay drawn from
``[0, min(cap, base * 2**(n-1))]``, which spreads retries of many orders so they do not hit Engage
in waves), a ``Retry-After`` from Engage winning over our own guess, a bound on attempts, and a
deadline it never sleeps past: a retry that could only start after the event's deadline is not
made, so the outcome is reported while it still matters.

``CountingRetrier`` is a ``Retrier`` that tells a hook (the metrics) why each retry was made.

``Retrier`` applies a policy to one step of one operation (a ``StepRunner`` for
the Engage client): it retries ``EngageRetriable`` always, ``EngageAmbiguous`` only when the step is
safe to repeat, and remembers how many attempts it made and why it stopped. With
``hold_on_refused_key``, a refused API key (``EngageKeyRefused``) is neither an attempt nor a
reason to sleep: the step goes again at once and waits where the service holds every request
until Engage accepts the key (``consumer.credentials``).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio

from consumer.errors import EngageAmbiguous, EngageError, EngageKeyRefused, EngageRetriable

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

_T = TypeVar("_T")

GiveUp = Literal["attempts", "deadline"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by a deadline."""

    base: float = 0.2
    cap: float = 10.0
    max_attempts: int = 6

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base:
            raise ValueError("need 0 < base <= cap")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff_ceiling(self, attempt: int) -> float:
        """The largest delay after failed attempt number ``attempt`` (1-based)."""
        # Clamp the exponent: absurd attempt numbers must not overflow the float.
        return min(self.cap, self.base * 2.0 ** min(max(attempt - 1, 0), 60))

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """A full-jitter delay after failed attempt ``attempt``: uniform in [0, ceiling]."""
        return rng.uniform(0.0, self.backoff_ceiling(attempt))

    def next_delay(
        self,
        attempt: int,
        *,
        now: float,
        deadline: float,
        retry_after: float | None,
        rng: random.Random,
    ) -> float | GiveUp:
        """Seconds to wait before attempt ``attempt + 1``, or why there is none.

        ``Retry-After`` wins over the jittered guess: Engage knows when it can take more.
        """
        if attempt >= self.max_attempts:
            return "attempts"
        delay = retry_after if retry_after is not None else self.backoff(attempt, rng)
        if now + delay >= deadline:
            return "deadline"
        return delay


class Retrier:
    """Runs steps under one policy and deadline, counting attempts across them."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        deadline: float,
        retry_ambiguous: bool,
        hold_on_refused_key: bool = False,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.policy = policy
        self.deadline = deadline
        self.retry_ambiguous = retry_ambiguous
        self.hold_on_refused_key = hold_on_refused_key
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._sleep = sleep
        self.attempts = 0
        self.gave_up: GiveUp | None = None

    async def __call__(self, step: Callable[[], Awaitable[_T]], /) -> _T:
        """Run ``step``; retry it while the policy allows; re-raise the last error otherwise."""
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            try:
                return await step()
            except EngageKeyRefused:
                if not self.hold_on_refused_key:
                    raise
                # Not the step's failure: the next try waits for a key Engage accepts.
                attempt -= 1
                self.attempts -= 1
                continue
            except EngageRetriable as exc:
                retry_after = exc.retry_after
                error: Exception = exc
            except EngageAmbiguous as exc:
                if not self.retry_ambiguous:
                    raise
                retry_after, error = None, exc
            delay = self.policy.next_delay(
                attempt,
                now=self._clock(),
                deadline=self.deadline,
                retry_after=retry_after,
                rng=self._rng,
            )
            if isinstance(delay, str):
                self.gave_up = delay
                raise error
            await self._sleep(delay)


def retry_reason(exc: EngageError) -> str:
    """A short, bounded word for why an attempt failed, for the ``retries`` counter."""
    if isinstance(exc, EngageAmbiguous):
        return "ambiguous"
    if isinstance(exc, EngageKeyRefused):
        return "key_refused"
    if exc.status == 429:
        return "throttled"
    if exc.status is not None and exc.status >= 500:
        return "server_error"
    if exc.status is None:
        return "not_sent"
    return "other"


class CountingRetrier(Retrier):
    """A ``Retrier`` that reports every retry it makes, with the reason of the failure before.

    A failure is counted only when the next attempt actually starts, so giving up (deadline,
    attempts, an error not worth retrying) is never counted as a retry.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        on_retry: Callable[[str], None],
        **options: Any,  # noqa: ANN401 - passed through to Retrier unchanged
    ) -> None:
        super().__init__(policy, **options)
        self._on_retry = on_retry

    async def __call__(self, step: Callable[[], Awaitable[_T]], /) -> _T:
        """Run ``step`` under the policy, counting each retry."""
        failed: list[str] = []

        async def counted() -> _T:
            if failed:
                self._on_retry(failed.pop())
            try:
                return await step()
            except EngageError as exc:
                failed.append(retry_reason(exc))
                raise

        return await super().__call__(counted)
