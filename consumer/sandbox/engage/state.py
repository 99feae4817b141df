"""The Engage simulator's model: orders, asynchronous write jobs, version tags, actions, journal.

Pure and in memory: no sockets, no timers. Time comes from an injected clock, and jobs are not
driven by timers at all: when a write is accepted its job's finish time is computed right away
(after the order's previous job, plus a delay drawn from the settings), and every operation
first applies the jobs whose time has come, in finish-time order. So a write's new
``versionTag`` appears exactly when its job finishes, jobs of one order finish in submission
order, and the journal's sequence numbers follow time, with no background task to manage.

A job's fate (success or the kind of failure) is drawn when the write is accepted. That lets the
existence checks of later writes (POST answers 409 for an existing order, PUT and DELETE 404 for
an absent one) look at the order as it *will* be once its accepted jobs have run, so a create
followed at once by a replace is not refused merely because the create is still processing.

An embedded order action (rules and wire shape in engage_actions) is taken out of a POST or PUT
body before anything else sees the body, rides on the write's job, and runs when that job
finishes: at the job's finish time, journaled right after the job's own entry, on its new tag.

Every answer is an ``Answer`` value; the HTTP layer (engage_http) only encodes it.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import orjson

from consumer.sandbox.engage.actions import (
    NO_CONTACT,
    Refusal,
    action_fields,
    embedded_action,
    embedded_report,
    has_contact,
)
from consumer.sandbox.engage.settings import FAILURE_STATUS, Faults, SimulatorSettings

if TYPE_CHECKING:
    from collections.abc import Callable

Operation = Literal["create", "replace", "delete", "change-status", "change-delivery"]
JobStatus = Literal["pending", "succeeded", "failed"]

_FAILURE_CODES = {
    "invalid": "InvalidOrder",
    "unprocessable": "UnprocessableOrder",
    "internal": "InternalError",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Answer:
    """One HTTP answer: status, JSON body (None: empty), and the headers the simulator sets."""

    status: int
    body: Any = None
    location: str | None = None
    retry_after: int | None = None


def error(status: int, code: str, message: str) -> Answer:
    """An error answer with the simulator's error body ``{"errorCode", "message"}``."""
    return Answer(status=status, body={"errorCode": code, "message": message})


@dataclass(kw_only=True, slots=True)
class Job:
    """One asynchronous write job (mutable: it moves from pending to succeeded or failed)."""

    job_id: str
    order_id: str
    operation: Operation
    method: str
    body: dict[str, Any] | None
    starts_at: float
    due: float
    failure: str | None
    status: JobStatus = "pending"
    version_tag: str | None = None
    #: the embedded order action's fields until the job ends (see engage_actions)
    embedded: dict[str, Any] | None = None
    #: what the job's answer says of that action once the job ended (None: there was none)
    embedded_report: dict[str, str] | None = None


def body_digest(body: dict[str, Any]) -> str:
    """A short digest of an order body that ignores key order and whitespace."""
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=8).hexdigest()


def order_location(order_id: str) -> str:
    """The path of one order, with its id escaped as a single path segment."""
    return f"/api/v3/orders/{quote(order_id, safe='')}"


def job_location(job_id: str) -> str:
    """The path at which a job's status is polled."""
    return f"/api/v3/orders/jobs/{job_id}"


def _parse_object(body: bytes) -> dict[str, Any] | Answer:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error(400, "InvalidJson", f"the body is not valid JSON: {exc}")
    if not isinstance(value, dict):
        return error(400, "InvalidBody", "the body must be a JSON object")
    return value


def _parse_action(body: bytes) -> dict[str, Any] | Answer:
    """The action request's fields, in journal order, or the 400 answer that refuses it."""
    request = _parse_object(body)
    if isinstance(request, Answer):
        return request
    fields = action_fields(request, tagged=True)
    if isinstance(fields, Refusal):
        return error(400, fields.code, fields.message)
    return fields


