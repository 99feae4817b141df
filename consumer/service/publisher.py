"""The outcome publisher: each outcome and each refused record, written until Kafka acknowledged.

An outcome is built from its ``Pending`` (``consumer.outcomes`` makes the bytes) and published to
the results topic; a record the decoder refused goes to the dead-letter topic with its original
bytes and headers, then gets an ``invalid`` outcome when an orderId could be read. Each write is
its own task and is retried until Kafka acknowledges it: an outcome is never dropped, only
delayed. The one exception is a record Kafka refuses as too large, which is replaced once by a
reduced one. Once the last record of an input offset is acknowledged, ``finished`` is told.
An event's trace (``consumer.tracing``) gets the publish span, whose context the outcome
record carries in its ``traceparent`` and ``tracestate`` headers, and ends once it is
acknowledged.

Knows the sink (``consumer.kafka``'s ``RecordSink``) and the contract; nothing of Engage or
the book.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import anyio

from consumer.errors import TransactionFailed
from consumer.logs import current_trace, get_logger
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
    from collections import Counter
    from collections.abc import Callable, Iterable

    from anyio.abc import TaskGroup
    from opentelemetry.trace import Tracer

    from consumer.errors import InvalidEventError
    from consumer.kafka import RecordSink
    from consumer.metrics import Metrics
    from consumer.outcomes import Status
    from consumer.service.pending import Pending
    from consumer.service.seams import Record
    from consumer.tracing import EventTrace
    from consumer.types import TP, Headers

log = get_logger("publisher")


class OutcomePublisher:
    """Publishes outcomes and dead letters as tasks; counts what is not yet acknowledged.

    ``finished(tp, offset, pending)`` is called once the last record for an input offset is
    acknowledged (``pending`` is None for a refused record). ``counts`` is the pipeline's
    counter of what happened (``outcomes``, ``outcome_<status>``).
    """

    def __init__(
        self,
        *,
        sink: RecordSink,
        results_topic: str,
        dead_letter_topic: str,
        state_topic: str | None = None,
        task_group: TaskGroup,
        metrics: Metrics,
        counts: Counter[str],
        finished: Callable[[TP, int, Pending | None], None],
        clock: Callable[[], float],
        tracer: Tracer | None = None,
    ) -> None:
        self._sink = sink
        self._results_topic = results_topic
        self._dead_letter_topic = dead_letter_topic
        self._state_topic = state_topic
        self._tasks = task_group
        self._metrics = metrics
        self._counts = counts
        self._finished = finished
        self._clock = clock
        self._tracer = tracer
        #: outcome and dead-letter writes not yet acknowledged, per input partition
        self._unacknowledged: dict[TP, int] = {}

    def publishing(self, tps: Iterable[TP] | None = None) -> int:
        """Outcome and dead-letter writes not yet acknowledged (for ``tps``, or everywhere)."""
        if tps is None:
            return sum(self._unacknowledged.values())
        return sum(self._unacknowledged.get(tp, 0) for tp in tps)

    def publish_outcome_soon(self, pending: Pending, trace: EventTrace | None = None) -> None:
        """Start publishing the outcome of a settled event (ending its ``trace``)."""
        self._started(pending.tp)
        self._tasks.start_soon(self._publish_outcome, pending, trace)

    def dead_letter_soon(
        self,
        record: Record,
        error: InvalidEventError,
        received_at: datetime,
        trace: EventTrace | None = None,
    ) -> None:
        """Start dead-lettering a refused record (and publishing its ``invalid`` outcome)."""
        self._started((record.topic, record.partition))
        self._tasks.start_soon(self._dead_letter, record, error, received_at, trace)

    def _started(self, tp: TP) -> None:
        self._unacknowledged[tp] = self._unacknowledged.get(tp, 0) + 1

    def _done(self, tp: TP, offset: int, pending: Pending | None) -> None:
        self._unacknowledged[tp] -= 1
        self._finished(tp, offset, pending)

    async def _publish_outcome(self, pending: Pending, trace: EventTrace | None) -> None:
        # Its own task, which inherited its spawner's: the lines below are this event's.
        current_trace.set(trace.log_ids if trace is not None else None)
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
            total_ms=(self._clock() - pending.started) * 1000.0,
            delivery=pending.delivery,
        )
        self._counts[f"outcome_{status}"] += 1
        self._counts["outcomes"] += 1
        log.debug(
            "outcome",
            orderId=event.order_id,
            eventId=event.id,
            partition=event.partition,
            offset=event.offset,
            status=status,
            reason=pending.reason,
        )
        if self._state_topic is not None:
            for order_id, value in pending.remembered:
                # On the event's partition number: its new owner restores exactly that one.
                await self._publish(
                    self._state_topic,
                    key=order_id.encode(),
                    value=value,
                    headers=[],
                    partition=pending.tp[1],
                )
        with _publishing(trace, self._results_topic, self._tracer) as headers:
            await self._publish(
                self._results_topic,
                key=event.order_id.encode(),
                value=encode_outcome(outcome),
                headers=headers,
                finishes=(pending.tp, event.offset),
                reduced=lambda: _minimal_record(outcome, headers),
            )
        if trace is not None:
            trace.finish(status, pending.reason)
        self._metrics.outcome(status, pending.operation)
        self._done(pending.tp, event.offset, pending)

    async def _dead_letter(
        self,
        record: Record,
        error: InvalidEventError,
        received_at: datetime,
        trace: EventTrace | None,
    ) -> None:
        current_trace.set(trace.log_ids if trace is not None else None)
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
            self._dead_letter_topic,
            key=record.key,
            value=record.value,
            headers=headers,
            finishes=(tp, record.offset) if outcome is None else None,
            reduced=lambda: reduce_dead_letter(key=record.key, value=record.value, headers=headers),
        )
        self._metrics.dead_letter(error.reason)
        if outcome is not None:
            self._counts["outcomes"] += 1
            with _publishing(trace, self._results_topic, self._tracer) as traced:
                await self._publish(
                    self._results_topic,
                    key=outcome.origin.order_id.encode(),
                    value=encode_outcome(outcome),
                    headers=traced,
                    finishes=(tp, record.offset),
                    reduced=lambda: _minimal_record(outcome, traced),
                )
            self._metrics.outcome(outcome.status, outcome.operation)
        if trace is not None:
            trace.finish("invalid", error.reason)
        self._done(tp, record.offset, None)

    async def _publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        finishes: tuple[TP, int] | None = None,
        reduced: Callable[[], RecordParts | None] | None = None,
        partition: int | None = None,
    ) -> None:
        """Publish until Kafka acknowledges: an outcome is never dropped, only delayed.

        The one exception is a record Kafka refuses as too large: that is not retriable (the
        same bytes fail forever, and the partition's commits would stop behind them), so it is
        replaced once by ``reduced()``, and dropped with an error when nothing smaller exists.
        """
        delay = 0.1
        while True:
            try:
                await self._sink.publish(
                    topic,
                    key=key,
                    value=value,
                    headers=headers,
                    finishes=finishes,
                    partition=partition,
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


def _too_large(exc: Exception) -> bool:
    """Whether the producer or the broker refused a record for its size (never retriable)."""
    from aiokafka.errors import MessageSizeTooLargeError  # noqa: PLC0415 - only on failure

    return isinstance(exc, MessageSizeTooLargeError)


def _minimal_record(outcome: Outcome, headers: Headers) -> RecordParts:
    """The results-topic record of ``minimal_outcome(outcome)`` (the full one was too large)."""
    reduced = minimal_outcome(outcome)
    return RecordParts(
        key=reduced.origin.order_id.encode(), value=encode_outcome(reduced), headers=headers
    )


def _publishing(
    trace: EventTrace | None, topic: str, tracer: Tracer | None
) -> AbstractContextManager[Headers]:
    """The publish span of an outcome, yielding its trace headers (none for an untraced one)."""
    if trace is None:
        return nullcontext([])
    return trace.publishing(topic, tracer)
