"""The retry policy's arithmetic and the retrier that applies it, on a fake clock (no I/O)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import pytest

from consumer.errors import (
    EngageAmbiguous,
    EngageError,
    EngageKeyRefused,
    EngageRejected,
    EngageRetriable,
)
from consumer.retry import CountingRetrier, Retrier, RetryPolicy, retry_reason

if TYPE_CHECKING:
    from collections.abc import Callable


# -- RetryPolicy ---------------------------------------------------------------------------------


def test_backoff_ceiling_doubles_from_base_up_to_cap() -> None:
    """The largest delay after attempt n is base·2^(n-1), never above the cap."""
    policy = RetryPolicy(base=0.1, cap=1.0, max_attempts=10)
    ceilings = [policy.backoff_ceiling(n) for n in range(1, 7)]
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert policy.backoff_ceiling(10_000) == 1.0


def test_backoff_is_full_jitter_within_zero_and_the_ceiling() -> None:
    """Delays are drawn from [0, ceiling] and actually spread out over that range."""
    policy = RetryPolicy(base=0.1, cap=10.0, max_attempts=10)
    rng = random.Random(7)
    delays = [policy.backoff(4, rng) for _ in range(2000)]
    assert all(0.0 <= d <= 0.8 for d in delays)
    assert min(delays) < 0.1
    assert max(delays) > 0.7


def test_next_delay_gives_up_after_max_attempts() -> None:
    """After the last allowed attempt there is no delay, only the reason: attempts."""
    policy = RetryPolicy(base=0.1, cap=1.0, max_attempts=3)
    rng = random.Random(1)
    assert isinstance(policy.next_delay(2, now=0, deadline=100, retry_after=None, rng=rng), float)
    assert policy.next_delay(3, now=0, deadline=100, retry_after=None, rng=rng) == "attempts"


def test_retry_after_wins_over_the_jittered_guess() -> None:
    """When Engage says Retry-After, that is the delay, whatever the backoff would be."""
    policy = RetryPolicy(base=0.1, cap=1.0, max_attempts=5)
    delay = policy.next_delay(1, now=0, deadline=100, retry_after=7.5, rng=random.Random(1))
    assert delay == 7.5


def test_never_sleeps_past_the_deadline() -> None:
    """A retry that could only start at or after the deadline is not made."""
    policy = RetryPolicy(base=1.0, cap=1.0, max_attempts=5)
    rng = random.Random(3)
    assert policy.next_delay(1, now=10.0, deadline=10.5, retry_after=0.6, rng=rng) == "deadline"
    assert policy.next_delay(1, now=10.0, deadline=10.0, retry_after=None, rng=rng) == "deadline"
    assert policy.next_delay(1, now=10.0, deadline=12.0, retry_after=0.6, rng=rng) == 0.6


# -- Retrier -------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def make_retrier(fake: FakeTime, *, retry_ambiguous: bool, deadline: float = 100.0) -> Retrier:
    return Retrier(
        RetryPolicy(base=0.5, cap=4.0, max_attempts=4),
        deadline=deadline,
        retry_ambiguous=retry_ambiguous,
        rng=random.Random(5),
        clock=fake.clock,
        sleep=fake.sleep,
    )


def failing(errors: list[Exception], result: str = "ok") -> Callable[[], Any]:
    """A step that raises the listed errors in turn, then returns ``result``."""
    remaining = list(errors)

    async def step() -> str:
        if remaining:
            raise remaining.pop(0)
        return result

    return step


async def test_retrier_retries_retriable_errors_until_success() -> None:
    """Two 503s then success: three attempts, two sleeps, the step's value returned."""
    fake = FakeTime()
    retrier = make_retrier(fake, retry_ambiguous=False)
    errors: list[Exception] = [EngageRetriable("503", status=503), EngageRetriable("x")]
    assert await retrier(failing(errors)) == "ok"
    assert retrier.attempts == 3
    assert len(fake.slept) == 2
    assert retrier.gave_up is None


async def test_retrier_honours_retry_after() -> None:
    """A 429 with Retry-After 3 s makes the retrier sleep exactly 3 s."""
    fake = FakeTime()
    retrier = make_retrier(fake, retry_ambiguous=False)
    assert await retrier(failing([EngageRetriable("429", status=429, retry_after=3.0)])) == "ok"
    assert fake.slept == [3.0]


async def test_retrier_gives_up_after_max_attempts_with_the_last_error() -> None:
    """Always retriable: four attempts, then the last error is raised and the reason kept."""
    fake = FakeTime()
    retrier = make_retrier(fake, retry_ambiguous=False)
    errors: list[Exception] = [EngageRetriable(f"e{i}", status=503) for i in range(10)]
    with pytest.raises(EngageRetriable, match="e3"):
        await retrier(failing(errors))
    assert (retrier.attempts, retrier.gave_up) == (4, "attempts")


async def test_retrier_gives_up_at_the_deadline() -> None:
    """A Retry-After longer than the time left ends the retries with reason deadline."""
    fake = FakeTime()
    retrier = make_retrier(fake, retry_ambiguous=False, deadline=2.0)
    with pytest.raises(EngageRetriable):
        await retrier(failing([EngageRetriable("429", status=429, retry_after=5.0)]))
    assert (retrier.attempts, retrier.gave_up, fake.slept) == (1, "deadline", [])


