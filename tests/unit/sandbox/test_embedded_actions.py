"""Embedded order actions in the simulator: the rules, the settings, and the model (fake clock)."""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import pytest

from consumer.sandbox.engage.actions import (
    Refusal,
    action_fields,
    embedded_action,
    embedded_report,
    has_contact,
)
from consumer.sandbox.engage.cli import add_arguments, settings_from_args
from consumer.sandbox.engage.settings import Delay, SimulatorSettings, settings_to_argv
from consumer.sandbox.engage.state import Answer, EngageState, body_digest

CONTACT = {"matchKey": "a@example.com", "matchKeyType": "Email"}
ORDER = {"orderId": "o-1", "contact": CONTACT}
ACTION = {"action": "ConfirmOrder", "language": "sv-SE", "data": {"_eventId": "e-1"}}


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _state(clock: FakeClock, **changes: Any) -> EngageState:
    settings = SimulatorSettings(job_delay=Delay.fixed(1.0), seed=1, **changes)
    return EngageState(settings, clock=clock)


def _body(value: object) -> bytes:
    return orjson.dumps(value)


def _job_id(answer: Answer) -> str:
    assert answer.status == 202, answer
    job_id: str = answer.body["jobId"]
    return job_id


def _without_times(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in {"seq", "t", "jobId"}} for e in entries]


# The rules.
def test_embedded_action_takes_the_action_fields_without_a_tag() -> None:
    """A valid embedded action gives the action endpoint's fields minus versionTag."""
    assert embedded_action(ACTION, field="orderAction") == ACTION
    assert embedded_action({"action": "Custom"}, field="orderAction") == {
        "action": "Custom",
        "language": None,
        "data": None,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "orderAction must be a JSON object"),
        ("ConfirmOrder", "orderAction must be a JSON object"),
        ([ACTION], "orderAction must be a JSON object"),
        ({**ACTION, "versionTag": "t"}, "orderAction applies to its own write and must not"),
        ({"language": "sv-SE"}, "orderAction: action is required and must be a string"),
        ({"action": ""}, "orderAction: action is required and must be a string"),
        ({"action": 7}, "orderAction: action is required and must be a string"),
        ({"action": "ConfirmOrder", "language": 1}, "orderAction: language must be a string"),
    ],
)
def test_malformed_embedded_action_is_refused_as_invalid_order_action(
    value: object, message: str
) -> None:
    """Not an object, a versionTag, or the action endpoint's own 400 rules: InvalidOrderAction."""
    refusal = embedded_action(value, field="orderAction")
    assert isinstance(refusal, Refusal)
    assert refusal.code == "InvalidOrderAction"
    assert refusal.message.startswith(message)


def test_action_endpoint_rules_are_unchanged() -> None:
    """The tagged request still needs its versionTag, with the endpoint's own codes."""
    assert action_fields({**ACTION, "versionTag": "t"}, tagged=True) == {
        "action": "ConfirmOrder",
        "versionTag": "t",
        "language": "sv-SE",
        "data": {"_eventId": "e-1"},
    }
    assert action_fields(ACTION, tagged=True) == Refusal(
        code="InvalidVersionTag", message="versionTag is required and must be a string"
    )
    assert action_fields({}, tagged=True) == Refusal(
        code="InvalidAction", message="action is required and must be a string"
    )


def test_has_contact_needs_a_match_key() -> None:
    """The same condition as the action endpoint's 422: a contact with a matchKey."""
    assert has_contact(ORDER)
    assert not has_contact({"orderId": "o-1"})
    assert not has_contact({"contact": {"matchKey": ""}})
    assert not has_contact({"contact": "a@example.com"})


def test_embedded_report_shapes() -> None:
    """The three reports a job answer can carry."""
    assert embedded_report("Succeeded") == {"status": "Succeeded"}
    assert embedded_report("Failed") == {"status": "Failed", "errorCode": "OrderHasNoContact"}
    assert embedded_report("NotRun") == {"status": "NotRun"}


