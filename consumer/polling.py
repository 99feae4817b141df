"""When to poll a write's job: learned from how long recent jobs took, to spend few requests.

Every poll spends a token of the API key's rate budget, the resource that bounds throughput in
production. A fixed schedule starting early and doubling (0.2, 0.4, 0.8 s, ...) cost 2.9 polls
per job on jobs of 0.1-2 s (bench). Here the first poll comes at about the median duration of
recent jobs, so half of the jobs are done at the first poll, and the later gaps start at half
that median and double up to ``max_gap``: on the same jobs ~1.7 polls each.

A job's duration is only known to lie between its last "still running" poll and the poll that
found it done; the midpoint of that interval is what is remembered. Jobs done at the first poll
thus report half the first gap, so a first poll later than the median pulls itself back (and
one earlier than it is pushed out by the jobs that needed more polls).

The first poll never comes later than ``max_first`` (10 s): a slow spell must not leave fast
jobs waiting long after it. The client learns only from jobs that succeeded with every poll
answered: an outage stretches a job's known end interval by the outage, not by Engage's
processing, and a failed or forgotten job says nothing about how long processing takes.

Pure: no I/O and no clock; the caller passes elapsed seconds.
"""

from __future__ import annotations

import random
from collections import deque


class PollSchedule:
    """Gaps between the polls of one job, shared by every job of one Engage client.

    ``initial`` is the first gap until jobs have been observed; ``floor`` and ``max_gap`` bound
    every gap (the first may be longer than ``max_gap`` when jobs are slow, up to ``max_first``).
    """

    def __init__(
        self,
        *,
        initial: float,
        floor: float = 0.05,
        max_gap: float = 2.0,
        max_first: float = 10.0,
        window: int = 128,
        patient_factor: float = 2.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < floor <= initial <= max_first or not floor <= max_gap:
            raise ValueError(
                f"need 0 < floor ({floor}) <= initial ({initial}) <= max_first ({max_first})"
                f" and floor <= max_gap ({max_gap})"
            )
        if not patient_factor >= 1.0:
            raise ValueError(f"need patient_factor ({patient_factor}) >= 1")
        self._patient_factor = patient_factor
        self._floor = floor
        self._max_gap = max_gap
        self._max_first = max_first
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._durations: deque[float] = deque(maxlen=window)
        self._median = initial
        self._since_median = 0

    @property
    def typical(self) -> float:
        """The median job duration the schedule works from (seconds; a metric and for tests)."""
        return self._median

    def first_gap(self, *, patient: bool = False) -> float:
        """Seconds from the write's acceptance to the job's first poll (±10 % jitter).

        The jitter spreads the polls of writes accepted together without moving them early.
        ``patient``: nothing waits for the job but its outcome (embedded delivery: the action
        rode in the write, nothing queued behind it), so the first poll comes at
        ``patient_factor`` (2) times the median, when nearly every job is done: fewer polls for
        a later outcome. The midpoint of ``(0, 2 * median)`` is the median, so at 2 such jobs
        teach the schedule what it already believes, and slower ones push it out as they should.
        """
        typical = self._median * (self._patient_factor if patient else 1.0)
        gap = min(max(typical, self._floor), self._max_first)
        return gap * self._rng.uniform(0.9, 1.1)

    def next_gap(self, polls_done: int) -> float:
        """Seconds to the next poll after ``polls_done`` polls found the job still running.

        Half the median, doubling, capped at ``max_gap``; equal jitter (half to all of it) so
        polls of many jobs spread out but none comes back much sooner than planned.
        """
        gap = min(max(self._median / 2, self._floor) * 2.0 ** max(polls_done - 1, 0), self._max_gap)
        return gap / 2 + self._rng.uniform(0, gap / 2)

    def job_ended(self, last_running: float, first_done: float) -> None:
        """A job was seen running at ``last_running`` s and done at ``first_done`` s."""
        if not 0 <= last_running <= first_done:
            return  # a clock oddity: learn nothing from it
        self._durations.append((last_running + first_done) / 2)
        self._since_median += 1
        # The median costs a sort of the window: once per eighth of a window is plenty.
        if self._since_median >= max(1, len(self._durations) // 8) or len(self._durations) < 8:
            ordered = sorted(self._durations)
            self._median = ordered[len(ordered) // 2]
            self._since_median = 0
