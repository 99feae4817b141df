"""The consumer's Prometheus metrics: one registry per ``Service``, counters and scrape-time gauges.

Each ``Metrics`` owns its own ``CollectorRegistry`` rather than the process-wide default, so
several services (tests, the demo) can run in one process without their series colliding.

Two kinds of metric live here, chosen by where the value is:

- events that happen on the hot path (a record consumed, an outcome published, an Engage
  answer, a retry, a dead letter) are counters and a latency histogram, bumped where they
  happen; a labelled counter costs about a microsecond;
- values that already live in the service's objects (in-flight calls, the order book's counts,
  the rate budget, Kafka positions) are read only when Prometheus scrapes, by ``_StateCollector``
  through small Protocols (``watch``). Nothing on the hot path keeps a copy of them up to date.

Every name starts with ``engage_consumer_``. Labels hold only bounded vocabularies (topics,
event types, statuses, endpoints, reasons, partitions): never an order id, a URL or a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from aiokafka.structs import TopicPartition

    from consumer.types import TP

PREFIX: Final = "engage_consumer_"

#: Engage answers range from a few milliseconds (the simulator, a warm pool) to the 30 s read
#: timeout; the buckets cover that span roughly 2.5x apart.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

ENDPOINTS: Final = ("orders_write", "orders_delete", "job_poll", "order_read", "action")

#: Budget saturation from which the budget binds: more replicas would only split it.
SATURATED: Final = 0.9


# Every counter would otherwise carry a *_created series too: twice the series for a timestamp
# that the process_start_time_seconds series already tells. (A process-wide switch in
# prometheus_client; this module is the only user of it in the service.)
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream


# -- what the scrape-time collector reads ---------------------------------------------------


class BookView(Protocol):
    """The order book's counts (``consumer.orders.book.OrderBook``)."""

    def tracked(self) -> int:
        """Orders remembered, busy and idle."""
        ...

    def busy(self) -> int:
        """Orders with work queued, parked or in flight."""
        ...

    def oldest_gated_age(self) -> float:
        """Seconds the oldest revision-gated action has waited."""
        ...

    def gated(self) -> int:
        """Actions waiting for a write with their revision."""
        ...


class PipelineView(Protocol):
    """The pipeline's counts (``consumer.service.pipeline.Pipeline``)."""

    def in_progress(self) -> int:
        """Events taken in whose outcome is not yet acknowledged."""
        ...

    def publishing(self) -> int:
        """Outcome and dead-letter writes not yet acknowledged."""
        ...

    def calls_waiting(self) -> int:
        """Engage calls ready to start and waiting for one of this member's call places."""
        ...


class BudgetView(Protocol):
    """The API key's rate budget (``consumer.ratebudget.RateBudget``)."""

    @property
    def rate(self) -> float:
        """Requests per second allowed now."""
        ...

    @property
    def throttle_count(self) -> int:
        """429 answers seen."""
        ...

    @property
    def share(self) -> float:
        """This member's part of the key's budget."""
        ...

    @property
    def ceiling(self) -> float:
        """This member's budget in requests per second."""
        ...

    @property
    def spent(self) -> int:
        """Tokens taken so far."""
        ...

    def saturation(self) -> float:
        """Requests spent over the last seconds as a part of what the budget allowed."""
        ...


class FenceView(Protocol):
    """The service's fence (``consumer.service.fence.Fence``)."""

    def lease_valid(self) -> bool:
        """Whether the group session surely still holds."""
        ...


class CredentialsView(Protocol):
    """Whether Engage accepts the API key (``consumer.credentials.CredentialsGate``)."""

    @property
    def refused(self) -> bool:
        """Engage refused the key and has not accepted it since."""
        ...

    @property
    def refusals(self) -> int:
        """401/403 answers so far."""
        ...

    def held_seconds(self) -> float:
        """Seconds every request was held for a refused key, so far."""
        ...


class GateView(Protocol):
    """The dispatcher's in-flight bounds (``consumer.service.gate.CallGate``)."""

    @property
    def credentials(self) -> CredentialsView:
        """Whether Engage accepts the API key."""
        ...

    @property
    def in_flight(self) -> int:
        """Writes, actions and reads holding a place."""
        ...

    @property
    def polls_in_flight(self) -> int:
        """Job polls holding a place."""
        ...

    @property
    def budget(self) -> BudgetView:
        """The rate budget every request spends."""
        ...


