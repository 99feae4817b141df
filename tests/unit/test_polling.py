"""PollSchedule: the first poll near the typical job time, then short doubling gaps."""

from __future__ import annotations

import random

import pytest

from consumer.polling import PollSchedule


def run_jobs(schedule: PollSchedule, durations: list[float]) -> list[int]:
    """Poll jobs of the given durations one after another; return the polls each took."""
    polls: list[int] = []
    for duration in durations:
        at = schedule.first_gap()
        count, running_at = 1, 0.0
        while at < duration:
            running_at = at
            at += schedule.next_gap(count)
            count += 1
        schedule.job_ended(running_at, at)
        polls.append(count)
    return polls


def test_before_any_job_the_first_poll_comes_after_the_initial_gap() -> None:
    schedule = PollSchedule(initial=0.2, rng=random.Random(1))
    gaps = [schedule.first_gap() for _ in range(200)]
    assert min(gaps) >= 0.18
    assert max(gaps) <= 0.22
    assert schedule.typical == 0.2


def test_the_first_poll_moves_to_the_typical_job_time() -> None:
    schedule = PollSchedule(initial=0.2, rng=random.Random(2))
    run_jobs(schedule, [1.0] * 200)
    assert 0.9 <= schedule.typical <= 1.2
    assert all(0.8 <= schedule.first_gap() <= 1.35 for _ in range(100))


def test_a_first_poll_later_than_the_jobs_pulls_itself_back() -> None:
    """Jobs all done at the first poll report half of it, so it shrinks toward their time."""
    schedule = PollSchedule(initial=5.0, rng=random.Random(3))
    polls = run_jobs(schedule, [0.3] * 300)
    assert set(polls[-50:]) <= {1, 2}
    assert 0.2 <= schedule.typical <= 0.6


def test_later_gaps_start_at_half_the_typical_time_double_and_stop_at_max_gap() -> None:
    schedule = PollSchedule(initial=1.0, max_gap=2.0, rng=random.Random(4))
    for polls_done, planned in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 2.0), (9, 2.0)]:
        gaps = [schedule.next_gap(polls_done) for _ in range(100)]
        # Equal jitter: between half the planned gap and all of it.
        assert min(gaps) >= planned / 2
        assert max(gaps) <= planned


def test_slow_jobs_move_the_first_poll_out_but_never_past_max_first() -> None:
    schedule = PollSchedule(initial=0.2, max_first=3.0, rng=random.Random(5))
    run_jobs(schedule, [10.0] * 100)
    assert schedule.typical > 3.0
    assert max(schedule.first_gap() for _ in range(100)) <= 3.3


def test_fewer_polls_than_a_fixed_doubling_schedule_on_jobs_of_a_tenth_to_two_seconds() -> None:
    """The bench's job times: the old schedule (0.2 s doubling) took 3.3 polls per job here."""
    rng = random.Random(7)
    durations = [rng.uniform(0.1, 2.0) for _ in range(2000)]
    polls = run_jobs(PollSchedule(initial=0.2, rng=random.Random(8)), durations)
    settled = polls[200:]
    assert sum(settled) / len(settled) < 2.2


def test_bad_bounds_are_refused_and_odd_observations_ignored() -> None:
    with pytest.raises(ValueError, match="floor"):
        PollSchedule(initial=0.01, floor=0.05)
    with pytest.raises(ValueError, match="max_first"):
        PollSchedule(initial=40.0, max_first=30.0)
    schedule = PollSchedule(initial=0.2)
    schedule.job_ended(1.0, 0.5)
    schedule.job_ended(-1.0, 0.5)
    assert schedule.typical == 0.2
