"""The chart's own files keep the house rules: documented values, strict schema, tidy templates.

No helm needed: these read Chart.yaml, values.yaml, values.schema.json, README.md and the
templates as files, so a value added without its comment, schema entry or README row fails here.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import yaml

import consumer
from tests.helm.manifests import CHART

VALUES_TEXT = (CHART / "values.yaml").read_text(encoding="utf-8")
VALUES = yaml.safe_load(VALUES_TEXT)
SCHEMA = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
KEY_LINE = re.compile(r"^( *)([A-Za-z][A-Za-z0-9]*):")


def _schema_paths(
    schema: dict[str, Any], prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], bool]:
    """Every key path the schema defines -> whether it is a leaf (not an object of properties)."""
    paths: dict[tuple[str, ...], bool] = {}
    for key, sub in schema["properties"].items():
        if not prefix and key == "global":
            continue  # helm's own key for values shared with subcharts
        path = (*prefix, key)
        paths[path] = "properties" not in sub
        if "properties" in sub:
            paths.update(_schema_paths(sub, path))
    return paths


def _value_comments() -> dict[tuple[str, ...], str]:
    """values.yaml key path -> the comment block right above the key (empty if none)."""
    lines = VALUES_TEXT.splitlines()
    stack: list[tuple[int, str]] = []
    comments: dict[tuple[str, ...], str] = {}
    for index, line in enumerate(lines):
        match = KEY_LINE.match(line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        block: list[str] = []
        above = index - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            block.insert(0, lines[above].strip().lstrip("#").strip().removeprefix("-- "))
            above -= 1
        comments[tuple(key for _, key in stack)] = " ".join(block)
    return comments


def _value_at(path: tuple[str, ...]) -> Any:
    node: Any = VALUES
    for key in path:
        node = node[key]
    return node


def test_chart_metadata() -> None:
    """Chart.yaml is apiVersion v2 with a kubeVersion, and its appVersion is the package version."""
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert (chart["apiVersion"], chart["name"], chart["type"]) == (
        "v2",
        "engage-consumer",
        "application",
    )
    assert chart["kubeVersion"] == ">=1.27.0-0"
    assert chart["appVersion"] == consumer.__version__


def test_schema_refuses_unknown_keys_everywhere() -> None:
    """Every object the schema describes by its properties says additionalProperties: false."""
    loose: list[str] = []

    def walk(schema: dict[str, Any], where: str) -> None:
        if "properties" in schema:
            if schema.get("additionalProperties") is not False:
                loose.append(where or "(root)")
            for key, sub in schema["properties"].items():
                walk(sub, f"{where}.{key}".lstrip("."))
        if isinstance(schema.get("items"), dict):
            walk(schema["items"], f"{where}[]")

    walk(SCHEMA, "")
    assert loose == []


def test_values_match_the_schema() -> None:
    """values.yaml is valid against the schema and sets exactly the keys the schema defines."""
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    problems = [e.message for e in jsonschema.Draft7Validator(SCHEMA).iter_errors(VALUES)]
    assert problems == []
    in_values = {path for path in _value_comments() if path in _schema_paths(SCHEMA)}
    assert set(_schema_paths(SCHEMA)) - in_values == set()


def test_every_value_has_a_comment() -> None:
    """Each key the chart defines has a comment right above it in values.yaml."""
    comments = _value_comments()
    missing = [".".join(path) for path in _schema_paths(SCHEMA) if not comments.get(path)]
    assert missing == []


def test_readme_values_table_matches_values() -> None:
    """The README's values table lists every leaf value once, with the default values.yaml sets."""
    readme = (CHART / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]*)` \| (.+) \|$", readme, flags=re.MULTILINE)
    leaves = [".".join(path) for path, leaf in _schema_paths(SCHEMA).items() if leaf]
    assert [key for key, _, _ in rows] == leaves
    for key, default, description in rows:
        assert json.loads(default) == _value_at(tuple(key.split("."))), key
        assert description.strip(), key


def test_helpers_are_prefixed_with_the_chart_name() -> None:
    """Every named template in _helpers.tpl starts with "engage-consumer."."""
    helpers = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    names = re.findall(r'define "([^"]+)"', helpers)
    assert names
    assert [name for name in names if not name.startswith("engage-consumer.")] == []


def test_one_resource_per_template() -> None:
    """Each manifest template renders at most one object (one apiVersion line)."""
    templates = sorted((CHART / "templates").rglob("*.yaml"))
    counts = {
        str(path.relative_to(CHART)): len(
            re.findall(r"^apiVersion:", path.read_text(encoding="utf-8"), re.MULTILINE)
        )
        for path in templates
    }
    assert counts == dict.fromkeys(counts, 1)
    assert (CHART / "templates" / "NOTES.txt").is_file()