class PollsView(Protocol):
    """How the client times job polls (``consumer.polling.PollSchedule``)."""

    @property
    def typical(self) -> float:
        """The median job duration the first poll is planned from, in seconds."""
        ...


class ConsumerView(Protocol):
    """What the collector reads from aiokafka's ``AIOKafkaConsumer`` (all synchronous)."""

    def assignment(self) -> set[TopicPartition]:
        """The partitions assigned now."""
        ...

    def paused(self) -> set[TopicPartition]:
        """The partitions paused now."""
        ...

    def highwater(self, partition: TopicPartition) -> int | None:
        """The last high watermark a fetch reported, None before the first fetch."""
        ...


class Metrics:
    """All metrics of one service, in one registry; ``render`` is the /metrics body."""

    def __init__(self, *, process: bool = True) -> None:
        """Create the registry; ``process`` adds the standard process_* and python_* series."""
        self.registry = CollectorRegistry()
        reg = self.registry
        self.events_consumed = Counter(
            f"{PREFIX}events_consumed",
            "Records taken in from the input topics, by topic and CloudEvent type "
            "(invalid: could not be decoded; replayed: finished by a previous owner).",
            ["topic", "type"],
            registry=reg,
        )
        self.outcomes = Counter(
            f"{PREFIX}outcomes",
            "Outcome records acknowledged by Kafka, by status and operation.",
            ["status", "operation"],
            registry=reg,
        )
        self.engage_requests = Counter(
            f"{PREFIX}engage_requests",
            "HTTP requests to Engage by endpoint and answer (the HTTP status, or the name of "
            "the transport error when no answer came).",
            ["endpoint", "status"],
            registry=reg,
        )
        self.engage_latency = Histogram(
            f"{PREFIX}engage_request_duration_seconds",
            "Time from sending a request to Engage until its answer (or failure), by endpoint.",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.retries = Counter(
            f"{PREFIX}retries",
            "Engage operations tried again, by why the previous attempt failed.",
            ["reason"],
            registry=reg,
        )
        self.dead_lettered = Counter(
            f"{PREFIX}dead_lettered",
            "Records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=reg,
        )
        self.commits = Counter(
            f"{PREFIX}commits",
            "Offset commits Kafka accepted.",
            registry=reg,
        )
        #: last committed offset per partition: ours, or the previous owner's at assignment
        self.committed: dict[TP, int] = {}
        self._state = _StateCollector(self)
        reg.register(self._state)
        if process:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
            GCCollector(registry=reg)

    def render(self, encoder: Callable[[CollectorRegistry], bytes] = generate_latest) -> bytes:
        """The registry in a Prometheus exposition format (text by default)."""
        return encoder(self.registry)

    def watch(
        self,
        *,
        book: BookView | None = None,
        pipeline: PipelineView | None = None,
        gate: GateView | None = None,
        consumer: ConsumerView | None = None,
        polls: PollsView | None = None,
        fence: FenceView | None = None,
    ) -> None:
        """Tell the scrape-time collector where the live values are (None: not exported)."""
        self._state.book = book
        self._state.pipeline = pipeline
        self._state.gate = gate
        self._state.consumer = consumer
        self._state.polls = polls
        self._state.fence = fence

    # -- hot path -----------------------------------------------------------------------------

    def event_consumed(self, topic: str, event_type: str) -> None:
        """One record taken in."""
        self.events_consumed.labels(topic, event_type).inc()

    def outcome(self, status: str, operation: str | None) -> None:
        """One outcome acknowledged (an invalid record's outcome has no operation)."""
        self.outcomes.labels(status, operation or "none").inc()

    def request_done(
        self, *, method: str, kind: str, url: str, status: str, seconds: float
    ) -> None:
        """One Engage request answered or failed (``consumer.engage.client.RequestObserver``)."""
        endpoint = endpoint_of(method=method, kind=kind, url=url)
        self.engage_requests.labels(endpoint, status).inc()
        self.engage_latency.labels(endpoint).observe(seconds)

    def retried(self, reason: str) -> None:
        """One operation tried again after a failure of kind ``reason``."""
        self.retries.labels(reason).inc()

    def dead_letter(self, reason: str) -> None:
        """One record dead-lettered."""
        self.dead_lettered.labels(reason).inc()

    # -- offsets ------------------------------------------------------------------------------

    def offsets_committed(self, positions: Mapping[TP, tuple[int, str]]) -> None:
        """Kafka accepted a commit of these positions."""
        self.commits.inc()
        for tp, (offset, _metadata) in positions.items():
            self.committed[tp] = offset

    def offset_known(self, tp: TP, offset: int | None) -> None:
        """The group's committed offset of a newly assigned partition (None: never committed)."""
        if offset is not None:
            self.committed[tp] = offset

    def forget(self, tps: Iterable[TP]) -> None:
        """Partitions revoked: their offsets are another member's to report."""
        for tp in tps:
            self.committed.pop(tp, None)


def endpoint_of(*, method: str, kind: str, url: str) -> str:
    """The ``endpoint`` label of a request, from what ``EngageClient`` sends.

    Order ids are percent-encoded in paths (``engage_wire.order_path``), so only the action
    endpoint's own path can end in ``/action``.
    """
    if kind == "poll":
        return "job_poll"
    if method == "GET":
        return "order_read"
    if method == "DELETE":
        return "orders_delete"
    if url.endswith("/action"):
        return "action"
    return "orders_write"


class _StateCollector:
    """Reads the live values at scrape time: the hot path keeps no copies of them."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self.book: BookView | None = None
        self.pipeline: PipelineView | None = None
        self.gate: GateView | None = None
        self.consumer: ConsumerView | None = None
        self.polls: PollsView | None = None
        self.fence: FenceView | None = None

    def describe(self) -> Iterator[Metric]:
        """Nothing to describe up front: names are checked for clashes at first scrape."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Build this scrape's gauges from the objects being watched."""
        yield from self._gate()
        yield from self._book()
        yield from self._pipeline()
        yield from self._partitions()
        yield from self._scaling()
        if self.fence is not None:
            yield _gauge(
                "group_session_held",
                "1 while the group session surely holds (the lease of the last answered "
                "heartbeat); 0: cut off from the coordinator, requests wait.",
                float(self.fence.lease_valid()),
            )

    def _gate(self) -> Iterator[Metric]:
        gate = self.gate
        if gate is None:
            return
        yield _gauge(
            "engage_calls_in_flight", "Engage writes, actions and reads running.", gate.in_flight
        )
        yield _gauge("engage_polls_in_flight", "Engage job polls running.", gate.polls_in_flight)
        credentials = gate.credentials
        yield _gauge(
            "engage_api_key_refused",
            "1 while Engage refuses ENGAGE_API_KEY (401/403): every event waits, partitions are "
            "paused, readiness fails; the key is tried again with backoff.",
            float(credentials.refused),
        )
        yield CounterMetricFamily(
            f"{PREFIX}engage_api_key_refusals",
            "401/403 answers from Engage (the API key refused).",
            value=credentials.refusals,
        )
        yield CounterMetricFamily(
            f"{PREFIX}engage_api_key_refused_seconds",
            "Seconds every Engage request was held for a refused API key.",
            value=credentials.held_seconds(),
        )
        budget = gate.budget
        yield _gauge(
            "rate_budget_requests_per_second",
            "Requests per second the API key's rate budget allows now (AIMD on 429s).",
            budget.rate,
        )
        yield CounterMetricFamily(
            f"{PREFIX}engage_throttled",
            "429 Too Many Requests answers from Engage.",
            value=budget.throttle_count,
        )
        yield _gauge(
            "rate_budget_share",
            "This member's part of the API key's budget (its input partitions / all of them).",
            budget.share,
        )
        yield _gauge(
            "rate_budget_member_requests_per_second",
            "This member's budget: ENGAGE_RATE_LIMIT (the whole group's) times its share.",
            budget.ceiling,
        )
        yield CounterMetricFamily(
            f"{PREFIX}rate_budget_spent",
            "Rate tokens this member spent: requests it sent or was about to send.",
            value=budget.spent,
        )
        yield _gauge(
            "rate_budget_saturation",
            "Requests spent over the last 30 s as a part of what the budget allowed; near 1 the "
            "budget binds and more replicas add no throughput.",
            budget.saturation(),
        )
        if self.polls is not None:
            yield _gauge(
                "engage_job_typical_seconds",
                "Median time Engage took to process recent writes; a job's first poll comes then.",
                self.polls.typical,
            )

    def _book(self) -> Iterator[Metric]:
        book = self.book
        if book is None:
            return
        yield _gauge(
            "tracked_orders", "Orders the order book remembers (busy and idle).", book.tracked()
        )
        yield _gauge("busy_orders", "Orders with work queued, parked or in flight.", book.busy())
        yield _gauge(
            "gated_actions", "Actions waiting for a write with their revision.", book.gated()
        )
        yield _gauge(
            "oldest_gated_action_age_seconds",
            "How long the oldest revision-gated action has waited (0 when none waits).",
            book.oldest_gated_age(),
        )

    def _pipeline(self) -> Iterator[Metric]:
        pipeline = self.pipeline
        if pipeline is None:
            return
        yield _gauge(
            "events_in_progress",
            "Events taken in whose outcome Kafka has not acknowledged yet (queued or running).",
            pipeline.in_progress(),
        )
        yield _gauge(
            "outcomes_publishing",
            "Outcome and dead-letter records sent to Kafka and not yet acknowledged.",
            pipeline.publishing(),
        )

    def _lag(self) -> int:
        """Records between the committed offsets and the high watermarks, all partitions."""
        consumer = self.consumer
        if consumer is None:
            return 0
        total = 0
        for tp in consumer.assignment():
            mark = consumer.highwater(tp)
            offset = self._metrics.committed.get((tp.topic, tp.partition))
            if mark is not None and offset is not None:
                total += max(mark - offset, 0)
        return total

    def _scaling(self) -> Iterator[Metric]:
        """The backlog more replicas could work off: the autoscaler's signal."""
        if self.pipeline is None or self.gate is None:
            return
        # Records not taken in yet, and calls waiting for one of this member's places, wait
        # for this member's capacity; events waiting for the budget or for Engage's jobs do
        # not, and once the budget binds no replica more adds throughput at all.
        waiting = max(self._lag() - self.pipeline.in_progress(), 0) + self.pipeline.calls_waiting()
        binds = self.gate.budget.saturation() >= SATURATED
        yield _gauge(
            "scalable_backlog",
            "Events another replica could speed up: records not yet taken in plus calls waiting "
            "for a call place, 0 while the rate budget binds (saturation >= 0.9).",
            0 if binds else waiting,
        )

    def _partitions(self) -> Iterator[Metric]:
        consumer = self.consumer
        if consumer is None:
            return
        assigned = sorted(consumer.assignment())
        yield _gauge(
            "assigned_partitions", "Input partitions assigned to this member.", len(assigned)
        )
        yield _gauge(
            "paused_partitions",
            "Input partitions paused because too many events are in progress.",
            len(consumer.paused()),
        )
        labels = ["topic", "partition"]
        committed = GaugeMetricFamily(
            f"{PREFIX}committed_offset",
            "The group's committed offset (next offset to read) per assigned partition.",
            labels=labels,
        )
        highwater = GaugeMetricFamily(
            f"{PREFIX}high_watermark",
            "The partition's high watermark at the last fetch (next offset to be written).",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            f"{PREFIX}lag",
            "Records between the committed offset and the high watermark per partition.",
            labels=labels,
        )
        offsets = self._metrics.committed
        for tp in assigned:
            key = [tp.topic, str(tp.partition)]
            mark = consumer.highwater(tp)
            offset = offsets.get((tp.topic, tp.partition))
            if offset is not None:
                committed.add_metric(key, offset)
            if mark is not None:
                highwater.add_metric(key, mark)
            if mark is not None and offset is not None:
                lag.add_metric(key, max(mark - offset, 0))
        yield committed
        yield highwater
        yield lag


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}{name}", documentation, value=value)
