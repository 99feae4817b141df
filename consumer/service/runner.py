"""The running service: wires Kafka, the book, the dispatcher and the pipeline; runs the loops.

Three loops run beside the Engage calls: intake (fetch records, pause partitions while too much
is buffered), commit (every COMMIT_INTERVAL_SECONDS, per partition up to the lowest unfinished
offset, finished offsets above it in the metadata; ``consumer.service.commits``) and tick
(expire operations past their deadline). The rebalance hooks finish or abandon the work of
revoked partitions and learn what a previous owner committed for assigned ones. SIGTERM or
SIGINT stops intake, lets in-flight work finish for up to DRAIN_TIMEOUT_SECONDS, commits, closes
Kafka and exits 0. ``serve`` makes the tracer provider from the ``OTEL_*`` variables
(``consumer.tracing``) and shuts it down, exporting what is left, on the way out.

The one module that knows every part; the ``run`` command (``consumer.commands.run``) is its
only caller besides the demo and the tests.
"""

from __future__ import annotations

import signal
import socket
import time
from typing import TYPE_CHECKING, Any

import anyio

from consumer.credentials import CredentialsGate
from consumer.errors import ConfigError
from consumer.kafka import (
    GroupOffsets,
    KafkaSink,
    TransactionalSink,
    committed_state,
    ensure_changelog,
    fetch,
    group_generation,
    join,
    make_consumer,
    make_producer,
    partition_counts,
    pause,
    resume,
    subscribe,
    watch_heartbeats,
)
from consumer.logs import get_logger
from consumer.metrics import Metrics
from consumer.offsets import OffsetTracker
from consumer.orders import OrderBook
from consumer.service.commits import Committer, IntentLog
from consumer.service.dispatch import open_dispatcher
from consumer.service.fence import Fence
from consumer.service.inspect import describe_order
from consumer.service.pending import op_partition
from consumer.service.pipeline import Pipeline
from consumer.service.state_store import StateStore
from consumer.service.wiring import (
    consumer_settings,
    dispatch_settings,
    engage_client_settings,
    kafka_connection,
    pipeline_settings,
)
from consumer.tracing import EventTraces, shutdown_tracer_provider, tracer_provider_from_env

if TYPE_CHECKING:
    from collections.abc import Callable

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from opentelemetry.trace import TracerProvider

    from consumer.config import Settings
    from consumer.ratebudget import RateBudget
    from consumer.service.pending import OpRef
    from consumer.types import TP

log = get_logger("runner")


