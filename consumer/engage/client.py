"""The Engage Orders v3 HTTP client: one call per method, every answer classified.

``EngageClient`` wraps one ``httpx.AsyncClient`` and speaks the calls of engage-api.md: write an
order (POST create / PUT replace, switching once when Engage says absent / already there), delete
it, poll its job, read its ``versionTag``, post an action. It does not retry on its own: each call
either returns an accepted answer or raises one of the classified errors of ``consumer.errors``,

- ``EngageRejected``  Engage said no (400, 404, 409, 422): sending it again will not help;
- ``EngageRetriable`` nothing took effect (429 with its ``retry_after``, 5xx, refused connection,
  connect or pool timeout): safe to send again;
- ``EngageAmbiguous`` the request may have reached Engage (read timeout, connection lost after
  sending). Writes can be resolved (PUT/DELETE are idempotent; a POST create is checked with a GET
  first); an action cannot, so its outcome is ``unknown``.

The only composed call is ``write_and_confirm`` (write, poll the job, read the new tag), which
takes its retry policy as a ``StepRunner`` so the policy stays with the caller (the service's
dispatcher). Every request passes through a ``RequestGate`` (in-flight bounds and rate budget,
also from the dispatcher) and is counted on an optional ``Meter``. The pieces around it:
``types`` (settings, results), ``seams`` (those Protocols), ``classify`` (answer -> error
class), ``transport`` (the HTTP transport) and ``wire`` (Engage's undocumented and beta wire
details, one function each).

Imports nothing of the consumer outside this folder but ``errors``, ``config`` and ``polling``.

The API key is sent by an ``httpx.Auth`` flow, so it sits in no default header, repr or log line.
"""

from __future__ import annotations

import random
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Self

import anyio
import httpx
import orjson

from consumer.engage import wire as engage_wire
from consumer.engage.classify import (
    ACTION_AMBIGUOUS,
    parse_retry_after,
    short,
    status_error,
    transport_error,
)
from consumer.engage.embedded import EmbeddedRider
from consumer.engage.seams import (
    BeforeSend,
    OpenGate,
    RequestGate,
    RequestObserver,
    SendGuard,
    StepRunner,
    run_once,
)
from consumer.engage.transport import make_transport
from consumer.engage.types import (
    ActionResult,
    CallKind,
    EngageClientSettings,
    JobRef,
    JobResult,
    Meter,
    OrderState,
    WriteConfirmation,
    WriteMethod,
)
from consumer.errors import EngageAmbiguous, EngageError, EngageRetriable
from consumer.polling import PollSchedule

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Mapping
    from types import TracebackType

    from consumer.config import Secret


class _ApiKeyAuth(httpx.Auth):
    """Adds the ``apikey`` header per request, so the key is in no default header or repr."""

    def __init__(self, api_key: Secret) -> None:
        self._api_key = api_key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["apikey"] = self._api_key.reveal()
        yield request

    def __repr__(self) -> str:
        return "_ApiKeyAuth(apikey='********')"


