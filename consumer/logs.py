"""Structured JSON logs (structlog), with secrets scrubbed as a last line of defence.

Every log line is one JSON object on stderr. Callers bind context (orderId, eventId, partition,
offset) with ``log.bind(...)``. The settings never put a secret in an event on purpose (``Secret``
redacts its repr), but a secret can still slip in through an exception message or a URL, so the
final processor replaces every registered secret value wherever it appears in a line. While a
task works for one traced event, ``current_trace`` holds its trace and span ids, and every line
it logs carries them as ``trace_id`` and ``span_id`` (``consumer.tracing`` sets it).

Library lines (aiokafka, httpx) come through the standard library at WARNING and above, with
one exception: aiokafka's expected, short-lived "no group coordinator yet" is demoted to debug
while it is young (``CoordinatorWaitFilter`` says why), so a normal start logs nothing above
info.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Final, TextIO

import orjson
import structlog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, MutableMapping

REDACTED = "********"


class SecretScrubber:
    """A structlog processor that replaces registered secret values in every string field."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def register(self, secrets: Iterable[str]) -> None:
        """Add values that must never appear in a log line (short values are ignored: noise)."""
        merged = set(self._secrets) | {s for s in secrets if len(s) >= 4}
        # Longest first, so a secret that contains another one is replaced whole.
        self._secrets = tuple(sorted(merged, key=len, reverse=True))

    def _scrub(self, value: object) -> object:
        if isinstance(value, str):
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            return value
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub(v) for v in value]
        return value

    def __call__(
        self, _logger: object, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Scrub one event dict in place."""
        if not self._secrets:
            return event_dict
        for key, value in event_dict.items():
            event_dict[key] = self._scrub(value)
        return event_dict


scrubber = SecretScrubber()

#: (trace id, span id) in hex of the event the current task works for; None outside one.
current_trace: ContextVar[tuple[str, str] | None] = ContextVar("current_trace", default=None)


def add_trace_ids(
    _logger: object, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the current event's ``trace_id`` and ``span_id``, if any."""
    ids = current_trace.get()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


class CoordinatorWaitFilter(logging.Filter):
    """Demotes aiokafka's "Group Coordinator Request failed: [Error 15] ..." while it is young.

    aiokafka logs that line at error each time a broker answers its FindCoordinator request with
    COORDINATOR_NOT_AVAILABLE, and asks again after its retry backoff. Brokers answer so on every
    normal start of a group on a cluster whose ``__consumer_offsets`` does not exist yet (the
    first group creates it) or whose partition for the group has no leader yet (a broker that
    just started loads it): expected, and over within a second or two. It is a fault only when
    it lasts (an offsets topic that cannot be created, e.g. a replication factor above the
    broker count: the consumer never joins), so the line is debug for the first
    ``grace_seconds`` of a run of such failures and keeps its own level after that. A run ends
    when the line has not come for ``quiet_seconds``. Any other line, and this line with another
    error, passes untouched.
    """

    LOGGER: Final = "aiokafka.consumer.group_coordinator"
    MESSAGE: Final = "Group Coordinator Request failed: %s"
    COORDINATOR_NOT_AVAILABLE: Final = 15  # the Kafka protocol's error code

    def __init__(
        self,
        *,
        level: int,
        grace_seconds: float = 30.0,
        quiet_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self._show_debug = level <= logging.DEBUG
        self._grace = grace_seconds
        self._quiet = quiet_seconds
        self._clock = clock
        self._run_started: float | None = None
        self._last_seen = 0.0

    def _is_coordinator_wait(self, record: logging.LogRecord) -> bool:
        if record.msg != self.MESSAGE or not isinstance(record.args, tuple) or not record.args:
            return False
        # Matched by the protocol's error code, not by class: importing aiokafka here would
        # slow down every command's start, even `--help`.
        return getattr(record.args[0], "errno", None) == self.COORDINATOR_NOT_AVAILABLE

    def filter(self, record: logging.LogRecord) -> bool:
        """True to emit ``record``; a young coordinator wait becomes debug (shown only then)."""
        if not self._is_coordinator_wait(record):
            return True
        now = self._clock()
        if self._run_started is None or now - self._last_seen > self._quiet:
            self._run_started = now
        self._last_seen = now
        if now - self._run_started >= self._grace:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return self._show_debug


def _render(_logger: object, _method: str, event_dict: MutableMapping[str, Any]) -> str:
    return orjson.dumps(event_dict, default=repr).decode()


def configure_logging(
    *, level: str = "INFO", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> None:
    """Set up JSON logging for the whole process; call once at start-up."""
    scrubber.register(secrets)
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info,
            scrubber,
            _render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
    # aiokafka and httpx log through the standard library: route those lines through the same
    # renderer so operators get one format, and keep their chatter at WARNING.
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                add_trace_ids,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
                structlog.processors.format_exc_info,
                scrubber,
                _render,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    coordinator = logging.getLogger(CoordinatorWaitFilter.LOGGER)
    for old in [f for f in coordinator.filters if isinstance(f, CoordinatorWaitFilter)]:
        coordinator.removeFilter(old)
    coordinator.addFilter(CoordinatorWaitFilter(level=numeric))


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger that names its component in every line."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