class Service:
    """One running consumer: its Kafka clients, its pipeline and its loops."""

    def __init__(
        self, settings: Settings, *, tracer_provider: TracerProvider | None = None
    ) -> None:
        self.settings = settings
        #: where the events' spans go (None: nothing recorded, inbound contexts passed on)
        self.tracer_provider = tracer_provider
        self.tracker = OffsetTracker()
        #: whether Engage accepts the API key; its deadline clock stands still while it does not
        self.credentials = CredentialsGate(on_change=self._key_changed)
        self.book: OrderBook[OpRef] = OrderBook(
            max_tracked=settings.max_tracked_orders,
            clock=self.credentials.deadline_clock,
            revision_wait=settings.revision_wait_seconds,
            record_changes=settings.state_topic is not None,
            embed_actions=settings.engage_action_delivery == "embedded",
            # An action rides in, or a write joins, a write of its own partition only: the
            # fence and a revocation then treat the one call as one partition's.
            lane=op_partition,
        )
        self.assigned: set[TP] = set()
        #: intake paused: too many events in progress
        self.paused = False
        #: intake paused: Engage refuses the API key
        self.held_for_key = False
        self.stopping = anyio.Event()
        self.metrics = Metrics()
        self._consumer: AIOKafkaConsumer | None = None
        self._pipeline: Pipeline | None = None
        self._committer: Committer | None = None
        self._intents: IntentLog | None = None
        self._budget: RateBudget | None = None
        self._state: StateStore | None = None
        #: input partitions of all input topics together (the denominator of the budget share)
        self.input_partitions = 0
        #: partitions of each input topic, as found at start
        self.partition_counts: dict[str, int] = {}
        session = settings.kafka_session_timeout_ms / 1000
        # The lease ends a fifth of the session (at least a second, at most half) before the
        # coordinator could drop this member: time for the heartbeat's answer and then some.
        self.fence = Fence(session_timeout=session, margin=min(max(1.0, session / 5), session / 2))
        #: monotonic time of the commit loop's latest iteration (liveness); None before it runs
        self.commit_loop_at: float | None = None
        #: the port the health server bound (HTTP_PORT, or the chosen one for 0)
        self.http_port: int | None = None

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The Kafka consumer once ``run`` made it (the readiness probe reads its group state)."""
        return self._consumer

    @property
    def engage_key_refused(self) -> bool:
        """Engage refuses the API key (401/403) and has not accepted it since (readiness)."""
        return self.credentials.refused

    def _key_changed(self, status: int | None) -> None:
        """The credentials gate locked (``status``: Engage's 401/403) or opened (``None``)."""
        if status is not None:
            log.error(
                "Engage refused the API key: check ENGAGE_API_KEY",
                status=status,
                then="every event waits (partitions paused, nothing committed past them, "
                "readiness 503); the key is tried again with backoff",
            )
        else:
            log.info(
                "Engage accepts the API key again: resuming",
                held_seconds=round(self.credentials.held_seconds(), 1),
            )

    def describe_order(self, order_id: str) -> dict[str, Any]:
        """What this member knows of ``order_id`` (``GET /orders/{orderId}``)."""
        consumer = self._consumer
        return describe_order(
            self.book.snapshot(order_id),
            partition_counts=self.partition_counts,
            assigned=self.assigned,
            member={
                "host": socket.gethostname(),
                "clientId": self.settings.kafka_client_id,
                "groupId": self.settings.kafka_group_id,
                "generation": group_generation(consumer) if consumer is not None else -1,
                "engageKeyRefused": self.credentials.refused,
            },
        )

    @property
    def commits(self) -> int:
        """Offset commits Kafka accepted so far."""
        return self._committer.commits if self._committer is not None else 0

    def count(self, name: str) -> int:
        """A pipeline counter (``finished``, ``outcomes``, ``invalid``, …); 0 before start."""
        return self._pipeline.counts[name] if self._pipeline is not None else 0

    async def commit_now(self) -> bool:
        """Commit what is committable now; False if the commit failed (or nothing runs yet)."""
        return await self._committer.commit_now() if self._committer is not None else False

    # -- rebalance hooks (called by aiokafka while it coordinates the group) ----------------

    async def partitions_assigned(self, assigned: set[TP]) -> None:
        """Track the new partitions and learn which offsets a previous owner already finished.

        aiokafka fetches for a new assignment while this hook still runs: the partitions stay
        paused until it is done, or a record could be taken in before its offset is known to
        be finished already (and an action redone that the previous owner had sent).
        """
        log.info("partitions assigned", partitions=sorted(assigned))
        consumer = self._consumer
        if consumer is not None and assigned:
            pause(consumer, assigned)
        try:
            await self._take_over(assigned)
        finally:
            if consumer is not None and assigned and not (self.paused or self.held_for_key):
                resume(consumer, assigned)

    async def _take_over(self, assigned: set[TP]) -> None:
        self.assigned |= assigned
        self.fence.grant(assigned)
        for tp in assigned:
            self.tracker.assign(tp)
        self._spend_share()
        if self._consumer is None or self._pipeline is None or not assigned:
            return
        # Orders still busy at the revoke became idle since, with tags another owner may have
        # made stale meanwhile: start the new generation knowing only what the group knows.
        self.book.forget_idle()
        if self._state is not None:
            # Before the partitions' first record: the book knows what their previous owners
            # knew, so no GET and no parked action for orders the group already had.
            await self._state.restore({p for _, p in self.assigned}, self.book)
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
        """Finish work under way for the revoked partitions (bounded), commit, forget them.

        Kafka calls this while the partitions are still this member's: no new write starts,
        but the polls, tag reads and actions of writes already sent go on, so events nearly
        done finish here instead of being written again by the next owner. Then, once those
        calls are done (or the wait ran out), nothing more goes out for them.
        """
        log.info("partitions revoked", partitions=sorted(revoked))
        pipeline = self._pipeline
        self.fence.close(revoked)
        if pipeline is not None:
            pipeline.hold_new_work(revoked)
            with anyio.move_on_after(self.settings.drain_timeout_seconds):
                # A short poll: progress is counted by synchronous code, and a rebalance is
                # rare enough that an event per partition would be machinery for nothing.
                while pipeline.calls_running(revoked) or pipeline.publishing(revoked):  # noqa: ASYNC110
                    await anyio.sleep(0.02)
        # From here nothing more goes out for them; writes asleep between polls wake up.
        self.fence.revoke(revoked)
        self.assigned -= revoked
        self.metrics.forget(revoked)
        if self._intents is not None:
            # Intent waiters of the revoked partitions must not send: wake them to give up.
            self._intents.partitions_revoked()
        if pipeline is not None:
            pipeline.hold(revoked)
            await self.commit_now()
            pipeline.abandon(revoked)
        for tp in revoked:
            self.tracker.revoke(tp)

    def _spend_share(self) -> None:
        """Spend the part of the key's budget that this member's part of the partitions is.

        Recomputed at every assignment (not at revocation: calls of revoked partitions that are
        still finishing need their tokens); no partitions, no share.
        """
        if self._budget is None:
            return
        total = self.input_partitions
        share = min(1.0, len(self.assigned) / total) if total else float(bool(self.assigned))
        self._budget.set_share(share)
        log.info(
            "budget share",
            share=round(share, 4),
            requests_per_second=round(self._budget.ceiling, 3),
            key_budget=self.settings.engage_rate_limit,
        )

    async def _check_input_partitions(self, producer: AIOKafkaProducer) -> None:
        """Input topics must have equal partition counts, or an order's events may part ways.

        Range assignment puts partition p of every topic on one member; with unequal counts
        some p exist in one topic only, and an order keyed to p there and to another partition
        elsewhere is gated across two processes. ``INPUT_PARTITIONS_MISMATCH=warn`` runs anyway.
        """
        topics = self.settings.input_topics
        counts = await partition_counts(producer, topics)
        self.partition_counts = counts
        known = {topic: n for topic, n in counts.items() if n}
        for topic in sorted(set(counts) - set(known)):
            log.warning("input topic not found (yet); its partitions are not counted", topic=topic)
        self.input_partitions = sum(known.values())
        if len(set(known.values())) <= 1:
            await self._ensure_state_topic(max(known.values(), default=0))
            return
        described = ", ".join(f"{topic} has {n}" for topic, n in sorted(known.items()))
        problem = (
            f"INPUT_TOPICS have different partition counts ({described}): an order's events "
            "on two topics could land on two replicas; give the topics one partition count"
        )
        if self.settings.input_partitions_mismatch == "warn":
            log.warning("input topics differ in partitions", problem=problem, then="running anyway")
            await self._ensure_state_topic(max(known.values()))
            return
        raise ConfigError([problem + ", or set INPUT_PARTITIONS_MISMATCH=warn"])

    async def _ensure_state_topic(self, partitions: int) -> None:
        """Create the state topic with the input topics' partition count unless it exists."""
        topic = self.settings.state_topic
        if topic is None or partitions == 0:
            return
        if await ensure_changelog(kafka_connection(self.settings), topic, partitions=partitions):
            log.info("state topic created", topic=topic, partitions=partitions)

    # -- loops --------------------------------------------------------------------------------

    async def _intake(self, consumer: AIOKafkaConsumer, pipeline: Pipeline) -> None:
        limit = self.settings.max_buffered_events
        while True:
            batch = await fetch(consumer, timeout_ms=200, max_records=1000)
            for records in batch.values():
                for record in records:
                    if (record.topic, record.partition) in self.assigned:
                        pipeline.take(record)
            self._hold_for_key(consumer)
            buffered = pipeline.in_progress()
            if buffered >= limit:
                consumer.pause(*consumer.assignment())
                if not self.paused:
                    log.info("paused: too many events in progress", buffered=buffered)
                self.paused = True
            elif self.paused and buffered <= limit // 2:
                if not self.held_for_key:
                    consumer.resume(*consumer.assignment())
                self.paused = False
                log.info("resumed", buffered=buffered)

    def _hold_for_key(self, consumer: AIOKafkaConsumer) -> None:
        """Take nothing more in while Engage refuses the key; take in again once it accepts."""
        refused = self.credentials.refused
        if refused and not self.held_for_key:
            consumer.pause(*consumer.assignment())
            self.held_for_key = True
        elif not refused and self.held_for_key:
            self.held_for_key = False
            if not self.paused:
                consumer.resume(*consumer.assignment())

    async def _commit_loop(self) -> None:
        while True:
            self.commit_loop_at = time.monotonic()
            await anyio.sleep(self.settings.commit_interval_seconds)
            await self.commit_now()

    async def _tick_loop(self, pipeline: Pipeline) -> None:
        while True:
            await anyio.sleep(0.25)
            pipeline.tick()

    # -- life ---------------------------------------------------------------------------------

    async def run(self, *, started: Callable[[], None] | None = None) -> None:
        """Run until ``stopping`` is set, then drain, commit and close.

        The health server answers from before the consumer joins the group until after Kafka
        is closed, so the probes see the whole life, drain included.
        """
        from consumer.health import Probe, open_health_server  # noqa: PLC0415

        probe = Probe(self, commit_interval=self.settings.commit_interval_seconds)
        async with open_health_server(
            probe, self.metrics, port=self.settings.http_port, orders=self.describe_order
        ) as http:
            self.http_port = http.port
            log.info("health server listening", port=http.port)
            await self._run(started)

    def _commits(
        self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer
    ) -> tuple[KafkaSink | TransactionalSink, Committer, IntentLog]:
        """The outcome sink, the committer and the intent log, plain or transactional."""
        transactions: TransactionalSink | None = None
        sink: KafkaSink | TransactionalSink
        if self.settings.kafka_transactional_id is None:
            sink = KafkaSink(producer)
        else:

            def wake() -> None:
                # A staged outcome wakes the intent log's loop, which commits at once (batching).
                intents.wake()

            sink = transactions = TransactionalSink(producer, wake=wake)
        committer = Committer(
            tracker=self.tracker,
            metrics=self.metrics,
            group_id=self.settings.kafka_group_id,
            offsets=GroupOffsets(consumer),
            transactions=transactions,
        )
        intents = IntentLog(
            committer=committer, tracker=self.tracker, owns=self.assigned.__contains__
        )
        return sink, committer, intents

    async def _run(self, started: Callable[[], None] | None) -> None:
        settings = self.settings
        producer = make_producer(
            kafka_connection(settings), transactional_id=settings.kafka_transactional_id
        )
        consumer = make_consumer(consumer_settings(settings))
        self._consumer = consumer
        sink, self._committer, intents = self._commits(consumer, producer)
        self._intents = intents
        if settings.state_topic is not None:
            self._state = StateStore(
                topic=settings.state_topic,
                connection=kafka_connection(settings),
                sink=sink,
                generation=lambda: group_generation(consumer),
            )
        try:
            # Inside the try: a start that fails (wrong password, untrusted certificate) must
            # still close both clients, or aiokafka reports them unclosed on the way out.
            await producer.start()
            async with (
                open_dispatcher(
                    engage_client_settings(settings),
                    dispatch_settings(settings),
                    credentials=self.credentials,
                    metrics=self.metrics,
                ) as dispatcher,
                anyio.create_task_group() as work,
            ):
                self._budget = dispatcher.budget
                pipeline = Pipeline(
                    settings=pipeline_settings(settings),
                    book=self.book,
                    engage=dispatcher,
                    sink=sink,
                    tracker=self.tracker,
                    task_group=work,
                    intents=intents if settings.action_intents else None,
                    fence=self.fence,
                    state=self._state,
                    deadline_clock=self.credentials.deadline_clock,
                    metrics=self.metrics,
                    traces=EventTraces(self.tracer_provider),
                )
                self._pipeline = pipeline
                self.metrics.watch(
                    book=self.book,
                    pipeline=pipeline,
                    gate=dispatcher.gate,
                    consumer=consumer,
                    polls=dispatcher.client.poll_schedule,
                    fence=self.fence,
                )
                # In the work group, not the loops group: actions still running during the
                # drain need their intents committed.
                work.start_soon(intents.run)
                # Checked before the consumer joins the group: a refusal takes no partition
                # from anyone.
                await self._check_input_partitions(producer)
                subscribe(consumer, settings.input_topics, self)
                await join(consumer)
                watch_heartbeats(consumer, self.fence.renew)
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
        """Let running calls, the actions their writes unblock and outcome writes finish; commit.

        No new write starts: its event is left to whoever owns the partition next.
        """
        pipeline.hold_new_work()
        log.info(
            "draining",
            calls_running=pipeline.calls_running(),
            in_progress=pipeline.in_progress(),
        )
        with anyio.move_on_after(self.settings.drain_timeout_seconds):
            # Calls held for a refused API key cannot finish: no point waiting for them (their
            # events stay uncommitted, and the next owner does them).
            while (  # noqa: ASYNC110
                pipeline.calls_running() and not self.credentials.refused
            ) or pipeline.publishing():
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
    provider = tracer_provider_from_env()
    service = Service(settings, tracer_provider=provider)

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                log.info("signal received; draining", signal=signal.Signals(signum).name)
                service.stopping.set()
                return

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals)
            await service.run()
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutdown_tracer_provider, provider)
