"""The settings written out for people: the ``run --help`` epilog and the README's table.

Both are generated from ``consumer.config.table``, so neither can drift from what
``load_settings`` reads; ``tests/unit/config/test_docs.py`` fails when the README's copy of the
table is stale (``./dev docs`` rewrites it). Secrets are marked as such; no text here ever holds
a value read from the environment. Imports nothing of the consumer outside ``consumer/config``.
"""

from __future__ import annotations

import re
import textwrap
from typing import TYPE_CHECKING, Any, Final

from consumer.config.setting import plain
from consumer.config.table import GROUPS, SETTINGS

if TYPE_CHECKING:
    from consumer.config.setting import Setting

#: The lines around the README's generated table.
TABLE_START: Final = (
    "<!-- settings table: generated from consumer/config/table.py by ./dev docs; edit there -->"
)
TABLE_END: Final = "<!-- end of settings table -->"
_WIDTH: Final = 79
_INDENT: Final = " " * 6
_ENV_OF_FIELD: Final = {s.field: s.env for s in SETTINGS}
_NEVER_SHOWN: Final = "a secret: never logged or shown"


def default_text(setting: Setting[Any]) -> str | None:
    """The default as one would write it in the environment; None when there is none.

    A derived default names the variables it follows (``<KAFKA_GROUP_ID>.order-state``).
    """
    if setting.required:
        return None
    if setting.shown_default is not None:
        return setting.shown_default
    if setting.derived_from is not None:
        return re.sub(r"\{(\w+)\}", lambda m: f"<{_ENV_OF_FIELD[m[1]]}>", setting.derived_from)
    value = setting.default()
    if value is None or setting.secret:
        return None
    return setting.kind.show(value)


def description(setting: Setting[Any]) -> str:
    """The meaning, what is accepted, and whether it is a secret (Markdown)."""
    parts = [setting.meaning, setting.kind.constraint()]
    if setting.secret:
        parts.append(_NEVER_SHOWN)
    return "; ".join(part for part in parts if part)


def _label(setting: Setting[Any]) -> str:
    default = default_text(setting)
    if setting.required:
        said = "required"
    elif default is None:
        said = "unset by default"
    else:
        said = f"default: {default}"
    if setting.secret:
        said += "; secret"
    return f"{setting.env} ({said})"


def _wrap(text: str, first: str) -> list[str]:
    return textwrap.wrap(
        text,
        width=_WIDTH,
        initial_indent=first,
        subsequent_indent=_INDENT,
        break_long_words=False,
        break_on_hyphens=False,
    )


def settings_help() -> str:
    """The epilog of ``engage-consumer run --help``: every setting, by group."""
    lines = [
        "settings (environment variables; every bad one is reported at once, exit status 2):",
    ]
    for group in GROUPS:
        lines += ["", f"{group.title}:"]
        for setting in group.settings:
            lines += _wrap(_label(setting), "  ")
            lines += _wrap(plain(description(setting)), _INDENT)
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """The README's table of settings: variable, default, meaning; groups in order."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        default = default_text(setting)
        if setting.required:
            shown = "(required)"
        elif default is None:
            shown = ""
        else:
            shown = f"`{default}`"
        rows.append(f"| `{setting.env}` | {_cell(shown)} | {_cell(description(setting))} |")
    return "\n".join(rows)


def with_table(readme: str) -> str:
    """``readme`` with the text between the table's marker lines replaced by a fresh table."""
    lines = readme.split("\n")
    try:
        start, end = lines.index(TABLE_START), lines.index(TABLE_END)
    except ValueError:
        missing = f"no lines {TABLE_START!r} ... {TABLE_END!r} to put the table between"
        raise LookupError(missing) from None
    return "\n".join([*lines[: start + 1], markdown_table(), *lines[end:]])
