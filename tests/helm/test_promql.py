"""The metric names read out of PromQL: what the dashboard and alert checks rely on.

Each case is an expression of a kind the chart's dashboard or rules use, or a trap (a label
name, a string, a Grafana variable, a duration, a keyword) that must not count as a metric.
"""

from __future__ import annotations

import pytest

from tests.helm.promql import Selector, grafana_query_names, metric_names, selectors


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("engage_consumer_engage_api_key_refused == 1", {"engage_consumer_engage_api_key_refused"}),
        (
            (
                'sum by (status) (rate(engage_consumer_outcomes_total{namespace="$namespace",'
                ' pod=~"$pod"}[$__rate_interval]))'
            ),
            {"engage_consumer_outcomes_total"},
        ),
        (
            (
                "histogram_quantile(0.95, sum by (endpoint, le) ("
                "rate(engage_consumer_engage_request_duration_seconds_bucket[5m])))"
            ),
            {"engage_consumer_engage_request_duration_seconds_bucket"},
        ),
        (
            "sum(rate(x_sum[1m])) without (pod) / sum(rate(x_count[1m])) without (pod)",
            {"x_sum", "x_count"},
        ),
        (
            (
                "max(engage_consumer_lag offset 15m) < on (namespace, job) group_left (topic)"
                " min_over_time(engage_consumer_lag[15m:1m]) and bool up"
            ),
            {"engage_consumer_lag", "up"},
        ),
        (
            (
                'label_replace(engage_consumer_commits_total, "dst", "$1", "src", "(.*)")'
                " # a comment naming not_a_metric"
            ),
            {"engage_consumer_commits_total"},
        ),
        (
            '{__name__="engage_consumer_gated_actions", job="x"} > 1e3',
            {"engage_consumer_gated_actions"},
        ),
        (
            'count_values("value", engage_consumer_rate_budget_share)',
            {"engage_consumer_rate_budget_share"},
        ),
        ("topk(3, a) unless ignoring(pod) b or vector(0) > bool inf", {"a", "b"}),
        ("deriv(a[${__range}]) * $multiplier + [[legacy]] * 1h30m", {"a"}),
    ],
)
def test_metric_names_are_the_selected_series(expr: str, names: set[str]) -> None:
    """Only the series an expression selects count: not labels, functions, strings or variables."""
    assert metric_names(expr) == names


@pytest.mark.parametrize(
    ("query", "names"),
    [
        (
            "label_values(engage_consumer_assigned_partitions, namespace)",
            {"engage_consumer_assigned_partitions"},
        ),
        (
            (
                "label_values(engage_consumer_assigned_partitions"
                '{namespace="$namespace", job=~"$job"}, pod)'
            ),
            {"engage_consumer_assigned_partitions"},
        ),
        ("label_values(namespace)", set()),
        ("query_result(sum(engage_consumer_lag))", {"engage_consumer_lag"}),
        ("sum(engage_consumer_lag)", {"engage_consumer_lag"}),
    ],
)
def test_grafana_variable_queries_name_their_metric_not_their_label(
    query: str, names: set[str]
) -> None:
    """label_values(metric, label) reads the metric; the label after it is no metric."""
    assert grafana_query_names(query) == names


def test_selectors_carry_their_matchers() -> None:
    """Each selector with its matchers as written, in order; a __name__ matcher names the metric."""
    expr = (
        'sum(rate(a_total{namespace="$namespace", service=~"x|y"}[5m])) / b'
        ' unless {__name__=\'c\', pod!="p\\"q"} offset 10m'
    )
    assert selectors(expr) == [
        Selector(
            metric="a_total", matchers=(("namespace", "=", "$namespace"), ("service", "=~", "x|y"))
        ),
        Selector(metric="b", matchers=()),
        Selector(metric="c", matchers=(("pod", "!=", 'p\\"q'),)),
    ]


def test_unbalanced_brackets_are_an_error() -> None:
    """An expression with an unclosed selector is refused rather than half read."""
    with pytest.raises(ValueError, match="unbalanced"):
        metric_names('rate(a{job="x"[5m])')
