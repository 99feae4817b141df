"""Log lines are JSON and never carry a registered secret."""

import io
import logging
from collections.abc import Iterator

import orjson
import pytest
import structlog

from consumer.logs import REDACTED, configure_logging, get_logger


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


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