async def test_retrier_does_not_retry_ambiguity_unless_allowed() -> None:
    """Ambiguous errors pass straight through for non-idempotent steps and retry for safe ones."""
    fake = FakeTime()
    strict = make_retrier(fake, retry_ambiguous=False)
    with pytest.raises(EngageAmbiguous):
        await strict(failing([EngageAmbiguous("timeout")]))
    assert strict.attempts == 1
    lenient = make_retrier(fake, retry_ambiguous=True)
    assert await lenient(failing([EngageAmbiguous("timeout")])) == "ok"
    assert lenient.attempts == 2


async def test_retrier_never_retries_a_rejection() -> None:
    """Engage's no (4xx) is raised at once: trying again cannot help."""
    fake = FakeTime()
    retrier = make_retrier(fake, retry_ambiguous=True)
    with pytest.raises(EngageRejected):
        await retrier(failing([EngageRejected("422", status=422)]))
    assert (retrier.attempts, fake.slept) == (1, [])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"base": 0.0}, "0 < base <= cap"),
        ({"base": 2.0, "cap": 1.0}, "0 < base <= cap"),
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
    ],
)
def test_an_impossible_policy_is_refused(options: dict[str, float], message: str) -> None:
    """A policy that could never wait, or never try, is refused when it is made."""
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**options)  # type: ignore[arg-type]


def test_absurd_attempt_numbers_stay_at_the_cap() -> None:
    """A huge attempt number neither overflows nor passes the cap."""
    policy = RetryPolicy(base=0.2, cap=10.0, max_attempts=10**9)
    assert [policy.backoff_ceiling(n) for n in (0, 1, 10**6, 10**18)] == [0.2, 0.2, 10.0, 10.0]


async def test_attempts_add_up_over_the_steps_of_one_operation() -> None:
    """One retrier runs two steps (a write, then the GET of its tag): attempts add up, and the
    second step starts its backoff afresh."""
    fake = FakeTime()
    retrier = make_retrier(fake, retry_ambiguous=True)
    assert await retrier(failing([EngageRetriable("503", status=503)], "written")) == "written"
    assert await retrier(failing([EngageAmbiguous("timeout")], "tag")) == "tag"
    assert retrier.attempts == 4
    assert len(fake.slept) == 2
    assert all(0.0 <= s <= 0.5 for s in fake.slept), fake.slept
    assert retrier.gave_up is None


# -- a refused API key ----------------------------------------------------------------------------


async def test_a_refused_key_is_no_attempt_when_the_caller_holds_requests_for_it() -> None:
    """Held: three refusals, then success, and the policy's one attempt was never spent (the
    gate waits, the retrier does not sleep). Not held: the refusal is the caller's to see."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    refusals = [EngageKeyRefused("401", status=401) for _ in range(3)]

    async def step() -> str:
        if refusals:
            raise refusals.pop()
        return "ok"

    held = Retrier(
        RetryPolicy(max_attempts=1),
        deadline=1e9,
        retry_ambiguous=False,
        hold_on_refused_key=True,
        clock=lambda: 0.0,
        sleep=sleep,
    )
    assert await held(step) == "ok"
    assert (held.attempts, sleeps) == (1, [])

    refusals.append(EngageKeyRefused("403", status=403))
    plain = Retrier(RetryPolicy(max_attempts=5), deadline=1e9, retry_ambiguous=False, sleep=sleep)
    with pytest.raises(EngageKeyRefused):
        await plain(step)


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (EngageRetriable("x", status=429), "throttled"),
        (EngageRetriable("x", status=503), "server_error"),
        (EngageRetriable("x (not sent)"), "not_sent"),
        (EngageAmbiguous("x"), "ambiguous"),
        (EngageAmbiguous("x", status=504), "ambiguous"),
        (EngageRejected("x", status=409), "other"),
        (EngageKeyRefused("x", status=401), "key_refused"),
    ],
)
def test_retry_reason_is_a_short_bounded_word(exc: EngageError, reason: str) -> None:
    """Failures are grouped into a few reasons, never their free text."""
    assert retry_reason(exc) == reason


async def test_counting_retrier_counts_retries_not_the_give_up() -> None:
    """Two failures then success: two retries; a last failure that is not retried is not counted."""
    seen: list[str] = []
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    retrier = CountingRetrier(
        RetryPolicy(base=0.01, cap=0.01, max_attempts=3),
        on_retry=seen.append,
        deadline=1e9,
        retry_ambiguous=False,
        rng=random.Random(1),
        clock=lambda: 0.0,
        sleep=sleep,
    )
    errors: list[Exception] = [EngageRetriable("a", status=429), EngageRetriable("b", status=500)]

    async def flaky() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    assert await retrier(flaky) == "ok"
    assert seen == ["throttled", "server_error"]
    assert len(sleeps) == 2

    async def ambiguous() -> str:
        raise EngageAmbiguous("timeout after sending")

    with pytest.raises(EngageAmbiguous):
        await retrier(ambiguous)
    assert seen == ["throttled", "server_error"]
    assert retrier.attempts == 4


async def test_counting_retrier_gives_up_like_a_retrier() -> None:
    """After max_attempts the last error is raised and gave_up says why; only real retries count."""
    seen: list[str] = []

    async def sleep(_seconds: float) -> None:
        return None

    retrier = CountingRetrier(
        RetryPolicy(base=0.01, cap=0.01, max_attempts=2),
        on_retry=seen.append,
        deadline=1e9,
        retry_ambiguous=True,
        clock=lambda: 0.0,
        sleep=sleep,
    )

    async def down() -> None:
        raise EngageRetriable("down", status=503)

    with pytest.raises(EngageRetriable):
        await retrier(down)
    assert (seen, retrier.gave_up) == (["server_error"], "attempts")
