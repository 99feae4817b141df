"""The dispatch policy: run one Engage operation under bounds, the rate budget and retries.

The runner hands the ``Dispatcher`` one operation of one order at a time (a write, a delete, an
action, or reading the current tag) with that event's deadline, and gets back a
``DispatchResult`` it turns into an outcome. Nothing here knows Kafka.

What keeps orders independent: there is no lock around any call. Each HTTP request waits only
for (1) a place in its in-flight bound — one ``CapacityLimiter`` for writes, actions and reads,
a separate smaller one for job polls, so thousands of slow jobs being polled cannot starve new
writes and actions, nor the other way round — and (2) one token of the API key's
``RateBudget``, which every request spends, polls and GETs included. Back-off sleeps and the
gaps between polls hold neither.

Retries (``consumer.retry``): retriable answers (429, 5xx, refused connections) are retried with
jittered backoff until the attempts or the deadline run out. Ambiguous writes are resolved
(PUT/DELETE are idempotent; a POST is checked with a GET first). An ambiguous action is never
resent unless ``retry_ambiguous_actions`` allows exactly one more try; otherwise it is
``unknown``.
"""

from __future__ import annotations

import dataclasses
import random
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio

from consumer.credentials import CredentialsGate
from consumer.engage import (
    NO_CONTACT_CODES,
    EmbeddedRider,
    Meter,
    action_rejection_reason,
    open_engage_client,
)
from consumer.errors import (
    EngageAmbiguous,
    EngageError,
    EngageRejected,
    EngageRetriable,
)
from consumer.ratebudget import RateBudget, RateBudgetSettings
from consumer.retry import CountingRetrier, Retrier, RetryPolicy
from consumer.service.gate import CallGate

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from consumer.engage import (
        BeforeSend,
        EmbeddedReport,
        EngageClient,
        EngageClientSettings,
        JobRef,
        JobResult,
        OrderState,
        SendGuard,
        WriteConfirmation,
    )
    from consumer.metrics import Metrics

Operation = Literal["upsert", "delete", "action", "read"]
#: The budget's saturation at which it binds: requests wait for tokens (``RateBudget``).
BUDGET_BINDS = 0.9
Status = Literal["accepted", "rejected", "failed", "unknown"]


