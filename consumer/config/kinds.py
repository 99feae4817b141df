"""Kinds of setting: how a variable's text becomes a typed value, and how a value is written.

A kind parses the stripped, non-empty text of one variable. It reports every problem it finds
through ``report`` (a full sentence naming the variable) and returns what it could read, so
that the checks across settings still see it; it returns ``INVALID`` when nothing of the text
is usable and the setting's default must stand in. ``show`` writes a value as it would be set
in the environment (the documented defaults), ``constraint`` says in words what is accepted.
Imports nothing of the consumer but the settings record and the default action map.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Callable, Mapping
from typing import Final, Generic, Literal, Protocol, TypeAlias, TypeVar
from urllib.parse import urlsplit

import orjson

from consumer.config.values import Secret
from consumer.events import DEFAULT_ACTION_MAP

T = TypeVar("T")
Num = TypeVar("Num", int, float)
Word = TypeVar("Word", bound=str)

#: Where a kind reports a problem: one sentence that names the variable.
Report: TypeAlias = Callable[[str], None]

_TOPIC_CHARACTERS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)
_TOPIC_MAX_LENGTH: Final = 249  # Kafka's own limit on a topic name
_PORT_MAX: Final = 65535


class Invalid(enum.Enum):
    """The text of a variable held nothing usable: the setting's default stands in."""

    VALUE = "invalid"


INVALID: Final = Invalid.VALUE


class Kind(Protocol[T]):
    """How the text of one variable becomes a ``T``, and back."""

    def parse(self, name: str, text: str, report: Report, /) -> T | Literal[Invalid.VALUE]:
        """Read ``text`` (stripped, never empty), reporting each problem of variable ``name``."""
        ...

    def show(self, value: T, /) -> str:
        """``value`` as one would write it in the environment."""
        ...

    def constraint(self) -> str:
        """What the kind accepts beyond its type, in words (Markdown); empty when nothing."""
        ...


class Text:
    """Any text, as given."""

    def parse(self, _name: str, text: str, _report: Report) -> str:
        """Every non-empty text is a valid one."""
        return text

    def show(self, value: str) -> str:
        """The text itself."""
        return value

    def constraint(self) -> str:
        """Nothing beyond text."""
        return ""


class SecretText:
    """Text that must never be shown: parsed into a ``Secret``, shown as nothing."""

    def parse(self, _name: str, text: str, _report: Report) -> Secret:
        """Wrap the text so that no repr or log line shows it."""
        return Secret(text)

    def show(self, _value: Secret) -> str:
        """Never the value: documentation and help have no business showing one."""
        return ""

    def constraint(self) -> str:
        """Nothing beyond text."""
        return ""


class Number(Generic[Num]):
    """A finite ``int`` or ``float`` of at least ``minimum``."""

    def __init__(self, kind: type[Num], *, minimum: Num) -> None:
        self.kind: type[Num] = kind
        self.minimum: Num = minimum

    def parse(self, name: str, text: str, report: Report) -> Num | Literal[Invalid.VALUE]:
        """The number, or ``INVALID`` with the reason reported."""
        try:
            parsed = self.kind(text)
        except ValueError:
            report(f"{name}={text!r} is not a valid {self.kind.__name__}")
            return INVALID
        if not math.isfinite(parsed):
            # float() takes "nan" and "inf", and NaN passes every comparison below (NaN < x
            # is False): a NaN deadline would never expire.
            report(f"{name}={text!r} must be a finite number")
            return INVALID
        if parsed < self.minimum:
            report(f"{name}={text!r} must be at least {self.minimum}")
            return INVALID
        return parsed

    def show(self, value: Num) -> str:
        """Whole numbers without a fraction (``50``, not ``50.0``)."""
        return str(int(value)) if value == int(value) else str(value)

    def constraint(self) -> str:
        """The minimum."""
        return f"at least {self.show(self.minimum)}"


class Port:
    """A TCP port number; 0 lets the system pick a free one."""

    def __init__(self) -> None:
        self._number = Number(int, minimum=0)

    def parse(self, name: str, text: str, report: Report) -> int | Literal[Invalid.VALUE]:
        """A number from 0 to 65535."""
        port = self._number.parse(name, text, report)
        if port is not INVALID and port > _PORT_MAX:
            report(f"{name}={port} is not a port")
            return INVALID
        return port

    def show(self, value: int) -> str:
        """The number."""
        return str(value)

    def constraint(self) -> str:
        """The range."""
        return f"0 to {_PORT_MAX}; 0 picks a free one"


class Flag:
    """A yes-or-no: ``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``."""

    def parse(self, name: str, text: str, report: Report) -> bool | Literal[Invalid.VALUE]:
        """True or False, whatever the case of the word."""
        if text.lower() in {"1", "true", "yes", "on"}:
            return True
        if text.lower() in {"0", "false", "no", "off"}:
            return False
        report(f"{name}={text!r} must be true or false")
        return INVALID

    def show(self, value: bool) -> str:
        """``true`` or ``false``."""
        return "true" if value else "false"

    def constraint(self) -> str:
        """The words are the usual ones: nothing to add to the default's."""
        return ""


