"""Whether Engage accepts the API key, and holding every request while it does not.

A 401 or 403 from Engage says nothing about the event being sent: it says the service cannot
work (a wrong, expired or half-rotated ``ENGAGE_API_KEY``). Rejecting the event would commit it
and lose its customer message, so the first refusal *locks* the gate instead:

- every request waits here, before its rate token, and none goes out but one probe at a time;
- the probe is a real request of the backlog (a refused request took no effect in Engage, so
  sending it again is safe), let through after a gap that starts at ``first_probe`` and doubles
  up to ``max_probe_gap`` while the key stays refused;
- the probe's answer, if it is not a refusal (any 2xx to 4xx but 401/403, 429 included: the key
  was recognised), unlocks the gate and everything waiting goes on; a 5xx or no answer at all
  says nothing about the key, so the next probe follows after the current gap. Answers to
  requests sent before the lock never unlock it: they say nothing of the key refused now.

While locked, the deadline clock (``deadline_clock``) stands still: events and jobs waiting for
a working key never fail for time they could not use, and nothing past the first refused event
is committed, because none of them can finish.

Bookkeeping and one ``anyio.Event``; the clock is injected, so tests drive it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio

if TYPE_CHECKING:
    from collections.abc import Callable

#: The answers that mean Engage refused the API key itself, whatever the request.
REFUSED_KEY: Final = frozenset({401, 403})


@dataclass(frozen=True, kw_only=True, slots=True)
class CredentialsSettings:
    """How often a refused key is tried again."""

    #: seconds from the first refusal to the first probe
    first_probe: float = 1.0
    #: the longest gap between probes while the key stays refused
    max_probe_gap: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.first_probe <= self.max_probe_gap:
            raise ValueError("need 0 < first_probe <= max_probe_gap")


class Pass:
    """One request's way through the gate: tell it how Engage answered."""

    __slots__ = ("_gate", "_probe", "_settled")

    def __init__(self, gate: CredentialsGate, *, probe: bool) -> None:
        self._gate = gate
        self._probe = probe
        self._settled = False

    @property
    def probe(self) -> bool:
        """True when this request was let through to test a refused key."""
        return self._probe

    def answered(self, status: int) -> None:
        """Engage answered with HTTP ``status``."""
        self._settled = True
        self._gate.answered(status, probe=self._probe)

    def close(self) -> None:
        """The request is over; a probe that got no answer lets the next one try later."""
        if self._probe and not self._settled:
            self._settled = True
            self._gate.probe_unanswered()


class CredentialsGate:
    """Open while Engage accepts the key; locked from its first 401/403 until it accepts again.

    ``on_change(status)`` is told each time the gate locks (the refusing status) or opens again
    (``None``): the service logs, pauses intake and answers readiness from it.
    """

    def __init__(
        self,
        settings: CredentialsSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[int | None], None] | None = None,
    ) -> None:
        self.settings = settings or CredentialsSettings()
        self._clock = clock
        self._on_change = on_change
        self._refused_since: float | None = None
        self._held_before = 0.0  # seconds locked in earlier stretches
        self._gap = self.settings.first_probe
        self._next_probe_at = math.inf
        self._probing = False
        self._changed = anyio.Event()
        #: 401/403 answers so far (a metric)
        self.refusals = 0
        #: the status of the latest refusal, while locked
        self.refused_status: int | None = None

    @property
    def refused(self) -> bool:
        """Engage refused the key and has not accepted it since."""
        return self._refused_since is not None

    def held_seconds(self) -> float:
        """Seconds spent locked so far, the current stretch included."""
        current = 0.0 if self._refused_since is None else self._clock() - self._refused_since
        return self._held_before + current

    def deadline_clock(self) -> float:
        """A monotonic clock that stands still while the key is refused (for deadlines)."""
        return self._clock() - self.held_seconds()

    def next_probe_in(self) -> float | None:
        """Seconds until the next probe may go (None while open or a probe is out)."""
        if self._refused_since is None or self._probing:
            return None
        return max(self._next_probe_at - self._clock(), 0.0)

    def admit_nowait(self) -> Pass | None:
        """A pass at once while the gate is open (the common case: no await); else None."""
        return Pass(self, probe=False) if self._refused_since is None else None

    async def admit(self) -> Pass:
        """Wait until this request may go: the gate is open, or it is the next probe."""
        while self._refused_since is not None:
            if not self._probing and self._clock() >= self._next_probe_at:
                self._probing = True
                return Pass(self, probe=True)
            changed = self._changed
            wait = self.next_probe_in()
            with anyio.move_on_after(math.inf if wait is None else wait):
                await changed.wait()
        return Pass(self, probe=False)

    # -- what Engage said ---------------------------------------------------------------------

    def answered(self, status: int, *, probe: bool = False) -> None:
        """Engage answered a request with ``status``: lock, unlock, or note nothing."""
        if status in REFUSED_KEY:
            self.refusals += 1
            self._refused(status, probe=probe)
        elif not probe:
            # Only a probe can open the gate: a request sent before the lock and answered
            # after it says nothing of the key Engage refuses now.
            return
        elif status < 500:
            self._accepted()
        else:
            self.probe_unanswered()

    def probe_unanswered(self) -> None:
        """The probe ended without a verdict on the key: another goes after the same gap."""
        if self._refused_since is None:
            return
        self._probing = False
        self._next_probe_at = self._clock() + self._gap
        self._wake()

    def _refused(self, status: int, *, probe: bool) -> None:
        now = self._clock()
        self.refused_status = status
        if self._refused_since is None:
            self._refused_since = now
            self._gap = self.settings.first_probe
            self._next_probe_at = now + self._gap
            self._probing = False
            self._wake()
            if self._on_change is not None:
                self._on_change(status)
            return
        if probe:
            # Still refused: wait longer before the next try.
            self._probing = False
            self._gap = min(self._gap * 2.0, self.settings.max_probe_gap)
            self._next_probe_at = now + self._gap
            self._wake()

    def _accepted(self) -> None:
        if self._refused_since is None:
            return
        self._held_before += self._clock() - self._refused_since
        self._refused_since = None
        self._probing = False
        self._next_probe_at = math.inf
        self.refused_status = None
        self._wake()
        if self._on_change is not None:
            self._on_change(None)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()
