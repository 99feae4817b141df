"""Log lines written while handling a traced event carry its trace and span ids."""

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from consumer.logs import add_trace_ids, configure_logging, current_trace, get_logger


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_processor_adds_the_current_ids_and_nothing_outside_an_event() -> None:
    """Inside: trace_id and span_id; outside: the line is left as it was."""
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    token = current_trace.set(("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"))
    try:
        assert add_trace_ids(None, "info", {"event": "x"}) == {
            "event": "x",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
        }
    finally:
        current_trace.reset(token)


def test_json_lines_of_the_service_and_of_libraries_carry_the_ids() -> None:
    """structlog's lines and the standard library's (aiokafka, httpx) alike."""
    stream = io.StringIO()
    configure_logging(level="INFO", stream=stream)
    token = current_trace.set(("1" * 32, "2" * 16))
    try:
        get_logger("test").info("sending write")
        logging.getLogger("httpx").warning("slow")
    finally:
        current_trace.reset(token)
    get_logger("test").info("idle")
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line.get("trace_id"), line.get("span_id")) for line in lines] == [
        ("1" * 32, "2" * 16),
        ("1" * 32, "2" * 16),
        (None, None),
    ]