class Choice(Generic[Word]):
    """One of a few words, matched without regard to case and read as written here.

    ``notes`` say what a word means where its name does not (shown after it in the docs).
    """

    def __init__(
        self, choices: tuple[Word, ...], *, notes: Mapping[Word, str] | None = None
    ) -> None:
        self.choices = choices
        self.notes: Mapping[Word, str] = notes or {}

    def parse(self, name: str, text: str, report: Report) -> Word | Literal[Invalid.VALUE]:
        """The matching choice, spelt as the choices spell it."""
        for choice in self.choices:
            if text.upper() == choice.upper():
                return choice
        report(f"{name}={text!r} must be one of {', '.join(self.choices)}")
        return INVALID

    def show(self, value: Word) -> str:
        """The word."""
        return value

    def constraint(self) -> str:
        """The words, each with its note."""
        words = [
            f"`{choice}` ({self.notes[choice]})" if choice in self.notes else f"`{choice}`"
            for choice in self.choices
        ]
        return "one of " + ", ".join(words)


class HostPorts:
    """Comma-separated ``host:port`` addresses, kept as written (aiokafka takes the string)."""

    def parse(self, name: str, text: str, report: Report) -> str:
        """The text; each address that is not ``host:port`` is reported."""
        for server in filter(None, (s.strip() for s in text.split(","))):
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                report(f"{name}: {server!r} is not host:port")
        return text

    def show(self, value: str) -> str:
        """The addresses."""
        return value

    def constraint(self) -> str:
        """Said by the meaning, which is the format."""
        return ""


class HttpUrl:
    """An ``http`` or ``https`` URL, without a trailing slash."""

    def parse(self, name: str, text: str, report: Report) -> str | Literal[Invalid.VALUE]:
        """The URL without its trailing slashes (paths are joined to it)."""
        parts = urlsplit(text)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            report(f"{name}={text!r} must be an http(s) URL")
            return INVALID
        return text.rstrip("/")

    def show(self, value: str) -> str:
        """The URL."""
        return value

    def constraint(self) -> str:
        """Said by the meaning's example."""
        return ""


def check_topic(name: str, topic: str, report: Report) -> None:
    """Report ``topic`` when Kafka would refuse it as a topic name."""
    if not topic or len(topic) > _TOPIC_MAX_LENGTH or not set(topic) <= _TOPIC_CHARACTERS:
        report(f"{name}: {topic!r} is not a valid Kafka topic name")


class Topic:
    """One Kafka topic name."""

    def parse(self, name: str, text: str, report: Report) -> str:
        """The name; reported, but kept, when Kafka would refuse it.

        Kept so that the checks across topics still compare it with the others.
        """
        check_topic(name, text, report)
        return text

    def show(self, value: str) -> str:
        """The name."""
        return value

    def constraint(self) -> str:
        """Kafka's rules for names need no repeating."""
        return ""


class Topics:
    """Comma-separated Kafka topic names."""

    def parse(self, name: str, text: str, report: Report) -> tuple[str, ...]:
        """The names, in order; each invalid one reported and kept (see ``Topic``)."""
        topics = tuple(t.strip() for t in text.split(",") if t.strip())
        if not topics:
            report(f"{name} names no topic")
        for topic in topics:
            check_topic(name, topic, report)
        return topics

    def show(self, value: tuple[str, ...]) -> str:
        """The names, comma-separated."""
        return ",".join(value)

    def constraint(self) -> str:
        """Kafka's rules for names need no repeating."""
        return ""


class ExistingFile:
    """The path of a file that exists when the consumer starts."""

    def parse(self, name: str, text: str, report: Report) -> str | Literal[Invalid.VALUE]:
        """The path, or ``INVALID`` when no file is there."""
        if not os.path.isfile(text):  # noqa: PTH113 - plain check is clearer
            report(f"{name}={text!r}: no such file")
            return INVALID
        return text

    def show(self, value: str) -> str:
        """The path."""
        return value

    def constraint(self) -> str:
        """Checked at start."""
        return "the file must exist"


class ActionMap:
    """Which Engage action each lifecycle type triggers: the defaults, with overrides.

    Written as JSON (``{"order.shipped": "ShipIt"}``) or as ``TYPE=ACTION`` pairs separated by
    commas; a type may omit its ``order.`` prefix. Types not named keep their default action.
    """

    def parse(self, name: str, text: str, report: Report) -> dict[str, str]:
        """The defaults with each valid override applied; each bad one reported."""
        mapping = dict(DEFAULT_ACTION_MAP)
        pairs: dict[str, object]
        if text.startswith("{"):
            try:
                loaded = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                report(f"{name} is not valid JSON: {exc}")
                return mapping
            pairs = loaded if isinstance(loaded, dict) else {}
            if not isinstance(loaded, dict):
                report(f"{name} must be a JSON object")
        else:
            pairs = {}
            for item in text.split(","):
                key, sep, action_name = item.partition("=")
                if not sep:
                    report(f"{name}: {item.strip()!r} is not TYPE=ACTION")
                    continue
                pairs[key.strip()] = action_name.strip()
        for key, action in pairs.items():
            event_type = key if key.startswith("order.") else f"order.{key}"
            if event_type not in DEFAULT_ACTION_MAP:
                known = ", ".join(DEFAULT_ACTION_MAP)
                report(f"{name}: {key!r} is not a lifecycle type ({known})")
            elif not isinstance(action, str) or not action or len(action) > 100:
                report(f"{name}: action for {key!r} must be a non-empty string")
            else:
                mapping[event_type] = action
        return mapping

    def show(self, value: Mapping[str, str]) -> str:
        """``TYPE=ACTION`` pairs, short type names, in the default map's order."""
        return ", ".join(f"{key.removeprefix('order.')}={action}" for key, action in value.items())

    def constraint(self) -> str:
        """Said by the meaning."""
        return ""
