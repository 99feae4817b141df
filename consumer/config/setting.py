"""One setting's definition: its variable, its kind, its meaning; and the field it fills.

The ``Settings`` field is the variable's name in lower case (``ENGAGE_RATE_LIMIT`` fills
``engage_rate_limit``). The field's default (or the lack of one: required) is read from
``Settings`` itself, so code that builds ``Settings`` directly and the environment share one
default. Imports nothing of the consumer but the settings record and the kinds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from consumer.config.kinds import Kind, SecretText
from consumer.config.values import Settings

T = TypeVar("T")

_FIELDS: Final = {f.name: f for f in dataclasses.fields(Settings)}


def plain(markdown: str) -> str:
    """Text without its Markdown code marks, for terminals and error messages."""
    return markdown.replace("`", "")


@dataclass(frozen=True, kw_only=True, slots=True)
class Setting(Generic[T]):
    """One environment variable and the ``Settings`` field it fills."""

    env: str
    kind: Kind[T]
    #: one line, Markdown; the help shows it without the backticks
    meaning: str
    #: For a required setting: what the checks across settings see while it is missing or
    #: invalid, so that they still run and every problem is reported at once.
    stand_in: T | None = None
    #: The default as a template over other fields (``{kafka_group_id}.order-state``), read as
    #: if the variable had been set to it.
    derived_from: str | None = None
    #: Set but empty means None (the feature is off) rather than "unset, take the default".
    empty_means_none: bool = False
    #: How the documentation writes a default that is no fixed text (it follows the version).
    shown_default: str | None = None

    @property
    def field(self) -> str:
        """The ``Settings`` field this variable fills."""
        return self.env.lower()

    @property
    def required(self) -> bool:
        """Whether ``Settings`` has no default for the field: the variable must be set."""
        field = _FIELDS[self.field]
        return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING

    @property
    def secret(self) -> bool:
        """Whether the value is a ``Secret``: never logged, never shown."""
        return isinstance(self.kind, SecretText)

    def default(self) -> Any:  # noqa: ANN401 - each setting has its own type; Settings checks it
        """The field's default (a fresh one for mutable defaults); only for optional settings."""
        field = _FIELDS[self.field]
        if field.default_factory is not dataclasses.MISSING:
            return field.default_factory()
        if field.default is dataclasses.MISSING:
            raise LookupError(f"{self.env} is required: it has no default")
        return field.default


@dataclass(frozen=True, kw_only=True, slots=True)
class Group:
    """Settings shown together in the help, under one title."""

    title: str
    settings: tuple[Setting[Any], ...]
