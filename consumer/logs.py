"""Structured JSON logs (structlog), with secrets scrubbed as a last line of defence.

Every log line is one JSON object on stderr. Callers bind context (orderId, eventId, partition,
offset) with ``log.bind(...)``. The settings never put a secret in an event on purpose (``Secret``
redacts its repr), but a secret can still slip in through an exception message or a URL, so the
final processor replaces every registered secret value wherever it appears in a line.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import structlog

if TYPE_CHECKING:
    from collections.abc import Iterable, MutableMapping

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


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    """A logger that names its component in every line."""
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(component=name)
    return logger
