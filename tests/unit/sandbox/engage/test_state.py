"""The simulator's pure model, driven by a fake clock: jobs, tags, actions, limits, journal."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from consumer.sandbox.engage.settings import Delay, Faults, SimulatorSettings
from consumer.sandbox.engage.state import Answer, EngageState, body_digest, job_location


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


ORDER = {"orderId": "o-1", "contact": {"matchKey": "a@example.com", "matchKeyType": "Email"}}


def _body(value: object) -> bytes:
    return orjson.dumps(value)


def _state(clock: FakeClock, **changes: Any) -> EngageState:
    settings = SimulatorSettings(job_delay=Delay.fixed(1.0), seed=1, **changes)
    return EngageState(settings, clock=clock)


def _job_id(answer: Answer) -> str:
    assert answer.status == 202, answer
    job_id: str = answer.body["jobId"]
    return job_id


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_write_is_accepted_with_a_job_link_and_applied_when_the_job_finishes(
    clock: FakeClock,
) -> None:
    """A create answers 202 + job link; the order (and its tag) appear only after the delay."""
    state = _state(clock)
    answer = state.create_order(_body(ORDER))
    job_id = _job_id(answer)
    assert answer == Answer(
        status=202,
        body={"jobId": job_id, "location": job_location(job_id)},
        location=job_location(job_id),
    )
    assert state.read_job(job_id).body["status"] == "Processing"
    assert state.read_order("o-1").status == 404
    clock.advance(1.0)
    assert state.read_job(job_id).status == 302
    assert state.read_job(job_id).location == "/api/v3/orders/o-1"
    order = state.read_order("o-1")
    assert order.status == 200
    assert order.body == {**ORDER, "versionTag": state.version_tag("o-1")}


def test_every_processed_write_gets_a_new_tag(clock: FakeClock) -> None:
    """Replacing an order with the same body still changes its versionTag."""
    state = _state(clock)
    state.create_order(_body(ORDER))
    clock.advance(1)
    first = state.version_tag("o-1")
    _job_id(state.replace_order("o-1", _body(ORDER)))
    assert state.version_tag("o-1") == first
    clock.advance(1)
    second = state.version_tag("o-1")
    assert None not in (first, second)
    assert first != second


def test_jobs_of_one_order_finish_in_submission_order(clock: FakeClock) -> None:
    """A later write waits for the earlier one: it starts queued and finishes after it."""
    state = _state(clock)
    first = _job_id(state.create_order(_body(ORDER)))
    second = _job_id(state.replace_order("o-1", _body({**ORDER, "status": "Shipped"})))
    assert state.read_job(second).body["status"] == "Queued"
    clock.advance(1.0)
    assert [state.read_job(first).status, state.read_job(second).status] == [302, 202]
    assert state.read_job(second).body["status"] == "Processing"
    clock.advance(1.0)
    assert state.read_job(second).status == 302
    assert state.order("o-1") == {**ORDER, "status": "Shipped"}
    kinds = [(e["kind"], e["jobId"]) for e in state.journal()]
    assert kinds == [
        ("write", first),
        ("write", second),
        ("processed", first),
        ("processed", second),
    ]


def test_existence_checks_see_writes_already_accepted(clock: FakeClock) -> None:
    """POST twice is 409 even while the first create runs; PUT right after POST is accepted."""
    state = _state(clock)
    _job_id(state.create_order(_body(ORDER)))
    assert state.create_order(_body(ORDER)).status == 409
    _job_id(state.replace_order("o-1", _body(ORDER)))
    assert state.replace_order("absent", _body({"orderId": "absent"})).status == 404
    assert state.delete_order("absent").status == 404


def test_delete_removes_the_order_and_its_tag_when_processed(clock: FakeClock) -> None:
    """After a DELETE's job, GET answers 404 and a new POST is allowed again."""
    state = _state(clock)
    state.create_order(_body(ORDER))
    clock.advance(1)
    _job_id(state.delete_order("o-1"))
    assert state.read_order("o-1").status == 200
    clock.advance(1)
    assert state.read_order("o-1").status == 404
    assert state.version_tag("o-1") is None
    _job_id(state.create_order(_body(ORDER)))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{", "InvalidJson"),
        (b"[]", "InvalidBody"),
        (_body({"contact": {}}), "InvalidOrder"),
        (_body({"orderId": 7}), "InvalidOrder"),
    ],
)
def test_malformed_writes_are_400(clock: FakeClock, body: bytes, code: str) -> None:
    """A create without a string orderId, or not a JSON object, is refused with 400."""
    answer = _state(clock).create_order(body)
    assert (answer.status, answer.body["errorCode"]) == (400, code)


