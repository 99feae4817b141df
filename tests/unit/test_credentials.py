"""The credentials gate: a refused API key holds every request, one probe at a time tries it.

The gate's clock is a fake one the tests move by hand; the waits are real anyio waits, bounded.
"""

from __future__ import annotations

import time

import anyio
import pytest

from consumer.credentials import CredentialsGate, CredentialsSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(clock: Clock, changes: list[int | None] | None = None) -> CredentialsGate:
    return CredentialsGate(
        CredentialsSettings(first_probe=1.0, max_probe_gap=4.0),
        clock=clock,
        on_change=None if changes is None else changes.append,
    )


def test_an_open_gate_admits_at_once_and_answers_do_not_lock_it() -> None:
    """The common case costs nothing: a pass without waiting, and 2xx-5xx answers change nothing."""
    clock = Clock()
    credentials = gate(clock)
    admitted = credentials.admit_nowait()
    assert admitted is not None
    assert not admitted.probe
    for status in (200, 202, 404, 429, 500):
        admitted.answered(status)
    assert not credentials.refused
    assert credentials.deadline_clock() == clock.now


def test_the_first_refusal_locks_once_and_later_ones_of_earlier_requests_change_nothing() -> None:
    """Requests on the wire when the key went bad all come back 401: one lock, one change."""
    clock = Clock()
    changes: list[int | None] = []
    credentials = gate(clock, changes)
    passes = [credentials.admit_nowait() for _ in range(3)]
    for admitted in passes:
        assert admitted is not None
        admitted.answered(401)
    assert credentials.refused
    assert (changes, credentials.refusals, credentials.refused_status) == ([401], 3, 401)
    assert credentials.admit_nowait() is None
    # An earlier request that Engage still accepted says nothing of the key refused now.
    late = passes[0]
    assert late is not None
    late.answered(200)
    assert credentials.refused


def test_the_deadline_clock_stands_still_while_the_key_is_refused() -> None:
    """Time spent locked is not time an event's deadline could use."""
    clock = Clock()
    credentials = gate(clock)
    start = credentials.deadline_clock()
    admitted = credentials.admit_nowait()
    assert admitted is not None
    admitted.answered(403)
    clock.now += 30.0
    assert credentials.deadline_clock() == start
    assert credentials.held_seconds() == 30.0
    credentials._accepted()  # the probe's path, tested below end to end
    clock.now += 5.0
    assert credentials.deadline_clock() == start + 5.0
    assert credentials.held_seconds() == 30.0


async def test_one_probe_at_a_time_after_a_gap_that_doubles_while_the_key_stays_refused() -> None:
    """Locked: nothing goes before the gap; then exactly one probe; a refused probe doubles the
    gap; an accepted one opens the gate for every waiter. (Real clock, gaps of 50-100 ms.)"""
    changes: list[int | None] = []
    credentials = CredentialsGate(
        CredentialsSettings(first_probe=0.05, max_probe_gap=1.0), on_change=changes.append
    )
    first = credentials.admit_nowait()
    assert first is not None
    first.answered(401)
    locked_at = time.monotonic()

    admitted: list[tuple[bool, float]] = []

    async def request() -> None:
        ticket = await credentials.admit()
        admitted.append((ticket.probe, time.monotonic() - locked_at))
        if ticket.probe:
            # The first probe is refused too; the second finds the key accepted.
            ticket.answered(401 if credentials.refusals < 2 else 200)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(request)
    probes = [at for probe, at in admitted if probe]
    others = [at for probe, at in admitted if not probe]
    assert len(probes) == 2
    assert len(others) == 2
    assert probes[0] >= 0.05  # not before the first gap
    assert probes[1] - probes[0] >= 0.1  # the gap doubled after the refused probe
    assert min(others) >= probes[1]  # the waiters went once the key was accepted
    assert not credentials.refused
    assert changes == [401, None]


async def test_a_probe_without_an_answer_lets_the_next_go_after_the_same_gap() -> None:
    """A probe that met a 5xx or no answer at all says nothing about the key."""
    clock = Clock()
    credentials = gate(clock)
    first = credentials.admit_nowait()
    assert first is not None
    first.answered(401)
    clock.now += 1.0
    with anyio.fail_after(2):
        probe = await credentials.admit()
    assert probe.probe
    probe.answered(503)
    assert credentials.refused
    assert credentials.next_probe_in() == 1.0
    clock.now += 1.0
    with anyio.fail_after(2):
        second = await credentials.admit()
    assert second.probe
    second.close()  # cancelled, refused by the fence, deadline: no answer
    assert credentials.next_probe_in() == 1.0


def test_the_gap_between_probes_is_capped() -> None:
    """Refused probes double the gap up to max_probe_gap, never further."""
    clock = Clock()
    credentials = gate(clock)
    first = credentials.admit_nowait()
    assert first is not None
    first.answered(401)
    gaps = []
    for _ in range(5):
        clock.now += credentials.next_probe_in() or 0.0
        credentials._probing = True  # what admit() sets for the probe
        credentials.answered(401, probe=True)
        gaps.append(credentials.next_probe_in())
    assert gaps == [2.0, 4.0, 4.0, 4.0, 4.0]


def test_settings_must_make_sense() -> None:
    """A gap of zero (a busy loop) or a first gap above the cap is refused."""
    with pytest.raises(ValueError, match="first_probe"):
        CredentialsSettings(first_probe=0.0)
    with pytest.raises(ValueError, match="first_probe"):
        CredentialsSettings(first_probe=10.0, max_probe_gap=5.0)
