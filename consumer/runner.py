"""``engage-consumer run``: wires Kafka, the order book, the dispatcher and the pipeline together.

Three loops run beside the Engage calls: intake (fetch records, pause partitions while too much
is buffered), commit (every COMMIT_INTERVAL_SECONDS, per partition up to the lowest unfinished
offset, finished offsets above it in the metadata) and tick (expire operations past their
deadline). SIGTERM or SIGINT stops intake, lets in-flight work finish for up to
DRAIN_TIMEOUT_SECONDS, commits, closes Kafka and exits 0.
"""

from __future__ import annotations

import signal
import sys
import time
from typing import TYPE_CHECKING

import anyio

from consumer.config import load_settings
from consumer.errors import ConfigError
from consumer.kafka_in import committed_state, make_consumer, subscribe
from consumer.kafka_out import KafkaSink, TransactionalSink, make_producer
from consumer.logs import configure_logging, get_logger
from consumer.metrics import Metrics
from consumer.offsets import OffsetTracker
from consumer.orders import OrderBook
from consumer.pipeline import Pipeline

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from consumer.config import Settings
    from consumer.pipeline import TP

log = get_logger("runner")


class Service:
    """One running consumer: its Kafka clients, its pipeline and its loops."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tracker = OffsetTracker()
        self.book = OrderBook(
            max_tracked=settings.max_tracked_orders,
            clock=time.monotonic,
            revision_wait=settings.revision_wait_seconds,
        )
        self.assigned: set[TP] = set()
        self.paused = False
        self.stopping = anyio.Event()
        self._commit_lock = anyio.Lock()
        #: set in transactional mode (KAFKA_TRANSACTIONAL_ID): outcomes commit with offsets
        self._transactions: TransactionalSink | None = None
        self._consumer: AIOKafkaConsumer | None = None
        # Intent recording: a waiter bumps _intent_seq and wakes the intent loop, which commits
        # and publishes the highest sequence that a successful commit covered.
        self._intent_seq = 0
        self._durable_seq = 0
        self._intent_wakeup = anyio.Event()
        self._durable_changed = anyio.Event()
        self._pipeline: Pipeline | None = None
        self.commits = 0
        self.metrics = Metrics()
        #: monotonic time of the commit loop's latest iteration (liveness); None before it runs
        self.commit_loop_at: float | None = None
        #: the port the health server bound (HTTP_PORT, or the chosen one for 0)
        self.http_port: int | None = None

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The Kafka consumer once ``run`` made it (the readiness probe reads its group state)."""
        return self._consumer

    def count(self, name: str) -> int:
        """A pipeline counter (``finished``, ``outcomes``, ``invalid``, …); 0 before start."""
        return self._pipeline.counts.get(name, 0) if self._pipeline is not None else 0

    # -- rebalance hooks (called by aiokafka while it coordinates the group) ----------------

    async def partitions_assigned(self, assigned: set[TP]) -> None:
        """Track the new partitions and learn which offsets a previous owner already finished."""
        log.info("partitions assigned", partitions=sorted(assigned))
        self.assigned |= assigned
        for tp in assigned:
            self.tracker.assign(tp)
        if self._consumer is None or self._pipeline is None or not assigned:
            return
        # Orders still busy at the revoke became idle since, with tags another owner may have
        # made stale meanwhile: start the new generation knowing nothing.
        self.book.forget_idle()
        committed = await committed_state(self._consumer, assigned)
        for tp, (offset, finished, intents) in committed.items():
            self.metrics.offset_known(tp, offset)
            if finished:
                self._pipeline.skip[tp] = finished
                log.info("skipping finished offsets", partition=tp, count=len(finished))
            if intents:
                self._pipeline.interrupted[tp] = intents
                log.warning(
                    "actions interrupted by the previous owner will not be resent",
                    partition=tp,
                    offsets=sorted(intents),
                )

    async def partitions_revoked(self, revoked: set[TP]) -> None:
        """Finish what is in flight for the revoked partitions (bounded), commit, forget them."""
        log.info("partitions revoked", partitions=sorted(revoked))
        self.assigned -= revoked
        self.metrics.forget(revoked)
        # Wake intent waiters of the revoked partitions: they must not send.
        changed, self._durable_changed = self._durable_changed, anyio.Event()
        changed.set()
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.hold(revoked)
            with anyio.move_on_after(self.settings.drain_timeout_seconds):
                # A short poll: progress is counted by synchronous code, and a rebalance is
                # rare enough that an event per partition would be machinery for nothing.
                while pipeline.calls_running(revoked) or pipeline.publishing(revoked):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            await self.commit_now()
            pipeline.abandon(revoked)
        for tp in revoked:
            self.tracker.revoke(tp)

    # -- loops --------------------------------------------------------------------------------

    async def record(self, tp: TP, offset: int) -> bool:
        """The pipeline's IntentLog: return once a commit carries the intent for ``offset``.

        Commits are shared: every intent recorded while a commit is in flight rides on the next
        one, so a burst of actions costs one commit round trip, not one each.
        """
        if not self.tracker.intend(tp, offset):
            return False
        self._intent_seq += 1
        mine = self._intent_seq
        self._intent_wakeup.set()
        while self._durable_seq < mine:
            if tp not in self.assigned:
                return False
            await self._durable_changed.wait()
        return tp in self.assigned

    def released(self) -> None:
        """The pipeline's IntentLog: an intended action finished; commit without waiting."""
        self._intent_wakeup.set()

    async def _intent_loop(self) -> None:
        while True:
            await self._intent_wakeup.wait()
            self._intent_wakeup = anyio.Event()
            covered = self._intent_seq
            if await self.commit_now():
                self._durable_seq = covered
            else:
                await anyio.sleep(0.05)
                self._intent_wakeup.set()
            changed, self._durable_changed = self._durable_changed, anyio.Event()
            changed.set()

    def _sink(self, producer: AIOKafkaProducer) -> KafkaSink | TransactionalSink:
        if self.settings.kafka_transactional_id is None:
            return KafkaSink(producer)
        self._transactions = TransactionalSink(producer, wake=self._intent_wakeup_set)
        return self._transactions

    def _intent_wakeup_set(self) -> None:
        # Read the attribute at call time: the intent loop replaces the event after each wait.
        self._intent_wakeup.set()

    async def commit_now(self) -> bool:
        """Commit every partition whose position or metadata moved; False if the commit failed.

        A failed commit is retried by the next call.
        """
        consumer = self._consumer
        if consumer is None:
            return False
        from aiokafka.errors import KafkaError  # noqa: PLC0415
        from aiokafka.structs import OffsetAndMetadata, TopicPartition  # noqa: PLC0415

        async with self._commit_lock:
            if self._transactions is not None:
                return await self._commit_transaction(self._transactions)
            positions = self.tracker.to_commit()
            if not positions:
                return True
            offsets = {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, metadata)
                for (topic, partition), (offset, metadata) in positions.items()
            }
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("commit failed; will retry", error=repr(exc))
                return False
            self.tracker.mark_committed(positions)
            self.metrics.offsets_committed(positions)
            self.commits += 1
            return True

    async def _commit_transaction(self, sink: TransactionalSink) -> bool:
        """Write the staged outcomes and the offsets they finish in one Kafka transaction."""
        from aiokafka.structs import OffsetAndMetadata, TopicPartition  # noqa: PLC0415

        batch = sink.take()
        for staged in batch:
            if staged.finishes is not None:
                self.tracker.finished(*staged.finishes)
        positions = self.tracker.to_commit()
        if not batch and not positions:
            return True

        def offsets() -> dict[TopicPartition, OffsetAndMetadata]:
            return {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, metadata)
                for (topic, partition), (offset, metadata) in positions.items()
            }

        # A failure raises TransactionFailed, which stops the service: the tracker already
        # counts this batch as finished, so carrying on could skip its offsets.
        await sink.commit(batch, offsets=offsets, group_id=self.settings.kafka_group_id)
        self.tracker.mark_committed(positions)
        self.metrics.offsets_committed(positions)
        self.commits += 1
        return True

    async def _intake(self, consumer: AIOKafkaConsumer, pipeline: Pipeline) -> None:
        limit = self.settings.max_buffered_events
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=1000)
            for records in batch.values():
                for record in records:
                    if (record.topic, record.partition) in self.assigned:
                        pipeline.take(record)
            buffered = pipeline.in_progress()
            if buffered >= limit:
                consumer.pause(*consumer.assignment())
                if not self.paused:
                    log.info("paused: too many events in progress", buffered=buffered)
                self.paused = True
            elif self.paused and buffered <= limit // 2:
                consumer.resume(*consumer.assignment())
                self.paused = False
                log.info("resumed", buffered=buffered)

    async def _commit_loop(self) -> None:
        while True:
            self.commit_loop_at = time.monotonic()
            await anyio.sleep(self.settings.commit_interval_seconds)
            await self.commit_now()

    async def _tick_loop(self, pipeline: Pipeline) -> None:
        while True:
            await anyio.sleep(0.25)
            pipeline.tick()

    async def run(self, *, started: Callable[[], None] | None = None) -> None:
        """Run until ``stopping`` is set, then drain, commit and close.

        The health server answers from before the consumer joins the group until after Kafka
        is closed, so the probes see the whole life, drain included.
        """
        from consumer.health import Probe, open_health_server  # noqa: PLC0415

        probe = Probe(self, commit_interval=self.settings.commit_interval_seconds)
        async with open_health_server(probe, self.metrics, port=self.settings.http_port) as http:
            self.http_port = http.port
            log.info("health server listening", port=http.port)
            await self._run(started)

    async def _run(self, started: Callable[[], None] | None) -> None:
        from consumer.dispatch import DispatchSettings, open_dispatcher  # noqa: PLC0415
        from consumer.engage import EngageClientSettings  # noqa: PLC0415

        settings = self.settings
        producer = make_producer(settings)
        consumer = make_consumer(settings)
        self._consumer = consumer
        try:
            # Inside the try: a start that fails (wrong password, untrusted certificate) must
            # still close both clients, or aiokafka reports them unclosed on the way out.
            await producer.start()
            async with (
                open_dispatcher(
                    EngageClientSettings.from_settings(settings),
                    DispatchSettings.from_settings(settings),
                    metrics=self.metrics,
                ) as dispatcher,
                anyio.create_task_group() as work,
            ):
                pipeline = Pipeline(
                    settings=settings,
                    book=self.book,
                    engage=dispatcher,
                    sink=self._sink(producer),
                    tracker=self.tracker,
                    task_group=work,
                    intents=self if settings.action_intents else None,
                    metrics=self.metrics,
                )
                self._pipeline = pipeline
                self.metrics.watch(
                    book=self.book,
                    pipeline=pipeline,
                    gate=dispatcher.gate,
                    consumer=consumer,
                    polls=dispatcher.client.poll_schedule,
                )
                # In the work group, not the loops group: actions still running during the
                # drain need their intents committed.
                work.start_soon(self._intent_loop)
                subscribe(consumer, settings.input_topics, self)
                await consumer.start()
                log.info("started", topics=list(settings.input_topics))
                if started is not None:
                    started()
                async with anyio.create_task_group() as loops:
                    loops.start_soon(self._intake, consumer, pipeline)
                    loops.start_soon(self._commit_loop)
                    loops.start_soon(self._tick_loop, pipeline)
                    await self.stopping.wait()
                    loops.cancel_scope.cancel()
                await self._drain(pipeline)
                work.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await consumer.stop()
                await producer.stop()
        log.info("stopped", commits=self.commits, **pipeline.counts)

    async def _drain(self, pipeline: Pipeline) -> None:
        """Let running Engage calls and outcome writes finish; start nothing new; commit."""
        pipeline.hold()
        log.info(
            "draining",
            calls_running=pipeline.calls_running(),
            in_progress=pipeline.in_progress(),
        )
        with anyio.move_on_after(self.settings.drain_timeout_seconds):
            while pipeline.calls_running() or pipeline.publishing():  # noqa: ASYNC110
                await anyio.sleep(0.02)
        await self.commit_now()
        if pipeline.calls_running():
            log.warning(
                "drain deadline passed with Engage calls running; their events will be redone",
                calls_running=pipeline.calls_running(),
            )
        log.info("drained", left_for_next_owner=pipeline.in_progress())