def test_put_with_a_different_order_id_in_the_body_is_400(clock: FakeClock) -> None:
    """The path names the order; a body naming another one is refused."""
    state = _state(clock)
    state.create_order(_body(ORDER))
    assert state.replace_order("o-1", _body({"orderId": "o-2"})).status == 400


def test_change_status_and_delivery_merge_into_the_order(clock: FakeClock) -> None:
    """change-status merges top-level fields; change-delivery merges into delivery."""
    state = _state(clock)
    state.create_order(_body({**ORDER, "delivery": {"method": "Post"}}))
    _job_id(state.change_order("o-1", "change-status", _body({"status": "Shipped"})))
    _job_id(state.change_order("o-1", "change-delivery", _body({"trackingNumber": "T1"})))
    assert state.change_order("nope", "change-status", _body({})).status == 404
    clock.advance(3)
    assert state.order("o-1") == {
        **ORDER,
        "status": "Shipped",
        "delivery": {"method": "Post", "trackingNumber": "T1"},
    }


def test_scripted_job_failure_keeps_the_order_unchanged(clock: FakeClock) -> None:
    """A failed job answers its failure status and body; the order keeps its old tag."""
    state = _state(clock)
    state.create_order(_body(ORDER))
    clock.advance(1)
    tag = state.version_tag("o-1")
    state.fail_next_job("o-1", "invalid")
    job_id = _job_id(state.replace_order("o-1", _body({**ORDER, "status": "X"})))
    clock.advance(1)
    assert state.read_job(job_id) == Answer(
        status=400,
        body={
            "jobId": job_id,
            "orderId": "o-1",
            "status": "Failed",
            "errorCode": "InvalidOrder",
            "message": "the replace job failed (invalid, simulated)",
        },
    )
    assert state.version_tag("o-1") == tag
    assert state.order("o-1") == ORDER
    last = state.journal()[-1]
    assert {k: last[k] for k in ("kind", "jobId", "versionTag", "failure", "status")} == {
        "kind": "job_failed",
        "jobId": job_id,
        "versionTag": None,
        "failure": "invalid",
        "status": 400,
    }


def test_a_failed_create_leaves_the_order_absent(clock: FakeClock) -> None:
    """With every job failing, a create never makes the order exist, so PUT stays 404."""
    state = _state(clock, job_failure_rate=1.0, job_failure_kinds=("internal",))
    job_id = _job_id(state.create_order(_body(ORDER)))
    assert state.replace_order("o-1", _body(ORDER)).status == 404
    clock.advance(1)
    assert state.read_job(job_id).status == 500
    assert state.read_order("o-1").status == 404


def _confirmed(state: EngageState, clock: FakeClock, order: dict[str, Any] = ORDER) -> str:
    state.create_order(_body(order))
    clock.advance(1)
    tag = state.version_tag(order["orderId"])
    assert tag is not None
    return tag


