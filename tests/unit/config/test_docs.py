"""`run --help` and the README's table list every setting, as the table defines it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from consumer.cli import main
from consumer.config import GROUPS, SETTINGS, markdown_table, with_table
from consumer.config.__main__ import main as config_main
from consumer.config.docs import TABLE_END, TABLE_START, default_text

README = Path(__file__).resolve().parents[3] / "README.md"


def _plain_words(markdown: str) -> str:
    return " ".join(markdown.replace("`", "").split())


def _run_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _entries(help_text: str) -> dict[str, str]:
    """Variable -> its entry (label and meaning, whitespace folded) in the help's epilog."""
    entry = re.compile(r"^  ([A-Z][A-Z0-9_]+) (\(.*?)(?=^  [A-Z]|^\n|\Z)", re.MULTILINE | re.DOTALL)
    found = entry.findall(help_text)
    return {env: " ".join(entry.split()) for env, entry in found}


def test_run_help_lists_every_setting_with_its_default_and_meaning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each variable has an entry naming its default (or that it is required) and its meaning."""
    help_text = _run_help(capsys)
    entries = _entries(help_text)
    assert list(entries) == [s.env for s in SETTINGS]
    for setting in SETTINGS:
        entry = entries[setting.env]
        default = default_text(setting)
        if setting.required:
            assert entry.startswith("(required"), entry
        elif default is None:
            assert entry.startswith("(unset by default"), entry
        else:
            assert entry.startswith(f"(default: {_plain_words(default)})"), entry
        assert _plain_words(setting.meaning) in entry
        assert _plain_words(setting.kind.constraint()) in entry
        assert ("secret" in entry) == setting.secret, entry
    titles = [line[:-1] for line in help_text.splitlines() if line.endswith(":")]
    assert [g.title for g in GROUPS] == [t for t in titles if t in {g.title for g in GROUPS}]


def test_help_and_table_never_show_a_secret_value(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the secrets set in the environment, neither the help nor the table shows them."""
    monkeypatch.setenv("ENGAGE_API_KEY", "key-from-the-environment")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "password-from-the-environment")
    shown = _run_help(capsys) + markdown_table()
    assert "from-the-environment" not in shown


def test_the_readme_table_is_the_generated_one() -> None:
    """README.md's settings table is the table's own; `./dev docs` rewrites it when it differs."""
    readme = README.read_text(encoding="utf-8")
    assert readme.count(TABLE_START) == readme.count(TABLE_END) == 1
    written = readme.split(TABLE_START)[1].split(TABLE_END)[0].strip()
    assert written == markdown_table(), "the README's settings table is stale: run ./dev docs"


def test_the_table_has_one_row_per_setting_in_group_order() -> None:
    """Variable, default, meaning; a required one says so, one without a default shows none."""
    rows = markdown_table().splitlines()
    assert rows[:2] == ["| variable | default | meaning |", "|---|---|---|"]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows[2:]] == [
        f"`{s.env}`" for s in SETTINGS
    ]
    by_env = {row.split(" | ")[0].strip("|` "): row.split(" | ")[1] for row in rows[2:]}
    assert by_env["ENGAGE_API_KEY"] == "(required)"
    assert by_env["KAFKA_SASL_PASSWORD"] == ""
    assert by_env["STATE_TOPIC"] == "`<KAFKA_GROUP_ID>.order-state`"
    assert by_env["ENGAGE_RATE_LIMIT"] == "`50`"


def test_python_m_consumer_config_rewrites_only_the_table(tmp_path: Path) -> None:
    """--write replaces what lies between the markers and keeps the rest of the file."""
    readme = tmp_path / "README.md"
    stale = f"# Title\n\n{TABLE_START}\n| stale |\n{TABLE_END}\n\nmore\n"
    readme.write_text(stale, encoding="utf-8")
    assert config_main(["--write", str(readme)]) == 0
    expected = f"# Title\n\n{TABLE_START}\n{markdown_table()}\n{TABLE_END}\n\nmore\n"
    assert readme.read_text(encoding="utf-8") == expected
    with pytest.raises(LookupError, match="no lines"):
        with_table("# no markers here\n")