@dataclass(frozen=True, kw_only=True, slots=True)
class DispatchSettings:
    """Bounds and policies of the dispatcher."""

    max_in_flight: int = 64
    max_polls_in_flight: int = 32
    budget: RateBudgetSettings = field(default_factory=RateBudgetSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    retry_ambiguous_actions: bool = False
    job_timeout: float = 120.0


@dataclass(frozen=True, kw_only=True, slots=True)
class DispatchResult:
    """How one operation ended, in the terms of an outcome.

    ``reason`` is a short code (``job_failed``, ``job_lost``, ``job_timeout``, ``deadline``,
    ``retries_exhausted``, ``ambiguous``, ``stale_tag_or_unknown_order``, ``no_contact``,
    ``bad_request``, ``not_found``, ``conflict``, ``no_version_tag``, ``unexpected_answer``);
    ``detail`` is the human text, usually Engage's own words. ``tag_uncertain`` says the order's
    tag in Engage may have moved without us learning the new one (a write that may have taken
    effect): the order book must read the tag again before the next action.
    """

    operation: Operation
    status: Status
    http_status: int | None
    version_tag: str | None = None
    attempts: int
    reason: str | None = None
    detail: str | None = None
    engage_ms: float
    requests: int
    tag_uncertain: bool = False
    #: how the action that rode in the write ended (embedded delivery); None: none rode
    rider: RiderResult | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RiderResult:
    """The outcome of an action that rode in a write, as the write's answers tell it."""

    status: Status
    reason: str | None = None
    detail: str | None = None


def rider_result(  # noqa: PLR0911 - one return per rule, in the docstring's order
    report: EmbeddedReport | None, write: DispatchResult
) -> RiderResult | None:
    """What became of an embedded action, from what its write learned (None: none rode).

    Refused with the write: ``rejected`` (``bad_action``; the order was stored without it).
    An attempt that carried it may have reached Engage unanswered: ``unknown`` whatever
    followed, as Engage may have run it. Carried by an accepted write: what the job said
    (``accepted``; ``rejected`` with ``no_contact`` or ``action_failed``). Carried by a write
    whose job failed: ``failed`` with ``write_failed``, never sent again on its own. Carried by
    a write whose job's end is unknown (timed out, lost): ``unknown``. A write that never got
    through: ``failed`` with ``write_failed``.
    """
    if report is None:
        return None
    if report.refused is not None:
        return RiderResult(status="rejected", reason="bad_action", detail=report.refused)
    if report.maybe_sent:
        return RiderResult(
            status="unknown",
            reason="ambiguous",
            detail="a write carrying the action went unanswered; it is not sent again",
        )
    if not report.carried:
        return RiderResult(status="failed", reason="write_failed", detail=write.detail)
    if write.status == "accepted":
        said = report.result
        if said is None or said.state in ("succeeded", "unreported"):
            return RiderResult(status="accepted")
        if said.state == "failed":
            reason = "no_contact" if said.error_code in NO_CONTACT_CODES else "action_failed"
            return RiderResult(status="rejected", reason=reason, detail=said.reason)
        return RiderResult(status="failed", reason="action_not_run", detail=said.reason)
    if write.reason in ("job_timeout", "job_lost"):
        return RiderResult(status="unknown", reason=write.reason, detail=write.detail)
    return RiderResult(status="failed", reason="write_failed", detail=write.detail)


def patient_or_saturated(patient: Callable[[], bool], budget: RateBudget) -> Callable[[], bool]:
    """Patient as asked, or whenever the budget binds (every job is then polled patiently).

    While requests wait for tokens, a poll that finds the job still running is a token another
    write could have had.
    """

    def asked() -> bool:
        return patient() or budget.saturation() >= BUDGET_BINDS

    return asked


def _with_rider(
    result: DispatchResult, rider: EmbeddedRider | None, job: JobResult | None
) -> DispatchResult:
    """``result`` with how its embedded action ended, when one rode."""
    if rider is None:
        return result
    return dataclasses.replace(result, rider=rider_result(rider.report(job), result))


def _refusal(status: int | None) -> str:
    return {400: "bad_request", 404: "not_found", 409: "conflict", 422: "no_contact"}.get(
        status or 0, "rejected"
    )


class Dispatcher:
    """Runs single Engage operations for the runner; safe to call from many tasks at once."""

    def __init__(
        self,
        client: EngageClient,
        gate: CallGate,
        settings: DispatchSettings,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self._on_retry = on_retry or _ignore_retry
        self.gate = gate
        self.settings = settings
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._sleep = sleep

    @property
    def budget(self) -> RateBudget:
        """The rate budget every request spends (its ``rate`` is a metric)."""
        return self.gate.budget

    def _retrier(self, deadline: float, *, retry_ambiguous: bool) -> Retrier:
        return CountingRetrier(
            self.settings.retry,
            on_retry=self._on_retry,
            deadline=deadline,
            retry_ambiguous=retry_ambiguous,
            # The gate holds every request while Engage refuses the key: not an attempt.
            hold_on_refused_key=True,
            rng=self._rng,
            clock=self._clock,
            sleep=self._sleep,
        )

    def _gave_up(
        self, operation: Operation, exc: EngageError, retrier: Retrier, meter: Meter
    ) -> DispatchResult:
        """The result of an operation whose error the retrier did not (or could not) get past."""
        base: dict[str, Any] = {
            "operation": operation,
            "http_status": exc.status,
            "attempts": meter.attempts,
            "detail": str(exc),
            "engage_ms": meter.engage_ms,
            "requests": meter.requests,
        }
        if isinstance(exc, EngageRejected):
            return DispatchResult(status="rejected", reason=_refusal(exc.status), **base)
        if isinstance(exc, EngageRetriable | EngageAmbiguous):
            reason = "deadline" if retrier.gave_up == "deadline" else "retries_exhausted"
        else:
            reason = "unexpected_answer"
        return DispatchResult(status="failed", reason=reason, **base)

    async def write(
        self,
        order_id: str,
        body: Mapping[str, Any],
        *,
        exists: bool | None,
        deadline: float,
        wait: Callable[[float], Awaitable[None]] = anyio.sleep,
        tag_wanted: Callable[[], bool] | None = None,
        guard: SendGuard | None = None,
        embedded: Mapping[str, Any] | None = None,
        before_send: BeforeSend | None = None,
        patient: Callable[[], bool] | None = None,
    ) -> DispatchResult:
        """Create or replace an order, wait for its job, and learn the tag it produced.

        ``wait`` sleeps between job polls; ``tag_wanted`` decides, once the job is done, whether
        the tag is read (when not, an accepted result has no ``version_tag``). ``guard`` is
        asked before every request; ``SendRefused`` from it propagates (nothing more was sent).
        ``embedded``: an action riding in the write (``before_send`` runs before each request
        carrying it); the result's ``rider`` says how it ended (``rider_result``).
        """
        meter = Meter()
        retrier = self._retrier(deadline, retry_ambiguous=True)
        if patient is not None:
            patient = patient_or_saturated(patient, self.budget)
        rider = None
        if embedded is not None:
            rider = EmbeddedRider(embedded, field=self.client.embedded_action_field)
        try:
            done = await self.client.write_and_confirm(
                order_id,
                body,
                exists=exists,
                deadline=deadline,
                job_timeout=self.settings.job_timeout,
                retry=retrier,
                meter=meter,
                wait=wait,
                tag_wanted=tag_wanted,
                guard=guard,
                rider=rider,
                before_send=before_send,
                patient=patient,
            )
        except EngageError as exc:
            # The write itself may have been accepted while the GET of its tag failed.
            failed = _with_doubt(self._gave_up("upsert", exc, retrier, meter))
            return _with_rider(failed, rider, None)
        return _with_rider(self._confirmed(done, meter), rider, done.job)

    def _confirmed(self, done: WriteConfirmation, meter: Meter) -> DispatchResult:
        """The result of a write whose job polling ended (succeeded, failed or timed out)."""
        base: dict[str, Any] = {
            "operation": "upsert",
            "attempts": meter.attempts,
            "engage_ms": meter.engage_ms,
            "requests": meter.requests,
        }
        job = done.job
        if job.state == "failed":
            lost = _job_lost(job)
            return DispatchResult(
                status="failed",
                http_status=job.http_status,
                reason="job_lost" if lost else "job_failed",
                detail=job.reason,
                tag_uncertain=lost,
                **base,
            )
        if job.state == "timed_out":
            return DispatchResult(
                status="failed",
                http_status=done.write_status,
                reason="job_timeout",
                detail=job.reason,
                tag_uncertain=True,
                **base,
            )
        if done.version_tag is None and done.tag_read:
            reason = "not_found" if done.order_missing else "no_version_tag"
            return DispatchResult(
                status="failed",
                http_status=done.write_status,
                reason=reason,
                detail="the job finished but the order's versionTag could not be read",
                tag_uncertain=True,
                **base,
            )
        return DispatchResult(
            status="accepted", http_status=done.write_status, version_tag=done.version_tag, **base
        )

    async def delete(
        self,
        order_id: str,
        *,
        deadline: float,
        wait: Callable[[float], Awaitable[None]] = anyio.sleep,
        guard: SendGuard | None = None,
    ) -> DispatchResult:
        """Delete an order and wait for its job (an order already absent counts as deleted).

        ``wait`` sleeps between job polls; ``guard`` as for ``write``.
        """
        meter = Meter()
        retrier = self._retrier(deadline, retry_ambiguous=True)  # DELETE is idempotent

        async def delete_step() -> JobRef | None:
            meter.attempts += 1
            return await self.client.delete_order(
                order_id, deadline=deadline, meter=meter, guard=guard
            )

        try:
            job = await retrier(delete_step)
        except EngageError as exc:
            return _with_doubt(self._gave_up("delete", exc, retrier, meter))
        base: dict[str, Any] = {"operation": "delete", "attempts": meter.attempts}
        if job is None:
            return DispatchResult(
                status="accepted",
                http_status=None,
                engage_ms=meter.engage_ms,
                requests=meter.requests,
                **base,
            )
        poll_deadline = min(deadline, self._clock() + self.settings.job_timeout)
        polled: JobResult = await self.client.poll_job(
            job, deadline=poll_deadline, meter=meter, wait=wait, guard=guard
        )
        status: Status = "accepted" if polled.state == "succeeded" else "failed"
        reason = {"succeeded": None, "failed": "job_failed", "timed_out": "job_timeout"}
        return DispatchResult(
            status=status,
            http_status=polled.http_status if polled.state == "failed" else job.http_status,
            reason=reason[polled.state],
            detail=polled.reason if status == "failed" else None,
            tag_uncertain=polled.state == "timed_out" or _job_lost(polled),
            engage_ms=meter.engage_ms,
            requests=meter.requests,
            **base,
        )

    async def action(
        self,
        order_id: str,
        *,
        action: str,
        version_tag: str,
        language: str | None = None,
        data: dict[str, Any] | None = None,
        deadline: float,
        before_send: BeforeSend | None = None,
        guard: SendGuard | None = None,
    ) -> DispatchResult:
        """Post an action with ``version_tag``; never resend one Engage may have accepted.

        ``guard``, then ``before_send`` run just before each attempt goes out (see
        ``CallGate.slot``); ``SendRefused`` from them propagates: nothing was sent.
        """
        meter = Meter()
        retrier = self._retrier(deadline, retry_ambiguous=False)
        ambiguous_retries = 1 if self.settings.retry_ambiguous_actions else 0
        maybe_sent = False

        async def action_step() -> None:
            meter.attempts += 1
            await self.client.post_action(
                order_id,
                action=action,
                version_tag=version_tag,
                language=language,
                data=data,
                deadline=deadline,
                meter=meter,
                before_send=before_send,
                guard=guard,
            )

        def result(status: Status, **fields: Any) -> DispatchResult:  # noqa: ANN401
            return DispatchResult(
                operation="action",
                status=status,
                version_tag=version_tag,
                attempts=meter.attempts,
                engage_ms=meter.engage_ms,
                requests=meter.requests,
                **fields,
            )

        while True:
            try:
                await retrier(action_step)
            except EngageAmbiguous as exc:
                maybe_sent = True
                wait = self.settings.retry.next_delay(
                    meter.attempts,
                    now=self._clock(),
                    deadline=deadline,
                    retry_after=None,
                    rng=self._rng,
                )
                if ambiguous_retries > 0 and not isinstance(wait, str):
                    ambiguous_retries -= 1
                    self._on_retry("ambiguous_action")
                    await self._sleep(wait)
                    continue
                return result(
                    "unknown", http_status=exc.status, reason="ambiguous", detail=str(exc)
                )
            except EngageRejected as exc:
                return result(
                    "rejected",
                    http_status=exc.status,
                    reason=action_rejection_reason(exc.status or 0),
                    detail=str(exc),
                )
            except EngageError as exc:
                # Nothing got through this time; but if an earlier try was ambiguous, that one
                # may have, so the honest outcome is still "unknown".
                gave_up = self._gave_up("action", exc, retrier, meter)
                if maybe_sent:
                    return result(
                        "unknown", http_status=exc.status, reason="ambiguous", detail=str(exc)
                    )
                return result(
                    "failed", http_status=exc.status, reason=gave_up.reason, detail=str(exc)
                )
            return result("accepted", http_status=202)

    async def read_tag(self, order_id: str, *, deadline: float) -> DispatchResult:
        """Read the order's current versionTag (for an order the book knows nothing about)."""
        meter = Meter()
        retrier = self._retrier(deadline, retry_ambiguous=True)  # a GET is safe to repeat

        async def read_step() -> OrderState | None:
            meter.attempts += 1
            return await self.client.get_order(order_id, deadline=deadline, meter=meter)

        try:
            state = await retrier(read_step)
        except EngageError as exc:
            return self._gave_up("read", exc, retrier, meter)
        base: dict[str, Any] = {
            "operation": "read",
            "attempts": meter.attempts,
            "engage_ms": meter.engage_ms,
            "requests": meter.requests,
        }
        if state is None:
            return DispatchResult(status="rejected", http_status=404, reason="not_found", **base)
        if state.version_tag is None:
            return DispatchResult(status="failed", http_status=200, reason="no_version_tag", **base)
        return DispatchResult(
            status="accepted", http_status=200, version_tag=state.version_tag, **base
        )


def _job_lost(job: JobResult) -> bool:
    """A poll answered 404: Engage forgot the job (or never had it), not that it failed.

    The write may well have been applied, so its outcome is failed but the tag is in doubt.
    """
    return job.state == "failed" and job.http_status == 404


def _with_doubt(result: DispatchResult) -> DispatchResult:
    """Mark a failed write or delete: it may have taken effect, so the tag must be re-read.

    Conservative on purpose: a 5xx usually means nothing happened, but re-reading a tag costs
    one GET while acting on a stale belief costs a refused action.
    """
    if result.status != "failed" or result.requests == 0:
        return result
    return dataclasses.replace(result, tag_uncertain=True)


@asynccontextmanager
async def open_dispatcher(
    client_settings: EngageClientSettings,
    settings: DispatchSettings,
    *,
    budget: RateBudget | None = None,
    credentials: CredentialsGate | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Dispatcher]:
    """Open an Engage client wired to a gate, and a dispatcher over them; close on exit.

    ``metrics`` is told about every request and every retry. Deadlines are seconds of the
    credentials gate's deadline clock, which stands still while Engage refuses the key.
    """
    credentials = credentials or CredentialsGate()
    clock = credentials.deadline_clock
    gate = CallGate(
        max_in_flight=settings.max_in_flight,
        max_polls_in_flight=settings.max_polls_in_flight,
        budget=budget or RateBudget(settings.budget),
        credentials=credentials,
        clock=clock,
    )
    async with open_engage_client(
        client_settings, gate=gate, observer=metrics, clock=clock
    ) as client:
        yield Dispatcher(
            client,
            gate,
            settings,
            clock=clock,
            on_retry=metrics.retried if metrics is not None else None,
        )


def _ignore_retry(_reason: str) -> None:
    """The retry hook when nobody counts retries."""
