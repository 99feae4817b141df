"""Log lines are JSON and never carry a registered secret."""

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog
from aiokafka.errors import GroupCoordinatorNotAvailableError, RequestTimedOutError

from consumer.logs import REDACTED, CoordinatorWaitFilter, configure_logging, get_logger

COORDINATOR = logging.getLogger(CoordinatorWaitFilter.LOGGER)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    coordinator_filters = COORDINATOR.filters[:]
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    COORDINATOR.filters[:] = coordinator_filters


def test_log_lines_are_json_with_bound_context_and_secrets_scrubbed() -> None:
    """A secret inside a message, a field or a nested value is replaced before rendering."""
    stream = io.StringIO()
    configure_logging(level="INFO", secrets=["s3cr3t-key"], stream=stream)
    log = get_logger("test").bind(orderId="o-1", partition=3, offset=42)
    log.info("calling engage", url="https://x/?apikey=s3cr3t-key", nested={"k": ["s3cr3t-key"]})
    logging.getLogger("aiokafka").warning("lost connection with key s3cr3t-key")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert "s3cr3t-key" not in stream.getvalue()
    assert lines[0]["orderId"] == "o-1"
    assert lines[0]["offset"] == 42
    assert lines[0]["url"] == f"https://x/?apikey={REDACTED}"
    assert lines[0]["nested"] == {"k": [REDACTED]}
    assert lines[1]["level"] == "warning"
    assert REDACTED in lines[1]["event"]


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def _coordinator_wait() -> None:
    """What aiokafka logs when a broker has no coordinator for the group yet."""
    COORDINATOR.error("Group Coordinator Request failed: %s", GroupCoordinatorNotAvailableError())


def test_a_young_coordinator_wait_is_debug_and_other_library_errors_stay_errors() -> None:
    """At INFO the expected wait is not logged; a timeout, or another line, still is an error."""
    stream = io.StringIO()
    configure_logging(level="INFO", stream=stream)
    _coordinator_wait()
    COORDINATOR.error("Group Coordinator Request failed: %s", RequestTimedOutError())
    COORDINATOR.error("Heartbeat failed: %r", GroupCoordinatorNotAvailableError())
    assert [(line["level"], line["event"]) for line in _lines(stream)] == [
        ("error", "Group Coordinator Request failed: [Error 7] RequestTimedOutError"),
        ("error", "Heartbeat failed: GroupCoordinatorNotAvailableError()"),
    ]


def test_at_debug_the_coordinator_wait_shows_as_debug() -> None:
    """LOG_LEVEL=DEBUG shows the demoted line, at its new level."""
    stream = io.StringIO()
    configure_logging(level="DEBUG", stream=stream)
    _coordinator_wait()
    assert [(line["level"], line["event"]) for line in _lines(stream)] == [
        ("debug", "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"),
    ]


def test_configuring_twice_installs_one_filter() -> None:
    """A second configure_logging replaces the filter instead of stacking another."""
    configure_logging(level="INFO", stream=io.StringIO())
    configure_logging(level="DEBUG", stream=io.StringIO())
    assert len([f for f in COORDINATOR.filters if isinstance(f, CoordinatorWaitFilter)]) == 1


def test_a_coordinator_wait_that_lasts_is_an_error_again() -> None:
    """Past the grace period of one run of failures the line keeps its level; a new run is
    demoted again once the line has been quiet for a while."""
    now = [0.0]
    wait = CoordinatorWaitFilter(
        level=logging.INFO, grace_seconds=30.0, quiet_seconds=10.0, clock=lambda: now[0]
    )

    def emitted_at(seconds: float) -> tuple[bool, str]:
        now[0] = seconds
        record = COORDINATOR.makeRecord(
            COORDINATOR.name,
            logging.ERROR,
            __file__,
            1,
            CoordinatorWaitFilter.MESSAGE,
            (GroupCoordinatorNotAvailableError(),),
            None,
        )
        return bool(wait.filter(record)), record.levelname

    # aiokafka asks again within its retry backoff: one run, never quiet for 10 s, until 38 s.
    assert [emitted_at(t) for t in (0.0, 8.0, 16.0, 24.0, 29.9, 30.0, 38.0, 100.0)] == [
        *[(False, "DEBUG")] * 5,
        (True, "ERROR"),
        (True, "ERROR"),
        (False, "DEBUG"),
    ]
