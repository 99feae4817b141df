"""Settings: the typed record, the one table of every variable, and the one reader of both.

Every setting is defined once, in ``table`` (its variable, the ``Settings`` field it fills,
its kind and constraints, its meaning; the field holds its type and default). That one
definition drives ``load_settings`` (reads the environment and reports every problem at once),
``settings_help`` (the epilog of ``engage-consumer run --help``) and ``markdown_table`` (the
README's table, rewritten by ``./dev docs`` = ``python -m consumer.config --write README.md``).
Secrets (the Engage API key, the SASL password) are ``Secret``s, whose ``repr`` and ``str``
never show the value, and no help or table shows one.

Modules: ``values`` (``Settings``, ``Secret``), ``kinds`` (how text becomes a value),
``setting`` (one definition), ``table`` (all of them), ``load`` (the reader), ``docs`` (the
help and the table). Imports nothing of the consumer but ``consumer.events`` (the default
action map) and the error tree: every other part may import this one.
"""

from consumer.config.docs import markdown_table, settings_help, with_table
from consumer.config.load import load_settings
from consumer.config.setting import Group, Setting
from consumer.config.table import GROUPS, SETTINGS
from consumer.config.values import SaslMechanism, Secret, SecurityProtocol, Settings

__all__ = [
    "GROUPS",
    "SETTINGS",
    "Group",
    "SaslMechanism",
    "Secret",
    "SecurityProtocol",
    "Setting",
    "Settings",
    "load_settings",
    "markdown_table",
    "settings_help",
    "with_table",
]
