"""What the operator commands (``results``, ``replay``) share: Kafka settings, flags, progress.

Not a subcommand (hence the underscore): no ``add_arguments``/``run_from_args`` of its own.

The Kafka settings come from the environment exactly as ``engage-consumer run`` reads them
(``consumer.config.load_settings``: the same variables, checks and messages), so an operator
runs these commands in the consumer's own pod, or anywhere with the same ``KAFKA_*`` variables.
Only the Kafka variables and the output topics are read: these commands never talk to Engage,
so its settings (and the input topics) are neither needed nor checked. Flags override.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO, TypeVar

from consumer.results import parse_moment, parse_statuses

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from consumer.config import Settings
    from consumer.kafka import KafkaConnection
    from consumer.outcomes import Status

_Word = TypeVar("_Word", bound=str)
#: Variables the operator commands read (with every ``KAFKA_*`` one).
_OUTPUT_TOPICS = ("RESULTS_TOPIC", "DEAD_LETTER_TOPIC")
# load_settings requires these; the operator commands use none of them, so stand-ins that
# cannot reach anything fill them (``.invalid`` never resolves: RFC 2606).
_STAND_INS = {
    "ENGAGE_BASE_URL": "http://engage.invalid",
    "ENGAGE_API_KEY": "unused-by-operator-commands",
    "INPUT_TOPICS": "engage-consumer.operator-command-stand-in",
    "STATE_TOPIC": "",
}


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    """``--bootstrap-servers``, over ``KAFKA_BOOTSTRAP_SERVERS``."""
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT,...",
        help="Kafka to read (default: KAFKA_BOOTSTRAP_SERVERS; the other KAFKA_* security "
        "settings come from the environment as for `run`)",
    )


def load_kafka_settings(
    *, command: str, overrides: Mapping[str, str | None], environ: Mapping[str, str] | None = None
) -> tuple[Settings, KafkaConnection]:
    """The settings and connection for an operator command; ``ConfigError`` when they are bad.

    ``overrides`` maps variables to flag values (None: the flag was not given).
    """
    from consumer.config import load_settings  # noqa: PLC0415 - the parser stays cheap
    from consumer.service import kafka_connection  # noqa: PLC0415

    source = os.environ if environ is None else environ
    wanted = {
        name: value
        for name, value in source.items()
        if name.startswith("KAFKA_") or name in _OUTPUT_TOPICS
    }
    wanted |= {name: value for name, value in overrides.items() if value is not None}
    settings = load_settings(_STAND_INS | wanted)
    # The broker's logs and quotas name the client: say which tool is reading.
    connection = replace(
        kafka_connection(settings), client_id=f"{settings.kafka_client_id}-{command}"
    )
    return settings, connection


def statuses_flag(text: str) -> frozenset[Status]:
    """``--status failed,unknown`` (argparse type)."""
    try:
        return parse_statuses(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def moment_flag(text: str) -> datetime:
    """``--since 2026-03-01T14:00Z`` or ``--since 2h`` (argparse type)."""
    try:
        return parse_moment(text, now=datetime.now(UTC))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def words_flag(text: str) -> frozenset[str]:
    """A comma-separated list of words (argparse type), e.g. ``--reason deadline,job_timeout``."""
    words = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not words:
        raise argparse.ArgumentTypeError("name at least one")
    return words


def union(values: list[frozenset[_Word]] | None) -> frozenset[_Word] | None:
    """The union of a repeatable flag's values; None when it was not given."""
    if not values:
        return None
    return frozenset[_Word]().union(*values)


def run_async(
    command: str,
    main: Callable[[], Awaitable[int]],
    *,
    interrupted: str = "",
) -> int:
    """Run ``main`` in an event loop and turn how it ended into the exit status.

    Bad settings found on the way (a topic the cluster does not have) exit 2, a Kafka failure
    exits 1 with the error in one line, Ctrl-C exits 130 after printing ``interrupted``.
    """
    import anyio  # noqa: PLC0415 - the parser is built for every command: import on use

    from consumer.errors import ConfigError  # noqa: PLC0415
    from consumer.kafka import kafka_error_in  # noqa: PLC0415

    try:
        return anyio.run(main)
    except KeyboardInterrupt:
        if interrupted:
            sys.stderr.write(f"\nengage-consumer {command}: interrupted. {interrupted}\n")
        return 130
    except ConfigError as exc:
        sys.stderr.write(f"engage-consumer {command}: {exc}\n")
        return 2
    except Exception as exc:  # the boundary: Kafka could not be read or written
        if _broken_pipe_in(exc):
            # The reader went away (``results --json | head``): not an error of ours. Standard
            # output points at nothing from here on, so the exit's flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        error = kafka_error_in(exc)
        if error is None:
            raise
        sys.stderr.write(f"engage-consumer {command}: kafka failed: {error!r}\n")
        return 1


def _broken_pipe_in(exc: BaseException) -> bool:
    """Whether standard output closed under us, also from inside anyio's exception groups."""
    if isinstance(exc, BrokenPipeError):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_broken_pipe_in(inner) for inner in exc.exceptions)
    return False


def usage_error(command: str, message: str) -> int:
    """Report a bad combination of flags as argparse does; the exit status 2."""
    sys.stderr.write(f"engage-consumer {command}: error: {message}\n")
    return 2


class Progress:
    """A one-line progress bar on a terminal; plain periodic lines elsewhere."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, *, label: str = "done") -> None:
        self.total = total
        self.stream = stream
        self.label = label
        self.tty = stream.isatty()
        self._last = 0.0

    def show(self, done: int, *, final: bool = False) -> None:
        """Redraw (at most a few times a second)."""
        now = time.monotonic()
        if not final and now - self._last < (0.2 if self.tty else 2.0):
            return
        self._last = now
        width = 40
        filled = int(width * min(done, self.total) / max(self.total, 1))
        bar = "█" * filled + "·" * (width - filled)
        line = f"{self.label} [{bar}] {done}/{self.total}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