def test_action_with_the_current_tag_is_accepted_and_journaled(clock: FakeClock) -> None:
    """202, and the journal keeps the action with the tag, language and data it carried."""
    state = _state(clock)
    tag = _confirmed(state, clock)
    request = {
        "action": "ConfirmShipment",
        "versionTag": tag,
        "language": "sv-SE",
        "data": {"n": 1},
    }
    assert state.post_action("o-1", _body(request)) == Answer(status=202)
    entry = state.journal()[-1]
    assert entry == {"seq": entry["seq"], "t": 1.0, "kind": "action", "orderId": "o-1", **request}


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        (b"not json", "InvalidJson"),
        (_body({"versionTag": "t"}), "InvalidAction"),
        (_body({"action": 5, "versionTag": "t"}), "InvalidAction"),
        (_body({"action": "ConfirmOrder"}), "InvalidVersionTag"),
        (_body({"action": "ConfirmOrder", "versionTag": "t", "language": 1}), "InvalidLanguage"),
    ],
)
def test_malformed_actions_are_400(clock: FakeClock, request_body: bytes, code: str) -> None:
    """Bad JSON, a missing or non-string action or versionTag, are 400 and not journaled."""
    state = _state(clock)
    _confirmed(state, clock)
    answer = state.post_action("o-1", request_body)
    assert (answer.status, answer.body["errorCode"]) == (400, code)
    assert [e["kind"] for e in state.journal()] == ["write", "processed"]


def test_action_refusals_404_stale_tag_unknown_order_and_422_without_contact(
    clock: FakeClock,
) -> None:
    """A stale tag or unknown order is 404; an order without contact.matchKey is 422."""
    state = _state(clock)
    old = _confirmed(state, clock)
    state.replace_order("o-1", _body(ORDER))
    clock.advance(1)
    assert state.post_action("o-1", _body({"action": "A", "versionTag": old})).status == 404
    assert state.post_action("nope", _body({"action": "A", "versionTag": old})).status == 404
    no_contact = _confirmed(state, clock, {"orderId": "o-2", "contact": {"matchKeyType": "Email"}})
    answer = state.post_action("o-2", _body({"action": "A", "versionTag": no_contact}))
    assert (answer.status, answer.body["errorCode"]) == (422, "OrderHasNoContact")
    assert [e["kind"] for e in state.journal()].count("action") == 0


def test_action_with_the_old_tag_while_a_write_runs(clock: FakeClock) -> None:
    """Engage accepts the stored tag while a write is pending; the strict setting refuses it."""
    lenient, strict = _state(clock), _state(clock, refuse_actions_while_writing=True)
    for state in (lenient, strict):
        tag = _confirmed(state, clock)
        state.replace_order("o-1", _body(ORDER))
        request = _body({"action": "A", "versionTag": tag})
        assert state.post_action("o-1", request).status == (404 if state is strict else 202)


def test_rate_limit_is_a_token_bucket_per_key(clock: FakeClock) -> None:
    """Above the burst a key gets 429 with Retry-After; tokens refill; other keys are apart."""
    state = _state(clock, rate_limit=10.0, rate_burst=3, retry_after=2)
    assert [state.admit("a") for _ in range(3)] == [None, None, None]
    limited = state.admit("a")
    assert limited is not None
    assert (limited.status, limited.retry_after) == (429, 2)
    assert state.admit("b") is None
    clock.advance(0.1)
    assert state.admit("a") is None
    assert state.admit("a") is not None
    assert state.stats()["rateLimited"] == 2


def test_no_retry_after_when_not_configured(clock: FakeClock) -> None:
    """With retry_after None the 429 carries no Retry-After."""
    state = _state(clock, rate_limit=1.0, retry_after=None)
    state.admit("a")
    assert state.admit("a") == Answer(
        status=429,
        body={"errorCode": "TooManyRequests", "message": "more than 1 requests/s"},
    )


def test_journal_pages_with_since_and_limit_and_drops_oldest(clock: FakeClock) -> None:
    """since/limit page through entries; past journal_limit the oldest go and are counted."""
    state = _state(clock, journal_limit=3)
    for n in range(3):
        state.create_order(_body({"orderId": f"o-{n}"}))
    clock.advance(1)
    assert [e["seq"] for e in state.journal()] == [4, 5, 6]
    assert [e["seq"] for e in state.journal(since=4, limit=1)] == [5]
    assert state.journal(since=6) == []
    assert state.stats()["journal"] == {"entries": 3, "lastSeq": 6, "dropped": 3}