class EngageState:
    """All of the simulator's state; every public method is one Engage operation or a probe."""

    def __init__(
        self, settings: SimulatorSettings, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._rng = random.Random(settings.seed)
        self.started_at = clock()
        self._faults = settings.faults
        self._outage_until = self.started_at + settings.faults.outage_seconds
        self._seq = 0
        self._tie = itertools.count()
        self.reset()

    # Lifecycle and probes for tests.
    def reset(self) -> None:
        """Forget orders, jobs, journal, counters and rate buckets; keep faults and sequence."""
        self._orders: dict[str, dict[str, Any]] = {}
        self._tags: dict[str, str] = {}
        self._will_exist: set[str] = set()
        self._busy_until: dict[str, float] = {}
        self._jobs: dict[str, Job] = {}
        self._due: list[tuple[float, int, Job]] = []
        self._finished: deque[str] = deque()
        self._fail_next: dict[str, deque[str]] = {}
        self._journal: deque[dict[str, Any]] = deque(maxlen=self.settings.journal_limit)
        self._journal_dropped = 0
        self._buckets: dict[str, list[float]] = {}
        self._requests: Counter[tuple[str, int | str]] = Counter()
        #: the last API requests: (seconds since start, client address, route, status)
        self._request_log: deque[tuple[float, str, str, int | str]] = deque(
            maxlen=self.settings.request_log or 1
        )
        #: API requests answered, and 429s among them, per whole second since the start
        self._per_second: Counter[int] = Counter()
        self._throttled_per_second: Counter[int] = Counter()
        self._faults_injected: Counter[str] = Counter()
        self._jobs_done: Counter[str] = Counter()
        self._embedded_done: Counter[str] = Counter()
        self._actions_accepted = 0
        self._rate_limited = 0

    def order(self, order_id: str) -> dict[str, Any] | None:
        """The stored order (as its last processed write left it), or None."""
        self.run_due()
        order = self._orders.get(order_id)
        return None if order is None else dict(order)

    def version_tag(self, order_id: str) -> str | None:
        """The current versionTag of an order, or None when it is not stored."""
        self.run_due()
        return self._tags.get(order_id)

    def job(self, job_id: str) -> Job | None:
        """A job by id (pending or remembered), for assertions."""
        self.run_due()
        return self._jobs.get(job_id)

    def fail_next_job(self, order_id: str, kind: str = "unprocessable") -> None:
        """Make the next write accepted for ``order_id`` fail with ``kind`` (a scripted fault)."""
        if kind not in FAILURE_STATUS:
            raise ValueError(f"kind must be one of {sorted(FAILURE_STATUS)}")
        self._fail_next.setdefault(order_id, deque()).append(kind)

    # Faults, counters and the rate limit, used by the HTTP layer.
    @property
    def faults(self) -> Faults:
        """The faults currently applied."""
        return self._faults

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults; a non-zero ``outage_seconds`` starts an outage now."""
        self._faults = faults
        self._outage_until = self._clock() + faults.outage_seconds

    def outage_remaining(self) -> float:
        """Seconds left in the current outage (0 when there is none)."""
        return max(0.0, self._outage_until - self._clock())

    def count_request(self, route: str, status: int | str, *, peer: str | None = None) -> None:
        """Count one API request by route and final status (or ``"dropped"``), and per second.

        With ``request_log`` set, ``peer`` (the client's address) is kept with it.
        """
        self._requests[route, status] += 1
        elapsed = self._clock() - self.started_at
        if self.settings.request_log:
            self._request_log.append((round(elapsed, 6), peer or "", route, status))
        second = int(elapsed)
        self._per_second[second] += 1
        if status == 429:
            self._throttled_per_second[second] += 1

    def requests(self) -> list[tuple[float, str, str, int | str]]:
        """The request log: (seconds since start, client address, route, status), oldest first."""
        return list(self._request_log) if self.settings.request_log else []

    def per_second(self) -> list[tuple[int, int, int]]:
        """``(second, requests, 429s)`` for every second since the start that saw a request."""
        return [
            (second, count, self._throttled_per_second[second])
            for second, count in sorted(self._per_second.items())
        ]

    def count_fault(self, kind: str) -> None:
        """Count one injected fault (``error``, ``latency``, ``drop``, ``outage``)."""
        self._faults_injected[kind] += 1

    def admit(self, api_key: str) -> Answer | None:
        """Take one token from the key's bucket: None when admitted, else the 429 answer."""
        rate = self.settings.rate_limit
        if rate is None:
            return None
        burst = self.settings.rate_burst or max(1, math.ceil(rate))
        now = self._clock()
        bucket = self._buckets.get(api_key)
        if bucket is None:
            bucket = self._buckets[api_key] = [float(burst), now]
        tokens = min(float(burst), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return None
        bucket[0] = tokens
        self._rate_limited += 1
        return Answer(
            status=429,
            body={"errorCode": "TooManyRequests", "message": f"more than {rate:g} requests/s"},
            retry_after=self.settings.retry_after,
        )

    # Jobs.
    def run_due(self) -> None:
        """Finish every job whose time has come, in finish-time (then submission) order."""
        due = self._due
        if not due:
            return
        now = self._clock()
        while due and due[0][0] <= now:
            _, _, job = heapq.heappop(due)
            self._finish(job)

    def _finish(self, job: Job) -> None:
        if job.failure is not None:
            job.status = "failed"
            self._jobs_done["failed"] += 1
            outcome: dict[str, Any] = {
                "kind": "job_failed",
                "versionTag": None,
                "failure": job.failure,
                "status": FAILURE_STATUS[job.failure],
            }
        else:
            self._apply(job)
            job.status = "succeeded"
            self._jobs_done["processed"] += 1
            outcome = {"kind": "processed", "versionTag": job.version_tag}
        entry = {
            "kind": outcome.pop("kind"),
            "operation": job.operation,
            "orderId": job.order_id,
            "jobId": job.job_id,
            **outcome,
        }
        self._record(job.due, entry)
        if job.embedded is not None:
            self._run_embedded(job)
        job.body = None  # the order holds it now; a remembered job need not
        self._finished.append(job.job_id)
        if len(self._finished) > self.settings.job_retention:
            self._jobs.pop(self._finished.popleft(), None)

    def _run_embedded(self, job: Job) -> None:
        """Run a finished job's embedded action on its write's tag, as a separate one would."""
        fields, job.embedded = job.embedded or {}, None
        if job.status == "failed":
            job.embedded_report = embedded_report("NotRun")
            self._embedded_done["notRun"] += 1
            return
        if not has_contact(self._orders.get(job.order_id, {})):
            job.embedded_report = embedded_report("Failed")
            self._embedded_done["failed"] += 1
            return
        self._actions_accepted += 1
        self._embedded_done["succeeded"] += 1
        job.embedded_report = embedded_report("Succeeded")
        # The separate action's journal fields, in its order, then what marks it embedded.
        entry = {
            "kind": "action",
            "orderId": job.order_id,
            "action": fields["action"],
            "versionTag": job.version_tag,
            "language": fields["language"],
            "data": fields["data"],
            "embedded": True,
            "jobId": job.job_id,
        }
        self._record(job.due, entry)

    def _take_embedded(self, order: dict[str, Any]) -> dict[str, Any] | Answer | None:
        """Strip the embedded action from an order body: its fields, the 400, or None."""
        name = self.settings.embedded_action_field
        if name not in order:
            return None
        fields = embedded_action(order.pop(name), field=name)
        if isinstance(fields, Refusal):
            return error(400, fields.code, fields.message)
        return fields

    def _apply(self, job: Job) -> None:
        order_id, body = job.order_id, job.body or {}
        if job.operation == "delete":
            self._orders.pop(order_id, None)
            self._tags.pop(order_id, None)
            return
        if job.operation in {"create", "replace"}:
            self._orders[order_id] = body
        elif job.operation == "change-status":
            self._orders[order_id] = {**self._orders.get(order_id, {}), **body}
        else:  # change-delivery
            current = self._orders.get(order_id, {})
            delivery = current.get("delivery")
            merged = {**delivery, **body} if isinstance(delivery, dict) else body
            self._orders[order_id] = {**current, "delivery": merged}
        job.version_tag = self._tags[order_id] = f"{self._rng.getrandbits(64):016x}"

    def _submit(
        self,
        order_id: str,
        operation: Operation,
        method: str,
        body: dict[str, Any] | None,
        embedded: dict[str, Any] | None = None,
    ) -> Answer:
        now = self._clock()
        scripted = self._fail_next.get(order_id)
        if scripted:
            failure: str | None = scripted.popleft()
        elif self.settings.job_failure_rate and self._rng.random() < self.settings.job_failure_rate:
            failure = self._rng.choice(self.settings.job_failure_kinds)
        else:
            failure = None
        if failure is None:
            if operation == "delete":
                self._will_exist.discard(order_id)
            else:
                self._will_exist.add(order_id)
        # Jobs of one order run one after the other: this one starts when the previous ends.
        starts_at = max(now, self._busy_until.get(order_id, now))
        due = starts_at + self.settings.job_delay.sample(self._rng)
        self._busy_until[order_id] = due
        job_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        job = Job(
            job_id=job_id,
            order_id=order_id,
            operation=operation,
            method=method,
            body=body,
            starts_at=starts_at,
            due=due,
            failure=failure,
            embedded=embedded,
        )
        self._jobs[job_id] = job
        heapq.heappush(self._due, (due, next(self._tie), job))
        self._record(
            now,
            {
                "kind": "write",
                "operation": operation,
                "method": method,
                "orderId": order_id,
                "jobId": job_id,
                # Lets an audit tie a versionTag back to the input event whose body made it.
                "bodyDigest": None if body is None else body_digest(body),
            },
        )
        location = job_location(job_id)
        return Answer(status=202, body={"jobId": job_id, "location": location}, location=location)

    # The Engage operations, one per route.
    def create_order(self, body: bytes) -> Answer:
        """POST /api/v3/orders: 202 + job; 400 malformed; 409 when the order exists."""
        self.run_due()
        order = _parse_object(body)
        if isinstance(order, Answer):
            return order
        embedded = self._take_embedded(order)
        if isinstance(embedded, Answer):
            return embedded
        order_id = order.get("orderId")
        if not isinstance(order_id, str) or not order_id:
            return error(400, "InvalidOrder", "orderId is required and must be a string")
        if order_id in self._will_exist:
            return error(409, "OrderAlreadyExists", f"order {order_id!r} already exists")
        return self._submit(order_id, "create", "POST", order, embedded)

    def replace_order(self, order_id: str, body: bytes) -> Answer:
        """PUT /api/v3/orders/{orderId}: 202 + job; 400 malformed; 404 when absent."""
        self.run_due()
        order = _parse_object(body)
        if isinstance(order, Answer):
            return order
        embedded = self._take_embedded(order)
        if isinstance(embedded, Answer):
            return embedded
        body_id = order.setdefault("orderId", order_id)
        if body_id != order_id:
            return error(400, "InvalidOrder", "the body's orderId differs from the path's")
        if order_id not in self._will_exist:
            return error(404, "OrderNotFound", f"order {order_id!r} does not exist")
        return self._submit(order_id, "replace", "PUT", order, embedded)

    def delete_order(self, order_id: str) -> Answer:
        """DELETE /api/v3/orders/{orderId}: 202 + job; 404 when absent."""
        self.run_due()
        if order_id not in self._will_exist:
            return error(404, "OrderNotFound", f"order {order_id!r} does not exist")
        return self._submit(order_id, "delete", "DELETE", None)

    def change_order(
        self, order_id: str, operation: Literal["change-status", "change-delivery"], body: bytes
    ) -> Answer:
        """POST /api/v3/orders/{orderId}/change-status|change-delivery: 202 + job; 400; 404."""
        self.run_due()
        change = _parse_object(body)
        if isinstance(change, Answer):
            return change
        if order_id not in self._will_exist:
            return error(404, "OrderNotFound", f"order {order_id!r} does not exist")
        return self._submit(order_id, operation, "POST", change)

    def read_order(self, order_id: str) -> Answer:
        """GET /api/v3/orders/{orderId}: the stored order plus its top-level versionTag."""
        self.run_due()
        order = self._orders.get(order_id)
        if order is None:
            return error(404, "OrderNotFound", f"order {order_id!r} does not exist")
        return Answer(status=200, body={**order, "versionTag": self._tags[order_id]})

    def read_job(self, job_id: str) -> Answer:
        """GET /api/v3/orders/jobs/{jobId}: 202 pending, 302 to the order, or the failure."""
        self.run_due()
        job = self._jobs.get(job_id)
        if job is None:
            return error(404, "JobNotFound", f"job {job_id!r} is unknown")
        base = {"jobId": job_id, "orderId": job.order_id}
        report = (
            {}
            if job.embedded_report is None
            else {self.settings.embedded_action_field: job.embedded_report}
        )
        if job.status == "pending":
            running = self._clock() >= job.starts_at
            return Answer(
                status=202, body={**base, "status": "Processing" if running else "Queued"}
            )
        if job.status == "succeeded":
            location = order_location(job.order_id)
            body = {**base, "status": "Succeeded", **report}
            return Answer(status=302, body=body, location=location)
        kind = job.failure or "internal"
        return Answer(
            status=FAILURE_STATUS[kind],
            body={
                **base,
                "status": "Failed",
                "errorCode": _FAILURE_CODES[kind],
                "message": f"the {job.operation} job failed ({kind}, simulated)",
                **report,
            },
        )

    def post_action(self, order_id: str, body: bytes) -> Answer:
        """POST /api/v3/orders/{orderId}/action: 202; 400 malformed; 404 order/tag; 422 contact."""
        self.run_due()
        request = _parse_action(body)
        if isinstance(request, Answer):
            return request
        order = self._orders.get(order_id)
        if order is None:
            return error(404, "OrderNotFound", f"order {order_id!r} does not exist")
        if request["versionTag"] != self._tags[order_id]:
            return error(404, "VersionTagMismatch", "versionTag is not the order's current tag")
        if self.settings.refuse_actions_while_writing and (
            self._busy_until.get(order_id, 0.0) > self._clock()
        ):
            return error(404, "VersionTagMismatch", "a write of this order is still processing")
        if not has_contact(order):
            return error(422, NO_CONTACT, "the order has no contact to act on")
        self._actions_accepted += 1
        self._record(self._clock(), {"kind": "action", "orderId": order_id, **request})
        return Answer(status=202)

    # Journal and counters.
    def _record(self, at: float, entry: dict[str, Any]) -> None:
        self._seq += 1
        if len(self._journal) == self._journal.maxlen:
            self._journal_dropped += 1
        self._journal.append({"seq": self._seq, "t": round(at - self.started_at, 6), **entry})

    def journal(self, since: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Journal entries with ``seq > since``, oldest first, at most ``limit`` of them."""
        self.run_due()
        if not self._journal:
            return []
        start = max(0, since + 1 - self._journal[0]["seq"])
        stop = None if limit is None else start + limit
        return list(itertools.islice(self._journal, start, stop))

    def stats(self) -> dict[str, Any]:
        """Counters: requests by route and status, faults, jobs, actions, journal size."""
        self.run_due()
        requests: dict[str, dict[str, int]] = {}
        for (route, status), count in sorted(self._requests.items(), key=str):
            requests.setdefault(route, {})[str(status)] = count
        return {
            "uptimeSeconds": round(self._clock() - self.started_at, 3),
            "requests": requests,
            "requestsTotal": sum(self._requests.values()),
            "busiestSecond": max(self._per_second.values(), default=0),
            "rateLimited": self._rate_limited,
            "faultsInjected": dict(self._faults_injected),
            "faults": self._faults.to_json(),
            "outageRemainingSeconds": round(self.outage_remaining(), 3),
            "jobs": {
                "accepted": len(self._due) + sum(self._jobs_done.values()),
                "pending": len(self._due),
                "processed": self._jobs_done["processed"],
                "failed": self._jobs_done["failed"],
            },
            "actionsAccepted": self._actions_accepted,
            "embeddedActions": {
                key: self._embedded_done[key] for key in ("succeeded", "failed", "notRun")
            },
            "orders": len(self._orders),
            "journal": {
                "entries": len(self._journal),
                "lastSeq": self._seq,
                "dropped": self._journal_dropped,
            },
        }
