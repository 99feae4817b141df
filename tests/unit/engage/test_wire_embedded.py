"""The embedded order action's wire readings: its shape, where it goes, how a job reports it."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.engage import wire as engage_wire
from consumer.engage.wire import EmbeddedResult

FIELD = "orderAction"


def test_the_embedded_action_is_the_action_body_without_a_version_tag() -> None:
    assert engage_wire.embedded_action(action="ConfirmOrder", language=None, data=None) == {
        "action": "ConfirmOrder"
    }
    assert engage_wire.embedded_action(action="A", language="sv-SE", data={"k": 1}) == {
        "action": "A",
        "language": "sv-SE",
        "data": {"k": 1},
    }


def test_with_embedded_action_copies_the_order_and_adds_the_field() -> None:
    order = {"orderId": "O-1", "status": "Paid"}
    body = engage_wire.with_embedded_action(order, {"action": "A"}, field="embeddedAction")
    assert body == {"orderId": "O-1", "status": "Paid", "embeddedAction": {"action": "A"}}
    assert "embeddedAction" not in order


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({FIELD: {"status": "Succeeded"}}, EmbeddedResult(state="succeeded")),
        (
            {FIELD: {"status": "Failed", "errorCode": "OrderHasNoContact", "message": "none"}},
            EmbeddedResult(state="failed", error_code="OrderHasNoContact", reason="none"),
        ),
        (
            {FIELD: {"errorCode": "Whatever"}},
            EmbeddedResult(state="failed", error_code="Whatever", reason="Whatever"),
        ),
        ({FIELD: {"status": "NotRun"}}, EmbeddedResult(state="not_run")),
        ({"status": "Succeeded"}, EmbeddedResult(state="unreported")),
        (None, EmbeddedResult(state="unreported")),
        ({FIELD: "Succeeded"}, EmbeddedResult(state="unreported")),
        ({FIELD: {"status": "Queued"}}, EmbeddedResult(state="unreported", reason="queued")),
    ],
)
def test_embedded_action_result_reads_the_jobs_report(body: Any, expected: EmbeddedResult) -> None:
    assert engage_wire.embedded_action_result(body, field=FIELD) == expected


@pytest.mark.parametrize(
    ("status", "body", "refused"),
    [
        (400, {"errorCode": "InvalidOrderAction", "message": "bad"}, True),
        (400, {"message": "orderAction.action must be a string"}, True),
        (400, '{"errorCode": "InvalidOrderAction", "mess', True),
        (400, {"message": "email is not valid"}, False),
        (404, {"errorCode": "InvalidOrderAction"}, False),
        (400, None, False),
    ],
)
def test_a_write_refused_for_its_action_says_so(status: int, body: Any, refused: bool) -> None:
    assert engage_wire.embedded_action_refused(status, body, field=FIELD) is refused