def test_finished_jobs_beyond_retention_are_forgotten(clock: FakeClock) -> None:
    """Only the last job_retention finished jobs answer; older ones are 404 like unknown ones."""
    state = _state(clock, job_retention=1)
    first = _job_id(state.create_order(_body({"orderId": "a"})))
    second = _job_id(state.create_order(_body({"orderId": "b"})))
    clock.advance(1)
    assert (state.read_job(first).status, state.read_job(second).status) == (404, 302)


def test_outage_runs_for_its_seconds(clock: FakeClock) -> None:
    """Setting faults with an outage starts it now; it ends after outage_seconds."""
    state = _state(clock)
    assert state.outage_remaining() == 0
    state.set_faults(Faults(outage_seconds=2))
    clock.advance(1.5)
    assert state.outage_remaining() == pytest.approx(0.5)
    clock.advance(1)
    assert state.outage_remaining() == 0


def test_stats_count_requests_jobs_and_actions(clock: FakeClock) -> None:
    """Stats sum requests by route and status, and count jobs, actions and orders."""
    state = _state(clock)
    tag = _confirmed(state, clock)
    state.post_action("o-1", _body({"action": "A", "versionTag": tag}))
    state.count_request("POST /x", 202)
    state.count_request("POST /x", 202)
    state.count_request("POST /x", "dropped")
    state.count_fault("drop")
    stats = state.stats()
    assert stats["requests"] == {"POST /x": {"202": 2, "dropped": 1}}
    assert stats["requestsTotal"] == 3
    assert stats["faultsInjected"] == {"drop": 1}
    assert stats["jobs"] == {"accepted": 1, "pending": 0, "processed": 1, "failed": 0}
    assert (stats["actionsAccepted"], stats["orders"]) == (1, 1)


def test_reset_forgets_everything_but_keeps_sequence_and_faults(clock: FakeClock) -> None:
    """After reset there are no orders, jobs or entries; new entries continue the sequence."""
    state = _state(clock)
    _confirmed(state, clock)
    state.set_faults(Faults(error_rate=0.5))
    state.reset()
    assert state.read_order("o-1").status == 404
    assert state.journal() == []
    assert state.faults == Faults(error_rate=0.5)
    state.create_order(_body(ORDER))
    assert [e["seq"] for e in state.journal()] == [3]


def test_same_seed_gives_the_same_ids_and_tags(clock: FakeClock) -> None:
    """A seeded simulator is reproducible: same job ids and version tags."""
    runs = []
    for _ in range(2):
        state = _state(FakeClock())
        job_id = _job_id(state.create_order(_body(ORDER)))
        state._clock = lambda: 2000.0  # far past the job's end
        runs.append((job_id, state.version_tag("o-1")))
    assert runs[0] == runs[1]


def test_write_entries_carry_a_digest_of_the_body_that_ignores_key_order(
    clock: FakeClock,
) -> None:
    """The journal's bodyDigest is the same for equal bodies in any key order, else differs."""
    state = _state(clock)
    state.create_order(b'{"orderId": "a", "status": "X", "contact": {"matchKey": "m"}}')
    state.create_order(b'{"contact": {"matchKey": "m"}, "status": "X", "orderId": "b"}')
    clock.advance(1)
    state.replace_order("a", b'{"status": "X", "contact": {"matchKey": "m"}}')
    digests = [e["bodyDigest"] for e in state.journal() if e["kind"] == "write"]
    a = body_digest({"orderId": "a", "status": "X", "contact": {"matchKey": "m"}})
    assert digests[0] == digests[2] == a
    assert digests[1] != a
    state.delete_order("a")
    assert state.journal()[-1]["bodyDigest"] is None
