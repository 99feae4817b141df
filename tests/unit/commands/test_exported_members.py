import argparse
import importlib
import pkgutil

import consumer.commands
from consumer.cli import build_parser
from tests.unit.surface import assert_surface


def test_every_command_module_offers_the_two_entry_points() -> None:
    """Each subcommand module has ``add_arguments`` and ``run_from_args``; none exports more."""
    assert_surface("consumer.commands", [])
    # A module whose name starts with "_" is what the commands share, not a command.
    names = [m.name for m in pkgutil.iter_modules(consumer.commands.__path__) if m.name[0] != "_"]
    assert names
    for name in names:
        module = importlib.import_module(f"consumer.commands.{name}")
        assert callable(module.add_arguments), name
        assert callable(module.run_from_args), name


def test_every_command_module_is_reachable_from_the_cli() -> None:
    """No command module sits unused: the parser names each one."""
    reachable: set[str] = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        reachable.add(parser.get_default("_module"))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    commands = consumer.commands.__path__
    names = {
        f"consumer.commands.{m.name}" for m in pkgutil.iter_modules(commands) if m.name[0] != "_"
    }
    assert names <= reachable
