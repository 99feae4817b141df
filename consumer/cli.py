"""The ``engage-consumer`` command: parses arguments and hands each subcommand to its module.

Each subcommand module owns its own arguments through ``add_arguments(parser)`` and
``run_from_args(args) -> int`` (the exit status). Modules keep heavy imports (aiokafka, aiohttp)
inside ``run_from_args`` so that building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The first thing ``engage-consumer --help`` says: what the service does, in two lines.
DESCRIPTION = (
    "Kafka order events -> Voyado Engage orders, each action sent only after Engage\n"
    "confirmed the write it depends on; one outcome per event on a results topic."
)

# subcommand path -> (module, one-line help)
_COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("run",): ("consumer.commands.run", "run the consumer, configured from the environment"),
    ("validate",): (
        "consumer.commands.validate",
        "check events (a file or -, JSON lines or an array)",
    ),
    ("demo",): (
        "consumer.commands.demo",
        "local broker + simulator + a realistic stream, end to end",
    ),
    ("results",): (
        "consumer.commands.results",
        "read the results topic: outcomes by status and operation, or each one",
    ),
    ("replay",): (
        "consumer.commands.replay",
        "republish events to do again (failed, unknown, ...), once, in per-order order",
    ),
    ("inspect",): (
        "consumer.commands.inspect",
        "what a running consumer knows of one order (state, tag, what waits, who owns it)",
    ),
    ("sandbox", "kafka"): ("consumer.sandbox.kafka.cli", "start a local Apache Kafka broker"),
    ("sandbox", "engage"): ("consumer.sandbox.engage.cli", "start the Engage simulator"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser, asking each subcommand module for its own arguments."""
    parser = argparse.ArgumentParser(
        prog="engage-consumer",
        description=DESCRIPTION,
        # Keeps the description's two lines as written.
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}
    for path, (module_name, help_text) in _COMMANDS.items():
        if len(path) == 1:
            sub = top.add_parser(path[0], help=help_text, description=help_text)
        else:
            if path[0] not in groups:
                group_parser = top.add_parser(path[0], help="local stand-ins for Kafka and Engage")
                groups[path[0]] = group_parser.add_subparsers(
                    dest="subcommand", required=True, metavar="SUBCOMMAND"
                )
            sub = groups[path[0]].add_parser(path[1], help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit status."""
    args = build_parser().parse_args(argv)
    module = importlib.import_module(args._module)  # noqa: SLF001 - our own namespace key
    status: int = module.run_from_args(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