class EngageClient:
    """One Engage tenant and API key over one pooled ``httpx.AsyncClient``.

    Deadlines are seconds of ``clock`` (monotonic; the service's stands still while Engage
    refuses the API key). Reads (job polls, GET order) are cut at the deadline; writes and
    actions are not, because cutting them makes their outcome ambiguous.
    """

    def __init__(
        self,
        settings: EngageClientSettings,
        *,
        gate: RequestGate | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
        observer: RequestObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._gate: RequestGate = gate or OpenGate()
        self._observer = observer
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        #: when to poll jobs, learned from this client's recent jobs
        self.poll_schedule = PollSchedule(
            initial=settings.poll_initial_delay,
            max_gap=settings.poll_max_delay,
            patient_factor=settings.outcome_poll_factor,
            rng=self._rng,
        )
        self._timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.write_timeout,
            pool=settings.pool_timeout,
        )
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive,
            keepalive_expiry=settings.keepalive_expiry,
        )
        self._http = httpx.AsyncClient(
            base_url=settings.base_url,
            auth=_ApiKeyAuth(settings.api_key),
            headers={"User-Agent": settings.user_agent, "Content-Type": "application/json"},
            timeout=self._timeout,
            limits=limits,
            # A job poll answers 302 when done: we must see it, not follow it.
            follow_redirects=False,
            transport=transport or make_transport(settings.http_transport, limits),
        )
        self._origin = httpx.URL(settings.base_url).copy_with(path="/", query=None, fragment=None)

    def __repr__(self) -> str:
        return f"EngageClient(base_url={self._settings.base_url!r}, apikey='********')"

    @property
    def embedded_action_field(self) -> str:
        """The order-body field an embedded action rides in."""
        return self._settings.embedded_action_field

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- one request -------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        kind: CallKind = "call",
        body: Mapping[str, Any] | None = None,
        deadline: float | None = None,
        cut_at_deadline: bool = False,
        meter: Meter | None = None,
        before_send: BeforeSend | None = None,
        guard: SendGuard | None = None,
        finishing: bool = False,
    ) -> httpx.Response:
        """Send one request through the gate; raise only for transport failures.

        ``before_send`` runs in the gate, once the request's rate token is spent and before it
        takes its place (the consumer records an action's intent there); if it raises, nothing
        is sent.
        """
        content: bytes | None = None
        if body is not None:
            # orjson encodes dicts natively; other mappings (frozen views) are copied once.
            content = orjson.dumps(body if isinstance(body, dict) else dict(body))
        timeout = self._timeout
        gate = self._gate
        async with gate.slot(
            kind, deadline=deadline, before_send=before_send, guard=guard, finishing=finishing
        ) as admitted:
            if cut_at_deadline and deadline is not None:
                remaining = max(deadline - self._clock(), 0.001)
                timeout = httpx.Timeout(
                    connect=min(self._timeout.connect or remaining, remaining),
                    read=min(self._timeout.read or remaining, remaining),
                    write=min(self._timeout.write or remaining, remaining),
                    pool=min(self._timeout.pool or remaining, remaining),
                )
            started = time.perf_counter()
            answer: str | None = None  # for the observer; stays None when cancelled
            try:
                response = await self._http.request(method, url, content=content, timeout=timeout)
                answer = str(response.status_code)
                admitted.answered(response.status_code)
            except httpx.TransportError as exc:
                answer = type(exc).__name__
                raise transport_error(method, httpx.URL(url).path, exc) from exc
            finally:
                elapsed = time.perf_counter() - started
                if meter is not None:
                    meter.requests += 1
                    meter.engage_seconds += elapsed
                if self._observer is not None and answer is not None:
                    self._observer.request_done(
                        method=method, kind=kind, url=url, status=answer, seconds=elapsed
                    )
        if response.status_code == 429:
            self._gate.throttled(parse_retry_after(response.headers.get("Retry-After")))
        return response

    # -- writes ------------------------------------------------------------------------------

    async def write_order(
        self,
        order_id: str,
        body: Mapping[str, Any],
        *,
        exists: bool | None,
        deadline: float | None = None,
        meter: Meter | None = None,
        guard: SendGuard | None = None,
        before_send: BeforeSend | None = None,
    ) -> JobRef:
        """Create (POST) or replace (PUT) an order; return the job Engage started.

        ``exists=True`` tries PUT first, otherwise POST. A PUT answered 404 (absent) switches to
        POST once; a POST answered "already exists" switches to PUT once. ``before_send`` runs
        before each request goes out (an embedded action's intent is recorded there).
        """
        use_put = exists is True
        switched = False
        while True:
            method: WriteMethod = "PUT" if use_put else "POST"
            path = engage_wire.order_path(order_id) if use_put else engage_wire.ORDERS_PATH
            response = await self._send(
                method,
                path,
                body=body,
                deadline=deadline,
                meter=meter,
                guard=guard,
                before_send=before_send,
            )
            status = response.status_code
            if not switched:
                if use_put and status == 404:
                    use_put, switched = False, True
                    continue
                decoded = engage_wire.decode_body(response.content)
                if not use_put and engage_wire.order_already_exists(status, decoded):
                    use_put, switched = True, True
                    continue
            if 200 <= status < 300:
                job = _job_ref(response, method, self._origin)
                if job is None:
                    raise EngageError(
                        f"{method} {path} answered {status} without a job link",
                        status=status,
                        body=short(response.text),
                    )
                return job
            raise status_error(method, path, response)

    async def delete_order(
        self,
        order_id: str,
        *,
        deadline: float | None = None,
        meter: Meter | None = None,
        guard: SendGuard | None = None,
    ) -> JobRef | None:
        """Delete an order; None when nothing is left to wait for (already absent, or done)."""
        path = engage_wire.order_path(order_id)
        response = await self._send("DELETE", path, deadline=deadline, meter=meter, guard=guard)
        status = response.status_code
        if status == 404:
            return None
        if 200 <= status < 300:
            # (undocumented) a 2xx without a job link is taken as a delete done at once.
            return _job_ref(response, "DELETE", self._origin)
        raise status_error("DELETE", path, response)

    async def poll_job(
        self,
        job: JobRef,
        *,
        deadline: float,
        meter: Meter | None = None,
        wait: Callable[[float], Awaitable[None]] = anyio.sleep,
        guard: SendGuard | None = None,
        patient: Callable[[], bool] | None = None,
    ) -> JobResult:
        """Poll a job with growing, jittered gaps until it ends or ``deadline`` passes.

        Trouble answering the poll itself (429, 5xx, lost connection) is not the job's failure:
        polling is safe to repeat, so it just polls again later. The gaps come from
        ``poll_schedule`` (learned from recent jobs); ``wait`` sleeps them: the caller's chance to
        lend out what it holds while nothing is sent; ``patient()`` (asked once): see
        ``PollSchedule.first_gap``.
        """
        started = time.monotonic()
        tries = polls = 0
        running_at = 0.0
        troubled = False  # a poll went unanswered: this job's timing says nothing of Engage's
        gap = self.poll_schedule.first_gap(patient=patient is not None and patient())
        last_status: int | None = None
        last_reason: str | None = None
        while True:
            now = self._clock()
            if now >= deadline:
                return JobResult(
                    state="timed_out", http_status=last_status, reason=last_reason, polls=polls
                )
            await wait(min(gap, deadline - now))
            tries += 1
            gap = self.poll_schedule.next_gap(tries)
            asked_at = time.monotonic() - started
            try:
                response = await self._send(
                    "GET",
                    job.url,
                    kind="poll",
                    deadline=deadline,
                    cut_at_deadline=True,
                    meter=meter,
                    guard=guard,
                    finishing=True,
                )
            except (EngageRetriable, EngageAmbiguous) as exc:
                last_status, last_reason = exc.status, str(exc)
                troubled = True
                continue
            polls += 1
            last_status = response.status_code
            answer = engage_wire.decode_body(response.content)
            state = engage_wire.job_state(last_status, answer)
            last_reason = state.reason
            if state.state == "pending":
                running_at = asked_at
            elif state.state == "transient":
                troubled = True
            elif state.state == "done":
                # Running when a poll was asked for, done by the time this one was answered.
                if not troubled:
                    self.poll_schedule.job_ended(running_at, time.monotonic() - started)
                return JobResult(
                    state="succeeded",
                    http_status=last_status,
                    reason=None,
                    polls=polls,
                    body=answer,
                )
            else:
                # Failed (or unknown to Engage): no processing time worth learning from.
                return JobResult(
                    state="failed",
                    http_status=last_status,
                    reason=state.reason,
                    polls=polls,
                    body=answer,
                )

    async def get_order(
        self,
        order_id: str,
        *,
        deadline: float | None = None,
        meter: Meter | None = None,
        guard: SendGuard | None = None,
    ) -> OrderState | None:
        """Read an order and its current versionTag; None when Engage does not have it."""
        path = engage_wire.order_path(order_id)
        response = await self._send(
            "GET",
            path,
            deadline=deadline,
            cut_at_deadline=True,
            meter=meter,
            guard=guard,
            finishing=True,
        )
        if response.status_code == 404:
            return None
        if response.status_code == 200:
            body = engage_wire.decode_body(response.content)
            return OrderState(
                order_id=order_id, version_tag=engage_wire.version_tag(body), body=body
            )
        raise status_error("GET", path, response)

    async def write_and_confirm(
        self,
        order_id: str,
        body: Mapping[str, Any],
        *,
        exists: bool | None,
        deadline: float,
        job_timeout: float | None = None,
        retry: StepRunner = run_once,
        meter: Meter | None = None,
        wait: Callable[[float], Awaitable[None]] = anyio.sleep,
        tag_wanted: Callable[[], bool] | None = None,
        guard: SendGuard | None = None,
        rider: EmbeddedRider | None = None,
        before_send: BeforeSend | None = None,
        patient: Callable[[], bool] | None = None,
    ) -> WriteConfirmation:
        """Write an order, wait for its job, and read the versionTag that write produced.

        The job is polled until ``deadline``, or ``job_timeout`` seconds after Engage accepted
        the write if that is sooner, sleeping the gaps with ``wait``. ``tag_wanted`` is asked
        once the job succeeded: False skips the GET (no action needs this tag; whoever needs
        the order's tag later reads it then), and the confirmation has no tag.
        ``retry`` runs the write and the final GET, both safe to repeat as done here: after an
        ambiguous write the next attempt first asks Engage with a GET whether the order exists,
        because Engage says to check before repeating a POST whose outcome is unknown.
        ``guard`` is asked before every request (write, polls, GETs); if it refuses, that
        request and everything after it stays unsent (``SendRefused``). ``rider``: an action
        riding in the write (``EmbeddedRider``); ``before_send`` runs before each request that
        carries it; ``embedded`` in the result says what became of it.
        Raises the classified error of the write or the GET when ``retry`` gives up; a job that
        failed or did not finish by ``deadline`` is reported in the result, not raised.
        """
        meter = meter if meter is not None else Meter()
        known_exists = exists
        check_first = False
        rider = rider or EmbeddedRider(None, field=self._settings.embedded_action_field)

        async def write_step() -> JobRef:
            nonlocal known_exists, check_first
            if check_first:
                state = await self.get_order(order_id, deadline=deadline, meter=meter, guard=guard)
                known_exists, check_first = state is not None, False
            meter.attempts += 1
            try:
                job = await rider.write(
                    self,
                    order_id,
                    body,
                    exists=known_exists,
                    deadline=deadline,
                    meter=meter,
                    guard=guard,
                    before_send=before_send,
                )
            except EngageAmbiguous:
                check_first = True
                raise
            known_exists = True
            return job

        job = await retry(write_step)
        poll_deadline = deadline
        if job_timeout is not None:
            poll_deadline = min(deadline, self._clock() + job_timeout)
        result = await self.poll_job(
            job, deadline=poll_deadline, meter=meter, wait=wait, guard=guard, patient=patient
        )
        report = rider.report(result)
        tag: str | None = None
        missing = False
        tag_read = result.state == "succeeded" and (tag_wanted is None or tag_wanted())
        if tag_read:
            state = await retry(
                lambda: self.get_order(order_id, deadline=deadline, meter=meter, guard=guard)
            )
            tag = state.version_tag if state is not None else None
            missing = state is None
        return WriteConfirmation(
            job=result,
            write_status=job.http_status,
            version_tag=tag,
            tag_read=tag_read,
            order_missing=missing,
            requests=meter.requests,
            engage_ms=meter.engage_ms,
            attempts=meter.attempts,
            embedded=report,
        )

    # -- actions (beta in Engage; wire format in engage_wire) --------------------------------

    async def post_action(
        self,
        order_id: str,
        *,
        action: str,
        version_tag: str,
        language: str | None = None,
        data: dict[str, Any] | None = None,
        deadline: float | None = None,
        meter: Meter | None = None,
        before_send: BeforeSend | None = None,
        guard: SendGuard | None = None,
    ) -> ActionResult:
        """Trigger an action with the tag of the order's latest processed write.

        Not idempotent: a caller must not send it again after ``EngageAmbiguous``. A 404 is
        ``EngageRejected`` whose meaning is ``engage_wire.action_rejection_reason(404)``.
        """
        path = engage_wire.action_path(order_id)
        payload = engage_wire.action_body(
            action=action, version_tag=version_tag, language=language, data=data
        )
        response = await self._send(
            "POST",
            path,
            body=payload,
            deadline=deadline,
            meter=meter,
            before_send=before_send,
            guard=guard,
            finishing=True,
        )
        if 200 <= response.status_code < 300:
            return ActionResult(
                http_status=response.status_code,
                body=engage_wire.decode_body(response.content),
            )
        raise status_error("POST", path, response, ambiguous=ACTION_AMBIGUOUS)


def _job_ref(response: httpx.Response, method: WriteMethod, origin: httpx.URL) -> JobRef | None:
    """The job a write's answer names, asked of our own Engage whatever host the answer named."""
    link = engage_wire.job_link(
        response.headers.get("Location"), engage_wire.decode_body(response.content)
    )
    if link is None:
        return None
    url = response.request.url.join(link)
    if url.copy_with(path="/", query=None, fragment=None) != origin:
        # Never send the API key to another host because an answer named it: keep the path
        # and ask our own Engage.
        url = origin.copy_with(raw_path=url.raw_path)
    return JobRef(
        url=str(url),
        job_id=engage_wire.job_id_from_link(url.path),
        method=method,
        http_status=response.status_code,
    )


@asynccontextmanager
async def open_engage_client(
    settings: EngageClientSettings,
    *,
    gate: RequestGate | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    observer: RequestObserver | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> AsyncIterator[EngageClient]:
    """Open an ``EngageClient`` and close its connections on the way out."""
    client = EngageClient(settings, gate=gate, transport=transport, observer=observer, clock=clock)
    try:
        yield client
    finally:
        with anyio.CancelScope(shield=True):
            # Closing must finish even while the caller is being cancelled, or sockets leak.
            await client.aclose()
