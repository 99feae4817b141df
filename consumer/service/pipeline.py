"""The data path from a consumed record to an acknowledged outcome.

``Pipeline.take`` decodes a record, turns the event into operations for the order book (the pure
state machine) and carries out the book's effects: Engage calls go to the call scheduler
(``service.calls``), which runs each as its own task (``service.call_runner``) under the
dispatcher's bounds; every settled operation feeds its event's outcome; the publisher
(``service.publisher``) writes it to the results topic and, once Kafka acknowledged it, the
record's offset is finished in the offset tracker. Invalid records go to the dead-letter
topic. Nothing here blocks on one order. ``abandon`` forgets the unfinished work of revoked
partitions. ``traces`` (``consumer.tracing``) is told each step of every event, and each call
runs inside its event's trace.

The book is only touched from the event loop's thread and never across an ``await``, so it
needs no lock.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from consumer.errors import InvalidEventError
from consumer.events import ActionRequest, Delete, Lifecycle, Upsert, decode_record
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.orders import Action, FetchTag, SendAction, SendWrite, Settle, Write
from consumer.service.call_runner import CallRunner
from consumer.service.calls import CallScheduler
from consumer.service.pending import OpRef, Pending
from consumer.service.publisher import OutcomePublisher
from consumer.tracing import EventTraces

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from anyio.abc import TaskGroup

    from consumer.events import OrderEvent
    from consumer.kafka import RecordSink
    from consumer.offsets import OffsetTracker
    from consumer.orders import Call, Effect, OrderBook
    from consumer.service.fence import Fence
    from consumer.service.seams import EngageCalls, IntentLog, Record
    from consumer.service.state_store import StateStore
    from consumer.tracing import EventTrace
    from consumer.types import TP

log = get_logger("pipeline")


@dataclass(frozen=True, kw_only=True, slots=True)
class PipelineSettings:
    """What the pipeline needs to know, derived from the service settings by the runner."""

    results_topic: str
    dead_letter_topic: str
    event_deadline_seconds: float
    max_record_bytes: int
    action_map: Mapping[str, str]
    #: calls running at once: the dispatcher's request places (in flight plus polls)
    call_places: int
    retry_ambiguous_actions: bool = False
    read_every_tag: bool = False
    #: ENGAGE_ACTION_DELIVERY=embedded: actions ride in the write they depend on
    embedded_actions: bool = False


class Pipeline:
    """Record in, outcome out; owns the in-memory view of every event in progress."""

    def __init__(
        self,
        *,
        settings: PipelineSettings,
        book: OrderBook[OpRef],
        engage: EngageCalls,
        sink: RecordSink,
        tracker: OffsetTracker,
        task_group: TaskGroup,
        intents: IntentLog | None = None,
        fence: Fence | None = None,
        state: StateStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        deadline_clock: Callable[[], float] | None = None,
        metrics: Metrics | None = None,
        traces: EventTraces[OpRef] | None = None,
    ) -> None:
        """Wire the parts; the two clocks differ only while Engage refuses the API key.

        ``clock`` times events (their outcomes' durations); ``deadline_clock`` (default:
        ``clock``) runs their deadlines, and stands still while the key is refused.
        """
        self.settings = settings
        #: which partitions may still send (None: all, always; a lone pipeline in unit tests)
        self.fence = fence
        self.metrics = metrics if metrics is not None else Metrics(process=False)
        #: the trace of each event (default: nothing recorded, inbound contexts passed on)
        self.traces: EventTraces[OpRef] = traces if traces is not None else EventTraces()
        self.traces.follow_book(lambda order_id: book.snapshot(order_id).writing)
        self.book = book
        self.engage = engage
        self.tracker = tracker
        self.intents = intents
        self.clock = clock
        self.deadline_clock = deadline_clock or clock
        #: what happened so far (``finished``, ``outcomes``, ``invalid``, ...), for tests and logs
        self.counts: Counter[str] = Counter()
        #: events taken in and not yet acknowledged, per partition (for revoke and drain)
        self.pending: dict[TP, set[Pending]] = {}
        #: offsets a previous owner finished above its commit (from the commit metadata)
        self.skip: dict[TP, set[int]] = {}
        #: offsets whose action a previous owner may have sent before it stopped unexpectedly
        self.interrupted: dict[TP, set[int]] = {}
        #: calls the fence stopped mid-way (their partition revoked); ended in ``abandon``
        self._refused: list[Call[OpRef]] = []
        self.scheduler: CallScheduler[Call[OpRef]] = CallScheduler(
            places=settings.call_places,
            task_group=task_group,
            run=self._run_call,
            partition_of=_partition_of,
            withdrawn=_abandoned,
            release=self._release,
            # A write starts new work; an action or a tag read completes what a write began.
            finishes=lambda call: not isinstance(call, SendWrite),
        )
        self.calls = CallRunner(
            book=book,
            engage=engage,
            scheduler=self.scheduler,
            apply=self.apply,
            refused=self._call_refused,
            event_deadline=settings.event_deadline_seconds,
            read_every_tag=settings.read_every_tag,
            embedded_actions=settings.embedded_actions,
            clock=self.deadline_clock,
            intents=intents,
            fence=fence,
            state=state,
        )
        self.publisher = OutcomePublisher(
            sink=sink,
            results_topic=settings.results_topic,
            dead_letter_topic=settings.dead_letter_topic,
            state_topic=state.topic if state is not None else None,
            task_group=task_group,
            metrics=self.metrics,
            counts=self.counts,
            finished=self._finish,
            clock=clock,
            tracer=self.traces.tracer,
        )

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
            self.counts["finished"] += 1
            self.counts["skipped_replay"] += 1
            self.metrics.event_consumed(record.topic, "replayed")
            return
        received_at = datetime.now(UTC)
        trace = self.traces.begin(record)
        try:
            event = self._decode(record)
        except InvalidEventError as error:
            self.counts["invalid"] += 1
            self.metrics.event_consumed(record.topic, "invalid")
            self.publisher.dead_letter_soon(record, error, received_at, trace)
            return
        self.counts["events"] += 1
        self.metrics.event_consumed(record.topic, event.type)
        interrupted = self.interrupted.get(tp)
        if interrupted and record.offset in interrupted:
            interrupted.discard(record.offset)
            if not self.settings.retry_ambiguous_actions:
                self._interrupted(event, tp, received_at, trace)
                return
        pending = Pending(
            event=event,
            tp=tp,
            received_at=received_at,
            started=self.clock(),
            deadline=self.deadline_clock() + self.settings.event_deadline_seconds,
            ops_left=0,
            operation="action",
        )
        self.pending.setdefault(tp, set()).add(pending)
        # One event's ops together: the machine sees a lifecycle event's write and action at
        # once, so with embedded delivery the action rides in that write.
        ops = self._operations(pending)
        pending.ops_left = len(ops)
        if trace is not None:
            self.traces.track(pending, trace, event, [op.token for op in ops])
        with self.traces.taking(trace):
            self.apply(self.book.submit(event.order_id, *ops))

    def _interrupted(
        self, event: OrderEvent, tp: TP, received_at: datetime, trace: EventTrace | None = None
    ) -> None:
        """Answer an event whose action may already have reached Engage, without resending it.

        A lifecycle event's snapshot is still written (a write is idempotent): with embedded
        delivery the intent is recorded before the write goes, so the write may never have
        reached Engage. Its action is ``unknown`` either way.
        """
        self.counts["interrupted"] += 1
        pending = Pending(
            event=event,
            tp=tp,
            received_at=received_at,
            started=self.clock(),
            deadline=self.deadline_clock(),
            ops_left=0,
            operation="action",
            action=getattr(event.data, "action", None),
            status="unknown",
            reason="interrupted",
            detail="the consumer stopped while this action was being sent; it is not resent "
            "because Engage may already have accepted it",
        )
        self.pending.setdefault(tp, set()).add(pending)
        # Its intent stays in the commit metadata until its outcome is acknowledged: should this
        # run stop too before then, the next owner must still not send the action.
        self.tracker.intend(tp, event.offset)
        pending.intended = True
        data = event.data
        rewrite = None
        if isinstance(data, Lifecycle) and data.order is not None:
            pending.deadline += self.settings.event_deadline_seconds
            pending.revision = data.revision
            ref = OpRef(pending=pending, role="write", body=data.order)
            rewrite = Write(token=ref, kind="upsert", revision=data.revision, deadline=math.inf)
        if trace is not None:
            self.traces.track(pending, trace, event, [] if rewrite is None else [rewrite.token])
        if rewrite is not None:
            pending.ops_left = 1
            self.apply(self.book.submit(event.order_id, rewrite))
            return
        self.publisher.publish_outcome_soon(pending, self.traces.pop(pending))

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

    def _operations(self, pending: Pending) -> list[Write[OpRef] | Action[OpRef]]:
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

    def apply(self, effects: Iterable[Effect[OpRef]]) -> None:
        """Carry out what the book asked for: schedule calls, settle operations."""
        for effect in effects:
            if isinstance(effect, Settle):
                self._settle(effect)
            elif _abandoned(effect):
                self._release(effect)
            else:
                self.traces.scheduled(effect)
                self.scheduler.submit(effect)

    async def _run_call(self, call: Call[OpRef]) -> None:
        with self.traces.calling(call):
            await self.calls.run(call)

    def _call_refused(self, call: Call[OpRef]) -> None:
        """The fence stopped a call mid-way: end it once its events are abandoned, not before.

        Until ``abandon`` runs for its partition, the book's reaction to it (an ``unknown``
        write fails the actions behind it) would settle events of the lost partition with
        outcomes of their own; after, it ends at once (a call refused late, after a
        revocation that gave up waiting for it).
        """
        if _abandoned(call):
            self._release(call)
        else:
            self._refused.append(call)

    def _release(self, call: Call[OpRef]) -> None:
        """Tell the book a call of an abandoned event will not happen, so its order moves on.

        The event's partition went to another consumer: sending now would race that owner
        (a late write would overwrite its newer one). The book treats the op as ended in doubt.
        """
        if isinstance(call, SendWrite):
            self.apply(
                self.book.write_done(
                    call.order_id, call.op.token, tag=None, status="unknown", reason=None
                )
            )
        elif isinstance(call, SendAction):
            self.apply(
                self.book.action_done(call.order_id, call.op.token, status="unknown", reason=None)
            )

    def _settle(self, effect: Settle[OpRef]) -> None:
        ref = effect.token
        pending = ref.pending
        if pending.abandoned:
            return  # its partition moved on: the new owner answers this event
        self.traces.settled(effect)
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
            self.publisher.publish_outcome_soon(pending, self.traces.pop(pending))

    def _finish(self, tp: TP, offset: int, pending: Pending | None) -> None:
        """The last record for an input offset was acknowledged: the offset is finished."""
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
        self.counts["finished"] += 1

    # -- partitions ---------------------------------------------------------------------------

    def hold(self, tps: set[TP] | None = None) -> None:
        """Start no new Engage call (for ``tps``, or for all when None); running ones go on.

        A call that has not started cannot have reached Engage, so holding it back is always
        safe: its event simply gets no outcome and is redone by whoever owns its partition
        next. That is what makes a drain short and free of duplicates.
        """
        self.scheduler.hold(tps)

    def hold_new_work(self, tps: set[TP] | None = None) -> None:
        """Start no new write (for ``tps``, or for all); work under way may finish.

        Actions and tag reads still go: the rule of a drain, and of partitions being revoked.
        """
        self.scheduler.hold_new_work(tps)

    def calls_running(self, tps: Iterable[TP] | None = None) -> int:
        """Engage calls running now (on ``tps``, or everywhere)."""
        return self.scheduler.running(tps)

    def calls_waiting(self) -> int:
        """Calls ready to start, waiting for one of this member's call places (a metric)."""
        return len(self.scheduler.queued)

    def publishing(self, tps: Iterable[TP] | None = None) -> int:
        """Outcome and dead-letter writes not yet acknowledged (on ``tps``, or everywhere)."""
        return self.publisher.publishing(tps)

    def in_progress(self, tps: Iterable[TP] | None = None) -> int:
        """Events taken in and not yet acknowledged (on ``tps``, or on every partition)."""
        if tps is None:
            return self.tracker.in_flight()
        return sum(len(self.pending.get(tp, ())) for tp in tps)

    def tick(self) -> None:
        """Let the book expire operations whose deadline passed."""
        self.apply(self.book.tick())

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
            self.traces.abandoned(pending)
        # Take back every unsent op of the affected orders first, keeping those of events on
        # partitions we still own, so that releasing the withdrawn calls below cannot set the
        # abandoned ones in motion.
        kept: dict[str, list[Write[OpRef] | Action[OpRef]]] = {}
        for order_id in {p.event.order_id for p in abandoned}:
            kept[order_id] = [
                op for op in self.book.drop(order_id) if not op.token.pending.abandoned
            ]
        # The calls not started, and those the fence stopped mid-way, end in doubt now that
        # every event of these partitions is abandoned: whatever the book settles because of
        # them is no outcome of this member's.
        refused = [call for call in self._refused if _partition_of(call) in tps]
        self._refused = [call for call in self._refused if _partition_of(call) not in tps]
        for call in [*self.scheduler.withdraw(tps), *refused]:
            self._release(call)
        # Another consumer may write any order of these partitions next: remembered tags of
        # idle orders could go stale unseen, so every idle order is re-learned on next use.
        self.book.forget_idle()
        effects: list[Effect[OpRef]] = []
        for order_id, ops in kept.items():
            for op in ops:
                effects.extend(self.book.submit(order_id, op))
        self.apply(effects)


def _partition_of(call: Call[OpRef]) -> TP | None:
    """The partition of the event a call serves (a tag read serves the order, not one event)."""
    if isinstance(call, FetchTag):
        return None
    return call.op.token.pending.tp


def _abandoned(call: Call[OpRef]) -> bool:
    """Whether a call serves an event whose partition was taken away."""
    if isinstance(call, FetchTag):
        return False
    return call.op.token.pending.abandoned