async def serve(settings: Settings) -> None:
    """Run the service until SIGTERM or SIGINT."""
    service = Service(settings)

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("signal received; draining", signal=signal.Signals(signum).name)
                service.stopping.set()
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals)
        await service.run()
        tg.cancel_scope.cancel()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``run`` takes no arguments: everything comes from the environment."""
    parser.epilog = "Configured from the environment; see the README for every variable."


def run_from_args(_args: argparse.Namespace) -> int:
    """Load settings, set up logging, run until a signal; 0 after a clean drain."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"engage-consumer: {exc}", file=sys.stderr)  # noqa: T201 - before logging exists
        return 2
    configure_logging(level=settings.log_level, secrets=settings.secrets())
    from aiokafka.errors import KafkaConnectionError  # noqa: PLC0415

    from consumer.kafka_conn import explain_connection_failure, kafka_error_in  # noqa: PLC0415

    try:
        anyio.run(serve, settings)
    except Exception as exc:  # the boundary: a Kafka failure ends the run with status 1
        error = kafka_error_in(exc)
        if error is None:
            raise
        if isinstance(error, KafkaConnectionError):
            # aiokafka's message names no cause ("Unable to bootstrap"): look once more and say
            # which one (credentials, CA, address) in one line.
            log.error(anyio.run(explain_connection_failure, settings))  # noqa: TRY400
        else:
            log.error("kafka failed", error=repr(error))  # noqa: TRY400 - no traceback needed
        return 1
    return 0