# The setting.
def _parse(argv: list[str]) -> SimulatorSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(argv))


def test_field_name_setting_defaults_to_order_action_and_travels_as_a_flag() -> None:
    """``embedded_action_field`` is ``orderAction`` unless ``--embedded-action-field`` says."""
    assert SimulatorSettings().embedded_action_field == "orderAction"
    assert _parse([]).embedded_action_field == "orderAction"
    settings = SimulatorSettings(embedded_action_field="action")
    assert _parse(settings_to_argv(settings)) == settings


@pytest.mark.parametrize("name", ["", "orderId", "versionTag"])
def test_field_name_setting_rejects_names_that_cannot_work(name: str) -> None:
    """An empty name, or one the order or its tag already use, is refused at construction."""
    with pytest.raises(ValueError, match="embedded_action_field"):
        SimulatorSettings(embedded_action_field=name)


# The model.
def test_embedded_action_runs_when_the_job_succeeds(clock: FakeClock) -> None:
    """Journaled like a separate action on the write's new tag, plus embedded and jobId."""
    state = _state(clock)
    job_id = _job_id(state.create_order(_body({**ORDER, "orderAction": ACTION})))
    pending = state.read_job(job_id)
    assert pending.body == {"jobId": job_id, "orderId": "o-1", "status": "Processing"}
    assert [e["kind"] for e in state.journal()] == ["write"]
    clock.advance(1.0)
    done = state.read_job(job_id)
    assert (done.status, done.body) == (
        302,
        {
            "jobId": job_id,
            "orderId": "o-1",
            "status": "Succeeded",
            "orderAction": {"status": "Succeeded"},
        },
    )
    tag = state.version_tag("o-1")
    processed, action = state.journal()[1:]
    assert action == {
        "seq": processed["seq"] + 1,
        "t": processed["t"],
        "kind": "action",
        "orderId": "o-1",
        "action": "ConfirmOrder",
        "versionTag": tag,
        "language": "sv-SE",
        "data": {"_eventId": "e-1"},
        "embedded": True,
        "jobId": job_id,
    }
    assert state.stats()["actionsAccepted"] == 1
    assert state.stats()["embeddedActions"] == {"succeeded": 1, "failed": 0, "notRun": 0}


def test_embedded_action_on_an_order_without_contact_fails_but_the_job_succeeds(
    clock: FakeClock,
) -> None:
    """No contact: the write is stored, the job answers 302, the action reports the 422 code."""
    state = _state(clock)
    job_id = _job_id(state.create_order(_body({"orderId": "o-1", "orderAction": ACTION})))
    clock.advance(1.0)
    done = state.read_job(job_id)
    assert done.status == 302
    assert done.body["orderAction"] == {"status": "Failed", "errorCode": "OrderHasNoContact"}
    assert state.order("o-1") == {"orderId": "o-1"}
    assert [e["kind"] for e in state.journal()] == ["write", "processed"]
    assert state.stats()["actionsAccepted"] == 0


def test_embedded_action_of_a_failed_job_does_not_run(clock: FakeClock) -> None:
    """The job fails: its answer says NotRun and nothing but the failure is journaled."""
    state = _state(clock)
    state.create_order(_body(ORDER))
    clock.advance(1.0)
    state.fail_next_job("o-1", "unprocessable")
    job_id = _job_id(state.replace_order("o-1", _body({**ORDER, "orderAction": ACTION})))
    clock.advance(1.0)
    failed = state.read_job(job_id)
    assert (failed.status, failed.body) == (
        422,
        {
            "jobId": job_id,
            "orderId": "o-1",
            "status": "Failed",
            "errorCode": "UnprocessableOrder",
            "message": "the replace job failed (unprocessable, simulated)",
            "orderAction": {"status": "NotRun"},
        },
    )
    assert [e["kind"] for e in state.journal()] == ["write", "processed", "write", "job_failed"]
    assert state.stats()["embeddedActions"] == {"succeeded": 0, "failed": 0, "notRun": 1}


