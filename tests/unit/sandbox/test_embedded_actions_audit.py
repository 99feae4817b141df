"""The journal audit treats embedded and separate actions alike (journals from the model)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from consumer.sandbox.audit import audit
from consumer.sandbox.engage.settings import Delay, SimulatorSettings
from consumer.sandbox.engage.state import EngageState
from consumer.sandbox.workload import EventFactory, GeneratedEvent


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state() -> EngageState:
    """Jobs that finish at once: the next operation sees them processed."""
    return EngageState(SimulatorSettings(job_delay=Delay.fixed(0.0), seed=3), clock=FakeClock())


def _stream() -> tuple[GeneratedEvent, GeneratedEvent]:
    """An order created, then confirmed with a snapshot: the action belongs to the snapshot."""
    factory = EventFactory(prefix="audit")
    return (
        factory.upserted("o-1", 1, status="Created"),
        factory.lifecycle("confirmed", "o-1", revision=2, snapshot_status="Paid"),
    )


def _outcomes(*events: GeneratedEvent) -> list[dict[str, Any]]:
    return [
        {"data": {"eventId": e.event_id, "operation": "upsert", "status": "accepted"}}
        for e in events
    ]


def _write(state: EngageState, body: dict[str, Any], *, create: bool) -> None:
    payload = orjson.dumps(body)
    answer = state.create_order(payload) if create else state.replace_order("o-1", payload)
    assert answer.status == 202, answer


def _embedded(event: GeneratedEvent) -> dict[str, Any]:
    data = event.event["data"]
    return {"action": "ConfirmOrder", "language": data["language"], "data": data["actionData"]}


def test_audit_accepts_an_embedded_action_on_its_own_write(state: EngageState) -> None:
    """The snapshot written with its action embedded: correct, counted once, as embedded."""
    created, confirmed = _stream()
    _write(state, created.event["data"]["order"], create=True)
    snapshot = confirmed.event["data"]["order"]
    _write(state, {**snapshot, "orderAction": _embedded(confirmed)}, create=False)
    report = audit(
        events=[created, confirmed], journal=state.journal(), outcomes=_outcomes(created, confirmed)
    )
    assert report.correct, report.summary()
    assert (report.actions_accepted, report.embedded_actions, report.duplicate_actions) == (1, 1, 0)
    assert report.lateness == [0.0]


def test_audit_flags_an_action_both_embedded_and_sent_separately(state: EngageState) -> None:
    """The same event's action embedded in its write and posted on that tag is a duplicate."""
    created, confirmed = _stream()
    _write(state, created.event["data"]["order"], create=True)
    snapshot = confirmed.event["data"]["order"]
    _write(state, {**snapshot, "orderAction": _embedded(confirmed)}, create=False)
    tag = state.version_tag("o-1")
    separate = state.post_action("o-1", orjson.dumps({**_embedded(confirmed), "versionTag": tag}))
    assert separate.status == 202
    report = audit(
        events=[created, confirmed], journal=state.journal(), outcomes=_outcomes(created, confirmed)
    )
    assert (report.actions_accepted, report.embedded_actions) == (2, 1)
    assert (report.duplicate_actions, report.duplicated_event_ids) == (1, [confirmed.event_id])
    assert report.wrong_tag == []


def test_audit_flags_an_action_embedded_in_two_writes(state: EngageState) -> None:
    """A write repeated with its embedded action runs the action twice: a duplicate."""
    created, confirmed = _stream()
    _write(state, created.event["data"]["order"], create=True)
    snapshot = {**confirmed.event["data"]["order"], "orderAction": _embedded(confirmed)}
    _write(state, snapshot, create=False)
    _write(state, snapshot, create=False)
    report = audit(
        events=[created, confirmed], journal=state.journal(), outcomes=_outcomes(created, confirmed)
    )
    assert (report.embedded_actions, report.duplicate_actions) == (2, 1)


def test_audit_flags_an_action_embedded_in_the_wrong_write(state: EngageState) -> None:
    """The confirmation's action embedded in the create rides on the wrong tag."""
    created, confirmed = _stream()
    _write(
        state, {**created.event["data"]["order"], "orderAction": _embedded(confirmed)}, create=True
    )
    _write(state, confirmed.event["data"]["order"], create=False)
    report = audit(
        events=[created, confirmed], journal=state.journal(), outcomes=_outcomes(created, confirmed)
    )
    assert report.wrong_tag == [confirmed.event_id]
    assert not report.correct
