"""Engage's undocumented wire readings and the Retry-After parser, one behaviour per test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumer.engage import wire as engage_wire
from consumer.engage.classify import parse_retry_after
from consumer.engage.wire import JobState


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (302, None, JobState(state="done")),
        (202, {"status": "Queued"}, JobState(state="pending")),
        (200, {"status": "Processing"}, JobState(state="pending")),
        (200, {"status": "Succeeded"}, JobState(state="done")),
        (200, {"status": "Failed", "message": "bad"}, JobState(state="failed", reason="bad")),
        (422, {"status": "Failed", "message": "no"}, JobState(state="failed", reason="no")),
        (400, None, JobState(state="failed", reason="HTTP 400")),
        (500, {"status": "Failed", "message": "crash"}, JobState(state="failed", reason="crash")),
        (503, None, JobState(state="transient", reason="HTTP 503")),
        (429, {"message": "slow down"}, JobState(state="transient", reason="slow down")),
        # A refused API key is not the job's failure: poll again once the key works.
        (401, None, JobState(state="transient", reason="HTTP 401")),
        (403, {"message": "forbidden"}, JobState(state="transient", reason="forbidden")),
    ],
)
def test_job_state_reads_every_poll_answer(status: int, body: object, expected: JobState) -> None:
    """302 is done, 202/non-final 200 pending, a Failed body or 4xx failed, 429/bare 5xx retry."""
    assert engage_wire.job_state(status, body) == expected


def test_job_link_prefers_location_then_body_fields() -> None:
    """The Location header wins; without it a link field, then a bare jobId, names the job."""
    assert engage_wire.job_link("/api/v3/orders/jobs/a", {"jobId": "b"}) == "/api/v3/orders/jobs/a"
    assert engage_wire.job_link(None, {"location": "/x/jobs/c"}) == "/x/jobs/c"
    assert engage_wire.job_link(None, {"jobId": "d e"}) == "/api/v3/orders/jobs/d%20e"
    assert engage_wire.job_link(None, {"other": 1}) is None
    assert engage_wire.job_link(None, None) is None


def test_version_tag_is_read_from_the_top_level_only() -> None:
    """Only a non-empty top-level string `versionTag` counts."""
    assert engage_wire.version_tag({"versionTag": "t"}) == "t"
    assert engage_wire.version_tag({"order": {"versionTag": "t"}}) is None
    assert engage_wire.version_tag({"versionTag": ""}) is None
    assert engage_wire.version_tag([]) is None


def test_already_exists_is_409_or_saying_so() -> None:
    """A POST refusal means "already there" on 409, or on 400/422 whose text says it."""
    assert engage_wire.order_already_exists(409, None)
    assert engage_wire.order_already_exists(400, {"message": "Order already exists"})
    assert not engage_wire.order_already_exists(400, {"message": "bad json"})
    assert not engage_wire.order_already_exists(404, {"message": "already exists"})


def test_action_body_omits_absent_optional_fields() -> None:
    """language and data are sent only when given."""
    assert engage_wire.action_body(action="A", version_tag="t", language=None, data=None) == {
        "action": "A",
        "versionTag": "t",
    }
    assert engage_wire.action_body(action="A", version_tag="t", language="sv-SE", data={}) == {
        "action": "A",
        "versionTag": "t",
        "language": "sv-SE",
        "data": {},
    }


def test_order_paths_percent_encode_the_id() -> None:
    """An orderId with a slash or space cannot escape its path segment."""
    assert engage_wire.action_path("a/b c") == "/api/v3/orders/a%2Fb%20c/action"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        ("1.5", 1.5),
        ("-4", 0.0),
        ("nan", None),
        ("soon", None),
        ("999999", 3600.0),
        ("Wed, 01 Jan 2025 00:00:30 GMT", 30.0),
        ("Tue, 31 Dec 2024 23:59:00 GMT", 0.0),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(header: str | None, expected: float) -> None:
    """Delta-seconds or an HTTP date become seconds to wait, clamped to [0, 1 h]; junk is None."""
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == expected