@pytest.mark.parametrize(
    "embedded",
    [None, [], {"action": "ConfirmOrder", "versionTag": "t"}, {"language": "sv-SE"}],
)
def test_malformed_embedded_action_refuses_the_whole_write(
    clock: FakeClock, embedded: object
) -> None:
    """POST and PUT answer 400 InvalidOrderAction: no job, nothing journaled or stored."""
    state = _state(clock)
    create = state.create_order(_body({**ORDER, "orderAction": embedded}))
    assert create.status == 400
    assert create.body["errorCode"] == "InvalidOrderAction"
    assert set(create.body) == {"errorCode", "message"}
    assert state.journal() == []
    state.create_order(_body(ORDER))
    clock.advance(1.0)
    tag = state.version_tag("o-1")
    replace = state.replace_order("o-1", _body({"contact": {}, "orderAction": embedded}))
    assert (replace.status, replace.body["errorCode"]) == (400, "InvalidOrderAction")
    clock.advance(1.0)
    assert (state.order("o-1"), state.version_tag("o-1")) == (ORDER, tag)
    assert [e["kind"] for e in state.journal()] == ["write", "processed"]
    assert state.stats()["jobs"]["accepted"] == 1


def test_field_is_stripped_so_the_write_is_the_same_as_without_it(clock: FakeClock) -> None:
    """Same stored body, same digest, and (same seed) the same tags as plain writes."""
    plain, embedded = _state(clock), _state(clock)
    replacement = {**ORDER, "status": "Shipped"}
    plain.create_order(_body(ORDER))
    embedded.create_order(_body({**ORDER, "orderAction": ACTION}))
    clock.advance(1.0)
    plain.replace_order("o-1", _body(replacement))
    embedded.replace_order("o-1", _body({"orderAction": {"action": "Ship"}, **replacement}))
    clock.advance(1.0)
    assert embedded.order("o-1") == plain.order("o-1") == replacement
    assert embedded.version_tag("o-1") == plain.version_tag("o-1")
    writes = [e for e in embedded.journal() if e["kind"] in {"write", "processed"}]
    assert _without_times(writes) == _without_times(plain.journal())
    assert writes[0]["bodyDigest"] == body_digest(ORDER)
    assert writes[2]["bodyDigest"] == body_digest(replacement)


def test_write_without_embedded_action_has_no_report_and_custom_field_names_work(
    clock: FakeClock,
) -> None:
    """The report appears only for a write that carried one, under the configured name."""
    state = _state(clock, embedded_action_field="embeddedAction")
    plain = _job_id(state.create_order(_body(ORDER)))
    clock.advance(1.0)
    assert "embeddedAction" not in state.read_job(plain).body
    # With another name configured, orderAction is just an order field like any other.
    job = _job_id(
        state.replace_order(
            "o-1", _body({**ORDER, "embeddedAction": ACTION, "orderAction": "kept"})
        )
    )
    clock.advance(1.0)
    assert state.read_job(job).body["embeddedAction"] == {"status": "Succeeded"}
    assert state.order("o-1") == {**ORDER, "orderAction": "kept"}


def test_embedded_action_ignores_writes_queued_behind_its_own(clock: FakeClock) -> None:
    """refuse_actions_while_writing does not apply: the action is tied to its own write."""
    state = _state(clock, refuse_actions_while_writing=True)
    first = _job_id(state.create_order(_body({**ORDER, "orderAction": ACTION})))
    _job_id(state.replace_order("o-1", _body(ORDER)))
    clock.advance(1.0)
    assert state.read_job(first).body["orderAction"] == {"status": "Succeeded"}
    tags = [e["versionTag"] for e in state.journal() if e["kind"] in {"processed", "action"}]
    assert tags == [tags[0], tags[0]]
