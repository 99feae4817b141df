"""``engage-consumer run``: load the settings, set up logging, run the service until a signal.

Exit status: 0 after a clean drain, 1 when Kafka failed, 2 for bad settings.
"""

from __future__ import annotations

import argparse
import sys

import anyio

from consumer.config import load_settings, settings_help
from consumer.errors import ConfigError
from consumer.logs import configure_logging, get_logger

log = get_logger("runner")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``run`` takes no arguments: everything comes from the environment, listed in the epilog."""
    parser.epilog = settings_help()
    # The epilog is laid out already (groups, one indented meaning per variable).
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def run_from_args(_args: argparse.Namespace) -> int:
    """Load settings, set up logging, run until a signal; 0 after a clean drain."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"engage-consumer: {exc}", file=sys.stderr)  # noqa: T201 - before logging exists
        return 2
    configure_logging(level=settings.log_level, secrets=settings.secrets())
    # Heavy imports (aiokafka, aiohttp) only once the command runs: building the parser stays cheap.
    from aiokafka.errors import KafkaConnectionError  # noqa: PLC0415

    from consumer.kafka import explain_connection_failure, kafka_error_in  # noqa: PLC0415
    from consumer.service import kafka_connection, serve  # noqa: PLC0415

    try:
        anyio.run(serve, settings)
    except Exception as exc:  # the boundary: a Kafka failure ends the run with status 1
        refused = _config_error_in(exc)
        if refused is not None:
            # What the cluster showed does not fit the settings (e.g. input topics with
            # different partition counts): a setting to fix, as at start.
            log.error("invalid settings", problems=refused.problems)  # noqa: TRY400
            print(f"engage-consumer: {refused}", file=sys.stderr)  # noqa: T201
            return 2
        error = kafka_error_in(exc)
        if error is None:
            raise
        if isinstance(error, KafkaConnectionError):
            # aiokafka's message names no cause ("Unable to bootstrap"): look once more and say
            # which one (credentials, CA, address) in one line.
            log.error(anyio.run(explain_connection_failure, kafka_connection(settings)))  # noqa: TRY400
        else:
            log.error("kafka failed", error=repr(error))  # noqa: TRY400 - no traceback needed
        return 1
    return 0


def _config_error_in(exc: BaseException) -> ConfigError | None:
    """A ``ConfigError`` that ended the run, also from inside anyio's exception groups."""
    if isinstance(exc, ConfigError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _config_error_in(inner)) is not None:
                return found
    return None
