"""How an action that rode in a write ends (``rider_result``), and when its job is polled late."""

from __future__ import annotations

from typing import Any

import pytest

from consumer.engage import EmbeddedReport, EmbeddedResult
from consumer.ratebudget import RateBudget, RateBudgetSettings
from consumer.service.dispatch import (
    DispatchResult,
    RiderResult,
    patient_or_saturated,
    rider_result,
)


def write(status: str = "accepted", reason: str | None = None) -> DispatchResult:
    return DispatchResult(
        operation="upsert",
        status=status,  # type: ignore[arg-type]
        http_status=202,
        attempts=1,
        reason=reason,
        detail="why" if reason else None,
        engage_ms=1.0,
        requests=2,
    )


def report(**fields: Any) -> EmbeddedReport:
    return EmbeddedReport(**({"carried": True} | fields))


@pytest.mark.parametrize(
    ("embedded", "written", "expected"),
    [
        (report(result=EmbeddedResult(state="succeeded")), write(), RiderResult(status="accepted")),
        # A job that succeeded without a word on its action: Engage says it "will be used".
        (
            report(result=EmbeddedResult(state="unreported")),
            write(),
            RiderResult(status="accepted"),
        ),
        (
            report(result=EmbeddedResult(state="failed", error_code="OrderHasNoContact")),
            write(),
            RiderResult(status="rejected", reason="no_contact"),
        ),
        (
            report(result=EmbeddedResult(state="failed", error_code="X", reason="x")),
            write(),
            RiderResult(status="rejected", reason="action_failed", detail="x"),
        ),
        (
            report(result=EmbeddedResult(state="not_run")),
            write(),
            RiderResult(status="failed", reason="action_not_run"),
        ),
        (
            report(),
            write("failed", "job_failed"),
            RiderResult(status="failed", reason="write_failed", detail="why"),
        ),
        (
            report(),
            write("failed", "job_timeout"),
            RiderResult(status="unknown", reason="job_timeout", detail="why"),
        ),
        (
            report(),
            write("failed", "job_lost"),
            RiderResult(status="unknown", reason="job_lost", detail="why"),
        ),
        (
            report(),
            write("failed", "retries_exhausted"),
            RiderResult(status="failed", reason="write_failed", detail="why"),
        ),
        (
            report(carried=False, refused="400: InvalidOrderAction"),
            write(),
            RiderResult(status="rejected", reason="bad_action", detail="400: InvalidOrderAction"),
        ),
    ],
)
def test_each_rule(
    embedded: EmbeddedReport, written: DispatchResult, expected: RiderResult
) -> None:
    assert rider_result(embedded, written) == expected


@pytest.mark.parametrize("written", [write(), write("failed", "job_failed"), write("rejected")])
def test_an_attempt_that_may_have_carried_it_makes_it_unknown_whatever_followed(
    written: DispatchResult,
) -> None:
    result = rider_result(report(carried=False, maybe_sent=True), written)
    assert result is not None
    assert (result.status, result.reason) == ("unknown", "ambiguous")


def test_no_rider_no_result() -> None:
    assert rider_result(None, write()) is None


def test_every_job_is_polled_patiently_while_the_budget_binds() -> None:
    now = [1000.0]
    budget = RateBudget(RateBudgetSettings(ceiling=10.0, burst=10.0), clock=lambda: now[0])
    prompt = patient_or_saturated(lambda: False, budget)
    assert patient_or_saturated(lambda: True, budget)()
    assert not prompt()  # nothing spent: the budget does not bind
    for _ in range(300):  # spending all it allows, 30 s long
        now[0] += 0.1
        assert budget.take_nowait()
    assert budget.saturation() >= 0.9
    assert prompt()
