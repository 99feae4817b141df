"""The series a PromQL expression selects, for checking the chart's dashboard and alerts.

A small lexer rather than a regular expression over the text: strings, label matchers (``{…}``),
ranges and subqueries (``[…]``), comments and Grafana's variables (``$namespace``,
``${datasource}``, ``$__rate_interval``, ``[[pod]]``) can all hold words that are no metric, and
``sum by (status) (…)`` puts label names where a selector could stand. What is left once those
are skipped, and once every identifier followed by ``(`` (a function or an aggregation) and every
keyword is dropped, is a metric name: the name of a series as Prometheus stores it, so a
counter's ``_total`` and a histogram's ``_bucket``/``_sum``/``_count`` are part of it. A selector
that names its metric in a matcher (``{__name__="x"}``) counts too. Not a PromQL parser: it does
not check the expression (``promtool check rules`` does, for the alerts and the dashboard).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

#: Aggregation operators: followed by ``(`` or by ``by``/``without`` and a label list.
AGGREGATIONS: Final = frozenset(
    {
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    }
)
#: Keywords followed by a parenthesised list of label names.
LABEL_LISTS: Final = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
#: Other words that are never a metric name where they stand.
KEYWORDS: Final = frozenset(
    {"bool", "and", "or", "unless", "atan2", "offset", "inf", "nan", "start", "end"}
)

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[[^\]]*\]\])
    | (?P<number>(?:0x[0-9a-fA-F]+|\d[\d_]*(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)[a-zA-Z]*)
    | (?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<open>[({\[])
    | (?P<close>[)}\]])
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_CLOSING: Final = {"(": ")", "{": "}", "[": "]"}
_MATCHER: Final = re.compile(
    r"""([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')"""
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Selector:
    """One vector selector: its metric name and its label matchers (``__name__`` left out)."""

    metric: str
    #: (label, operator, value) in the order written; the value as written, unescaped
    matchers: tuple[tuple[str, str, str], ...]


def _tokens(expr: str) -> list[_Token]:
    """Every token but spaces and comments."""
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(expr):
        kind = match.lastgroup
        assert kind is not None
        if kind not in {"space", "comment"}:
            tokens.append(_Token(kind, match.group(), match.start(), match.end()))
    return tokens


def _group_end(tokens: list[_Token], start: int) -> int:
    """Index of the bracket closing the group that opens at ``start``."""
    stack: list[str] = []
    for index in range(start, len(tokens)):
        token = tokens[index]
        if token.kind == "open":
            stack.append(_CLOSING[token.text])
        elif token.kind == "close":
            if not stack or stack.pop() != token.text:
                break
            if not stack:
                return index
    raise ValueError(f"unbalanced brackets from {tokens[start].text!r} at {tokens[start].start}")


def _matchers(text: str) -> list[tuple[str, str, str]]:
    return [(label, op, dq or sq) for label, op, dq, sq in _MATCHER.findall(text)]


def selectors(expr: str) -> list[Selector]:
    """The vector selectors of ``expr``, in the order they are written."""
    tokens = _tokens(expr)
    found: list[Selector] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        following = tokens[index + 1].text if index + 1 < len(tokens) else ""
        if token.kind == "open" and token.text in "{[":
            end = _group_end(tokens, index)
            if token.text == "{":  # a selector with no name before its matchers
                matchers = _matchers(expr[token.end : tokens[end].start])
                names = [value for label, op, value in matchers if (label, op) == ("__name__", "=")]
                rest = tuple(m for m in matchers if m[0] != "__name__")
                found.extend(Selector(metric=name, matchers=rest) for name in names)
            index = end + 1
            continue
        if token.kind == "name":
            word = token.text.lower()
            if word in LABEL_LISTS and following == "(":
                index = _group_end(tokens, index + 1) + 1
                continue
            called = following == "(" or (word in AGGREGATIONS and following in LABEL_LISTS)
            if not called and word not in KEYWORDS and word not in LABEL_LISTS:
                matchers_text = ""
                if following == "{":
                    end = _group_end(tokens, index + 1)
                    matchers_text = expr[tokens[index + 1].end : tokens[end].start]
                    index = end
                found.append(Selector(metric=token.text, matchers=tuple(_matchers(matchers_text))))
        index += 1
    return found


def metric_names(expr: str) -> set[str]:
    """The names of the series ``expr`` selects."""
    return {selector.metric for selector in selectors(expr)}


def grafana_query_names(query: str) -> set[str]:
    """The metric names of a Grafana Prometheus variable query (or of a plain expression).

    ``label_values(metric{…}, label)`` names a label after the selector, which is no metric;
    ``label_values(label)`` and ``label_names()`` select no metric at all.
    """
    call = re.fullmatch(r"\s*(label_values|query_result)\s*\((.*)\)\s*", query, re.DOTALL)
    if call is None:
        return metric_names(query)
    function, inner = call.groups()
    if function == "label_values":
        selector, _, _label = inner.rpartition(",")
        return metric_names(selector)
    return metric_names(inner)
