"""The data path from a consumed record to an acknowledged outcome.

``Pipeline.take`` decodes a record, turns the event into operations for the order book (the pure
state machine), and carries out the book's effects: Engage calls run as tasks under the
dispatcher's bounds; every settled operation feeds its event's outcome; an outcome is published
to the results topic and, once Kafka acknowledged it, the record's offset is finished in the
offset tracker. Invalid records go to the dead-letter topic (and get an ``invalid`` outcome when
an orderId could be read). Nothing here blocks on one order: each call is its own task.

The book is only touched from the event loop's thread and never across an ``await``, so it
needs no lock.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio

from consumer.errors import InvalidEventError, SendRefused, TransactionFailed
from consumer.events import ActionRequest, Delete, Lifecycle, OrderEvent, Upsert, decode_record
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.orders import Action, FetchTag, SendAction, SendWrite, Settle, Write
from consumer.outcomes import (
    InputRef,
    Outcome,
    RecordParts,
    dead_letter_headers,
    encode_outcome,
    invalid_outcome,
    minimal_outcome,
    peek_identity,
    reduce_dead_letter,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

    from anyio.abc import TaskGroup

    from consumer.config import Settings
    from consumer.dispatch import DispatchResult
    from consumer.kafka_out import RecordSink
    from consumer.offsets import OffsetTracker
    from consumer.orders import Effect, OrderBook
    from consumer.outcomes import Status

TP = tuple[str, int]
log = get_logger("pipeline")


class Record(Protocol):
    """The parts of a consumed Kafka record the pipeline reads (aiokafka's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class EngageCalls(Protocol):
    """The dispatcher's operations, as the pipeline uses them."""

    async def write(
        self,
        order_id: str,
        body: Mapping[str, Any],
        *,
        exists: bool | None,
        deadline: float,
        wait: Callable[[float], Awaitable[None]],
        tag_wanted: Callable[[], bool] | None,
    ) -> DispatchResult:
        """Create or replace, wait for the job, learn the tag if ``tag_wanted`` says so."""
        ...

    async def delete(
        self, order_id: str, *, deadline: float, wait: Callable[[float], Awaitable[None]]
    ) -> DispatchResult:
        """Delete, wait for the job (``wait`` sleeps between polls)."""
        ...

    async def action(
        self,
        order_id: str,
        *,
        action: str,
        version_tag: str,
        language: str | None,
        data: dict[str, Any] | None,
        deadline: float,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> DispatchResult:
        """Post an action with a tag; ``before_send`` runs just before it goes out."""
        ...

    async def read_tag(self, order_id: str, *, deadline: float) -> DispatchResult:
        """GET the order's current tag."""
        ...


class IntentLog(Protocol):
    """Makes "this action is about to be sent" durable before it is (see consumer.offsets)."""

    async def record(self, tp: TP, offset: int) -> bool:
        """Return once the intent is durable; False if the partition is no longer ours."""
        ...

    def released(self) -> None:
        """An offset with an intent finished: its intent can leave the metadata soon."""
        ...


@dataclass(slots=True, eq=False)
class Pending:
    """One input event between intake and its acknowledged outcome."""

    event: OrderEvent
    tp: TP
    received_at: datetime
    started: float
    deadline: float
    ops_left: int
    operation: Literal["upsert", "delete", "action"]
    action: str | None = None
    revision: int | None = None
    status: Status | None = None
    reason: str | None = None
    detail: str | None = None
    http_status: int | None = None
    version_tag: str | None = None
    attempts: int = 0
    engage_ms: float = 0.0
    abandoned: bool = False
    intended: bool = False


@dataclass(slots=True, eq=False)
class OpRef:
    """The token the book carries for one operation: its event and what to send."""

    pending: Pending
    role: Literal["write", "action"]
    body: Mapping[str, Any] | None = None
    action: str | None = None
    language: str | None = None
    data: Mapping[str, Any] | None = None
    result: DispatchResult | None = field(default=None, repr=False)


class Pipeline:
    """Record in, outcome out; owns the in-memory view of every event in progress."""

    def __init__(
        self,
        *,
        settings: Settings,
        book: OrderBook,
        engage: EngageCalls,
        sink: RecordSink,
        tracker: OffsetTracker,
        task_group: TaskGroup,
        intents: IntentLog | None = None,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else Metrics(process=False)
        self.book = book
        self.engage = engage
        self.sink = sink
        self.tracker = tracker
        self.tasks = task_group
        self.intents = intents
        self.clock = clock
        #: events taken in and not yet acknowledged, per partition (for revoke and drain)
        self.pending: dict[TP, set[Pending]] = {}
        #: offsets a previous owner finished above its commit (from the commit metadata)
        self.skip: dict[TP, set[int]] = {}
        #: offsets whose action a previous owner may have sent before it stopped unexpectedly
        self.interrupted: dict[TP, set[int]] = {}
        self.counts: dict[str, int] = {}
        #: Engage calls running, per partition of the event they serve (None: a tag read)
        self.calls: dict[TP | None, int] = {}
        #: calls the book asked for, waiting for one of ``max_calls`` places
        self.ready: deque[SendWrite | SendAction | FetchTag] = deque()
        #: writes done sleeping between job polls, waiting to get a place back (served first)
        self.resuming: deque[anyio.Event] = deque()
        #: places taken: calls started, less the writes sleeping between polls
        self.running = 0
        # One place per request slot of the gate, so that a call rarely waits there with its
        # deadline running: a larger bound let hundreds of calls wait in the gate under a rate
        # budget shrunk by 429s until their deadlines passed. A write waiting for its job gives
        # its place back between polls (``_wait_between_polls``); holding it capped writes at
        # ~60/s with 1.5 s jobs.
        self.max_calls = settings.engage_max_in_flight + settings.engage_max_polls_in_flight
        #: sends the book asked for while their partition was held (see ``hold``)
        self.held: list[SendWrite | SendAction | FetchTag] = []
        self.holding: set[TP] = set()
        self.holding_all = False
        #: outcome and dead-letter writes in flight, per partition
        self.writes: dict[TP, int] = {}

    # -- intake -------------------------------------------------------------------------------

    def take(self, record: Record) -> None:
        """Start processing one consumed record; never raises for bad input."""
        tp = (record.topic, record.partition)
        self.tracker.received(tp, record.offset)
        skip = self.skip.get(tp)
        if skip and record.offset in skip:
            # A previous owner published this record's outcome but could not commit past it.
            skip.discard(record.offset)
            self.tracker.finished(tp, record.offset)
            self._count("finished")
            self._count("skipped_replay")
            self.metrics.event_consumed(record.topic, "replayed")
            return
        received_at = datetime.now(UTC)
        try:
            event = self._decode(record)
        except InvalidEventError as error:
            self._count("invalid")
            self.metrics.event_consumed(record.topic, "invalid")
            self._publishing_started(tp)
            self.tasks.start_soon(self._dead_letter, record, error, received_at)
            return
        self._count("events")
        self.metrics.event_consumed(record.topic, event.type)
        interrupted = self.interrupted.get(tp)
        if interrupted and record.offset in interrupted:
            interrupted.discard(record.offset)
            if not self.settings.engage_retry_ambiguous_actions:
                self._report_interrupted(event, tp, received_at)
                return
        now = self.clock()
        pending = Pending(
            event=event,
            tp=tp,
            received_at=received_at,
            started=now,
            deadline=now + self.settings.event_deadline_seconds,
            ops_left=0,
            operation="action",
        )
        self.pending.setdefault(tp, set()).add(pending)
        effects: list[Effect] = []
        for op in self._operations(pending):
            pending.ops_left += 1
            effects.extend(self.book.submit(event.order_id, op))
        self.apply(effects)

    def _report_interrupted(self, event: OrderEvent, tp: TP, received_at: datetime) -> None:
        """Answer an event whose action may already have reached Engage, without resending it."""
        self._count("interrupted")
        now = self.clock()
        pending = Pending(
            event=event,
            tp=tp,
            received_at=received_at,
            started=now,
            deadline=now,
            ops_left=0,
            operation="action",
            action=getattr(event.data, "action", None),
            status="unknown",
            reason="interrupted",
            detail="the consumer stopped while this action was being sent; it is not resent "
            "because Engage may already have accepted it",
        )
        self.pending.setdefault(tp, set()).add(pending)
        self._publishing_started(tp)
        self.tasks.start_soon(self._publish_outcome, pending)

    def _decode(self, record: Record) -> OrderEvent:
        # require_key: without the orderId as key, the producer's partitioner scattered this
        # order's events over partitions and per-order order cannot hold: refuse it loudly.
        return decode_record(
            key=record.key,
            value=record.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            max_bytes=self.settings.max_record_bytes,
            action_map=self.settings.action_map,
            require_key=True,
        )

    def _operations(self, pending: Pending) -> list[Write | Action]:
        data = pending.event.data
        # Only a revision-gated action waits for something outside this consumer (a write that
        # may never come), so only it expires while queued. Every other op waits behind calls
        # of its own order that have deadlines of their own: failing it for time spent in our
        # queues would turn a backlog (catching up after an outage) into failures.
        gated_deadline = pending.deadline
        deadline = math.inf
        if isinstance(data, Upsert):
            pending.operation = "upsert"
            pending.revision = data.revision
            ref = OpRef(pending=pending, role="write", body=data.order)
            return [Write(token=ref, kind="upsert", revision=data.revision, deadline=deadline)]
        if isinstance(data, Delete):
            pending.operation = "delete"
            pending.revision = data.revision
            ref = OpRef(pending=pending, role="write")
            return [Write(token=ref, kind="delete", revision=data.revision, deadline=deadline)]
        if isinstance(data, ActionRequest):
            pending.action = data.action
            pending.revision = data.min_revision
            ref = OpRef(
                pending=pending,
                role="action",
                action=data.action,
                language=data.language,
                data=data.data,
            )
            action_deadline = deadline if data.min_revision is None else gated_deadline
            return [Action(token=ref, min_revision=data.min_revision, deadline=action_deadline)]
        assert isinstance(data, Lifecycle)
        pending.action = data.action
        pending.revision = data.revision
        action = OpRef(
            pending=pending,
            role="action",
            action=data.action,
            language=data.language,
            data=data.action_data,
        )
        if data.order is None:
            # No snapshot: the action waits for the write that carried this revision, if any.
            gated = deadline if data.revision is None else gated_deadline
            return [Action(token=action, min_revision=data.revision, deadline=gated)]
        write = OpRef(pending=pending, role="write", body=data.order)
        return [
            Write(token=write, kind="upsert", revision=data.revision, deadline=deadline),
            Action(token=action, min_revision=None, deadline=deadline),
        ]

    # -- effects ------------------------------------------------------------------------------

    def apply(self, effects: Iterable[Effect]) -> None:
        """Carry out what the book asked for: start calls (unless held), settle operations."""
        for effect in effects:
            if isinstance(effect, Settle):
                self._settle(effect)
            elif _abandoned(effect):
                self._release(effect)
            elif self._is_held(effect):
                self.held.append(effect)
            else:
                self._start(effect)

    def _release(self, effect: SendWrite | SendAction | FetchTag) -> None:
        """Tell the book a send of an abandoned event will not happen, so its order moves on.

        The event's partition went to another consumer: sending now would race that owner
        (a late write would overwrite its newer one). The book treats the op as ended in doubt.
        """
        if isinstance(effect, SendWrite):
            self.apply(
                self.book.write_done(
                    effect.order_id, effect.op.token, tag=None, status="unknown", reason=None
                )
            )
        elif isinstance(effect, SendAction):
            self.apply(
                self.book.action_done(
                    effect.order_id, effect.op.token, status="unknown", reason=None
                )
            )

    def _start(self, effect: SendWrite | SendAction | FetchTag) -> None:
        self.ready.append(effect)
        self._pump()

    def _pump(self) -> None:
        """Start ready calls while fewer than ``max_calls`` run.

        Calls wait here, not inside the dispatcher: a call's deadline starts when it starts,
        and a backlog costs a deque entry per call instead of a task blocked on a limiter.
        """
        while self.resuming and self.running < self.max_calls:
            # Work already under way goes first: its deadlines are the oldest.
            self.running += 1
            self.resuming.popleft().set()
        while self.ready and self.running < self.max_calls:
            effect = self.ready.popleft()
            if _abandoned(effect):
                self._release(effect)
                continue
            if self._is_held(effect):
                self.held.append(effect)
                continue
            tp = _tp_of(effect)
            self.running += 1
            self.calls[tp] = self.calls.get(tp, 0) + 1
            self.tasks.start_soon(self._run_call, effect, tp)

    def _call_deadline(self) -> float:
        return self.clock() + self.settings.event_deadline_seconds

    async def _run_call(self, effect: SendWrite | SendAction | FetchTag, tp: TP | None) -> None:
        try:
            if isinstance(effect, SendWrite):
                await self._run_write(effect)
            elif isinstance(effect, SendAction):
                await self._run_action(effect)
            else:
                await self._run_fetch(effect)
        finally:
            self.calls[tp] -= 1
            self.running -= 1
            self._pump()

    async def _wait_between_polls(self, seconds: float) -> None:
        """Sleep between two polls of a job without holding a place: nothing is sent meanwhile."""
        self.running -= 1
        self._pump()
        try:
            await anyio.sleep(seconds)
        finally:
            await self._retake_place()

    async def _retake_place(self) -> None:
        """Take a place back for the next poll, after the writes that asked before."""
        if self.running < self.max_calls and not self.resuming:
            self.running += 1
            return
        granted = anyio.Event()
        self.resuming.append(granted)
        try:
            await granted.wait()
        finally:
            if not granted.is_set():
                # Cancelled while waiting: hold a place anyway, as the call's end gives one back.
                self.resuming.remove(granted)
                self.running += 1

    def _is_held(self, effect: SendWrite | SendAction | FetchTag) -> bool:
        if self.holding_all:
            return True
        tp = _tp_of(effect)
        return tp is not None and tp in self.holding

    def hold(self, tps: set[TP] | None = None) -> None:
        """Start no new Engage call (for ``tps``, or for all when None); running ones go on.

        A call that has not started cannot have reached Engage, so holding it back is always
        safe: its event simply gets no outcome and is redone by whoever owns its partition
        next. That is what makes a drain short and free of duplicates.
        """
        if tps is None:
            self.holding_all = True
        else:
            self.holding |= tps
        waiting, self.ready = self.ready, deque()
        for effect in waiting:
            (self.held if self._is_held(effect) else self.ready).append(effect)

    def calls_running(self, tps: Iterable[TP] | None = None) -> int:
        """Engage calls running now (on ``tps``, or everywhere)."""
        if tps is None:
            return sum(self.calls.values())
        return sum(self.calls.get(tp, 0) for tp in tps)

    def tick(self) -> None:
        """Let the book expire operations whose deadline passed."""
        self.apply(self.book.tick())

    async def _run_write(self, effect: SendWrite) -> None:
        op = effect.op
        ref: OpRef = op.token  # type: ignore[assignment]
        deadline = self._call_deadline()
        log.debug(
            "sending write",
            orderId=effect.order_id,
            eventId=ref.pending.event.id,
            partition=ref.pending.tp[1],
            offset=ref.pending.event.offset,
            exists=effect.exists,
        )
        wait = self._wait_between_polls
        if op.kind == "delete":
            result = await self.engage.delete(effect.order_id, deadline=deadline, wait=wait)
        else:
            assert ref.body is not None
            tag_wanted = None
            if not self.settings.engage_read_every_tag:

                def tag_wanted() -> bool:
                    return self.book.tag_needed(effect.order_id, op.token)

            result = await self.engage.write(
                effect.order_id,
                ref.body,
                exists=effect.exists,
                deadline=deadline,
                wait=wait,
                tag_wanted=tag_wanted,
            )
        ref.result = result
        if result.status == "accepted":
            effects = self.book.write_done(
                effect.order_id, op.token, tag=result.version_tag, status="accepted", reason=None
            )
        else:
            uncertain = result.tag_uncertain or result.status == "unknown"
            effects = self.book.write_done(
                effect.order_id,
                op.token,
                tag=None,
                status="unknown" if uncertain else result.status,
                reason=result.reason,
            )
        self.apply(effects)

    async def _run_action(self, effect: SendAction) -> None:
        op = effect.op
        ref: OpRef = op.token  # type: ignore[assignment]
        assert ref.action is not None
        pending = ref.pending
        intents = self.intents
        log.debug(
            "sending action",
            orderId=effect.order_id,
            eventId=pending.event.id,
            partition=pending.tp[1],
            offset=pending.event.offset,
            versionTag=effect.tag,
        )

        async def record_intent() -> None:
            # Just before the request goes out (its rate token spent, its in-flight place next):
            # a crash after this point leaves an intent, and the next owner reports `unknown`
            # rather than sending the action again.
            if intents is not None and not await intents.record(pending.tp, pending.event.offset):
                raise SendRefused("the partition was revoked before the action was sent")
            pending.intended = True

        try:
            result = await self.engage.action(
                effect.order_id,
                action=ref.action,
                version_tag=effect.tag,
                language=ref.language,
                data=dict(ref.data) if ref.data is not None else None,
                deadline=self._call_deadline(),
                before_send=record_intent,
            )
        except SendRefused:
            # Nothing was sent and the partition is going to its next owner, who answers this
            # event: it gets no outcome here (an outcome would commit an action never sent).
            pending.abandoned = True
            self.apply(
                self.book.action_done(effect.order_id, op.token, status="unknown", reason=None)
            )
            return
        ref.result = result
        stale = result.status == "rejected" and result.http_status == 404
        self.apply(
            self.book.action_done(
                effect.order_id,
                op.token,
                status=result.status,
                reason=result.reason,
                stale_tag=stale,
            )
        )

    async def _run_fetch(self, effect: FetchTag) -> None:
        result = await self.engage.read_tag(effect.order_id, deadline=self._call_deadline())
        if result.status == "accepted":
            effects = self.book.tag_learned(effect.order_id, result.version_tag)
        elif result.status == "rejected" and result.http_status == 404:
            effects = self.book.tag_learned(effect.order_id, None)
        else:
            effects = self.book.tag_learned(
                effect.order_id, None, error=f"tag_unavailable: {result.reason}"
            )
        self.apply(effects)

    # -- outcomes -----------------------------------------------------------------------------

    def _settle(self, effect: Settle) -> None:
        ref: OpRef = effect.token  # type: ignore[assignment]
        pending = ref.pending
        if pending.abandoned:
            return  # its partition moved on: the new owner answers this event
        result = ref.result
        if result is not None:
            pending.attempts += result.attempts
            pending.engage_ms += result.engage_ms
        if ref.role == "write" and pending.operation == "action":
            # The snapshot write of a lifecycle event: remember what it learned; the action
            # that follows decides the event's status.
            if result is not None and result.http_status is not None:
                pending.http_status = result.http_status
            pending.version_tag = effect.tag or pending.version_tag
            if effect.status not in {"accepted", "skipped"}:
                pending.detail = result.detail if result is not None else effect.reason
        else:
            pending.status = effect.status
            pending.reason = effect.reason
            pending.version_tag = effect.tag or pending.version_tag
            if result is not None:
                pending.http_status = result.http_status
                pending.detail = result.detail or pending.detail
                if result.version_tag is not None:
                    pending.version_tag = result.version_tag
        pending.ops_left -= 1
        if pending.ops_left == 0:
            self._publishing_started(pending.tp)
            self.tasks.start_soon(self._publish_outcome, pending)

    async def _publish_outcome(self, pending: Pending) -> None:
        event = pending.event
        status: Status = pending.status or "failed"
        outcome = Outcome(
            origin=InputRef.of_event(event),
            operation=pending.operation,
            status=status,
            received_at=pending.received_at,
            finished_at=datetime.now(UTC),
            http_status=pending.http_status,
            version_tag=pending.version_tag,
            attempts=pending.attempts,
            reason=pending.reason,
            detail=pending.detail,
            action=pending.action,
            revision=pending.revision,
            engage_ms=pending.engage_ms,
            total_ms=(self.clock() - pending.started) * 1000.0,
        )
        self._count(f"outcome_{status}")
        self._count("outcomes")
        log.debug(
            "outcome",
            orderId=event.order_id,
            eventId=event.id,
            partition=event.partition,
            offset=event.offset,
            status=status,
            reason=pending.reason,
        )
        await self._publish(
            self.settings.results_topic,
            key=event.order_id.encode(),
            value=encode_outcome(outcome),
            headers=[],
            finishes=(pending.tp, event.offset),
            reduced=lambda: _minimal_record(outcome),
        )
        self.metrics.outcome(status, pending.operation)
        self._finish(pending.tp, event.offset, pending)

    async def _dead_letter(
        self, record: Record, error: InvalidEventError, received_at: datetime
    ) -> None:
        tp = (record.topic, record.partition)
        log.warning(
            "dead-lettered",
            reason=error.reason,
            detail=error.detail,
            orderId=error.order_id,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
        headers = dead_letter_headers(
            headers=record.headers,
            error=error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            at=received_at,
            event_id=peek_identity(error, record.value)[0],
        )
        outcome = invalid_outcome(
            error,
            value=record.value,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            received_at=received_at,
            finished_at=datetime.now(UTC),
        )
        # The last record written for an offset is the one that finishes it.
        await self._publish(
            self.settings.dead_letter_topic,
            key=record.key,
            value=record.value,
            headers=headers,
            finishes=(tp, record.offset) if outcome is None else None,
            reduced=lambda: reduce_dead_letter(key=record.key, value=record.value, headers=headers),
        )
        self.metrics.dead_letter(error.reason)
        if outcome is not None:
            self._count("outcomes")
            await self._publish(
                self.settings.results_topic,
                key=outcome.origin.order_id.encode(),
                value=encode_outcome(outcome),
                headers=[],
                finishes=(tp, record.offset),
                reduced=lambda: _minimal_record(outcome),
            )
            self.metrics.outcome(outcome.status, outcome.operation)
        self._finish(tp, record.offset, None)

    async def _publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
        finishes: tuple[TP, int] | None = None,
        reduced: Callable[[], RecordParts | None] | None = None,
    ) -> None:
        """Publish until Kafka acknowledges: an outcome is never dropped, only delayed.

        The one exception is a record Kafka refuses as too large: that is not retriable (the
        same bytes fail forever, and the partition's commits would stop behind them), so it is
        replaced once by ``reduced()``, and dropped with an error when nothing smaller exists.
        """
        delay = 0.1
        while True:
            try:
                await self.sink.publish(
                    topic, key=key, value=value, headers=headers, finishes=finishes
                )
            except TransactionFailed:
                raise  # state is ahead of Kafka: only a restart from committed state is safe
            except Exception as exc:  # noqa: BLE001 - boundary: any producer failure is retried
                if _too_large(exc):
                    smaller = reduced() if reduced is not None else None
                    reduced = None  # reduce once: a size refusal must never loop
                    size = len(key or b"") + len(value or b"") + sum(len(r) for _, r in headers)
                    log.error(  # noqa: TRY400 - no traceback needed
                        "record too large for Kafka",
                        topic=topic,
                        bytes=size,
                        then="publishing a reduced one" if smaller else "dropped",
                        error=repr(exc),
                    )
                    if smaller is None:
                        return
                    key, value, headers = smaller.key, smaller.value, smaller.headers
                    continue
                log.warning("publish failed; retrying", topic=topic, error=repr(exc), delay=delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return

    def _publishing_started(self, tp: TP) -> None:
        self.writes[tp] = self.writes.get(tp, 0) + 1

    def publishing(self, tps: Iterable[TP] | None = None) -> int:
        """Outcome and dead-letter writes not yet acknowledged (on ``tps``, or everywhere)."""
        if tps is None:
            return sum(self.writes.values())
        return sum(self.writes.get(tp, 0) for tp in tps)

    def _finish(self, tp: TP, offset: int, pending: Pending | None) -> None:
        self.writes[tp] -= 1
        if pending is not None:
            events = self.pending.get(tp)
            if events is not None:
                events.discard(pending)
            if pending.abandoned:
                return
        self.tracker.finished(tp, offset)
        if pending is not None and pending.intended and self.intents is not None:
            # Commit soon: until the intent leaves the metadata, a crash would report this
            # finished action as `unknown` once more.
            self.intents.released()
        self._count("finished")

    # -- partitions ---------------------------------------------------------------------------

    def in_progress(self, tps: Iterable[TP] | None = None) -> int:
        """Events taken in and not yet acknowledged (on ``tps``, or on every partition)."""
        if tps is None:
            return self.tracker.in_flight()
        return sum(len(self.pending.get(tp, ())) for tp in tps)

    def abandon(self, tps: set[TP]) -> None:
        """Forget the unfinished events of revoked partitions; their new owner redoes them.

        Orders that also have events on partitions we keep are rebuilt from those events, so
        the kept partitions lose nothing.
        """
        abandoned: set[Pending] = set()
        for tp in tps:
            abandoned |= self.pending.pop(tp, set())
            self.skip.pop(tp, None)
            self.interrupted.pop(tp, None)
        for pending in abandoned:
            pending.abandoned = True
        # Take back every unsent op of the affected orders first, keeping those of events on
        # partitions we still own, so that releasing the held sends below cannot set the
        # abandoned ones in motion.
        kept: dict[str, list[Write | Action]] = {}
        for order_id in {p.event.order_id for p in abandoned}:
            kept[order_id] = [
                op
                for op in self.book.drop(order_id)
                if not op.token.pending.abandoned  # type: ignore[attr-defined]
            ]
        self.holding -= tps
        held, self.held = self.held, []
        for effect in held:
            if _tp_of(effect) in tps:
                self._release(effect)
            else:
                self.held.append(effect)
        waiting, self.ready = self.ready, deque()
        for effect in waiting:
            if _abandoned(effect):
                self._release(effect)
            else:
                self.ready.append(effect)
        # Another consumer may write any order of these partitions next: remembered tags of
        # idle orders could go stale unseen, so every idle order is re-learned on next use.
        self.book.forget_idle()
        effects: list[Effect] = []
        for order_id, ops in kept.items():
            for op in ops:
                effects.extend(self.book.submit(order_id, op))
        self.apply(effects)

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


def _too_large(exc: Exception) -> bool:
    """Whether the producer or the broker refused a record for its size (never retriable)."""
    from aiokafka.errors import MessageSizeTooLargeError  # noqa: PLC0415 - only on failure

    return isinstance(exc, MessageSizeTooLargeError)


def _minimal_record(outcome: Outcome) -> RecordParts:
    """The results-topic record of ``minimal_outcome(outcome)`` (the full one was too large)."""
    reduced = minimal_outcome(outcome)
    return RecordParts(
        key=reduced.origin.order_id.encode(), value=encode_outcome(reduced), headers=[]
    )


def _tp_of(effect: SendWrite | SendAction | FetchTag) -> TP | None:
    """The partition of the event a send serves (a tag read serves the order, not one event)."""
    if isinstance(effect, FetchTag):
        return None
    ref: OpRef = effect.op.token  # type: ignore[assignment]
    return ref.pending.tp


def _abandoned(effect: SendWrite | SendAction | FetchTag) -> bool:
    """Whether a send serves an event whose partition was taken away."""
    if isinstance(effect, FetchTag):
        return False
    ref: OpRef = effect.op.token  # type: ignore[assignment]
    return ref.pending.abandoned
