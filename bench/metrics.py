"""Figures of one run, computed the same way for every contender from what it published.

Throughput windows run from the moment the harness starts producing (the contender already
joined its group and sits idle) to the last outcome's ``finishedAt``: start-up is outside, every
record's consumption inside. Latency comes from each outcome's ``timings``: ``totalMs`` (record
received → outcome ready) and ``engageMs`` (time inside Engage calls); total - engage is what
the consumer itself added (queueing for a slot or a token, gating, job-poll gaps, its own CPU).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence


def parse_time(text: str) -> float:
    """An RFC 3339 / ISO 8601 timestamp as POSIX seconds."""
    return datetime.fromisoformat(text).timestamp()


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0-100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99, mean and max of a list of milliseconds."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "mean": sum(values) / len(values) if values else None,
        "max": max(values) if values else None,
    }


def outcome_figures(
    outcomes: Iterable[Mapping[str, Any]],
    *,
    started_at: float,
    wanted: set[str],
    sent_at: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Window, counts and latency percentiles of the outcomes answering ``wanted`` event ids.

    Repeated outcomes of one event count once (the first), as a reader deduplicating by id would.
    ``e2e_ms`` is the same for every contender: the outcome record's Kafka timestamp (set by
    the contender's producer) minus the moment the harness sent the input event (``sent_at``).
    """
    seen: set[str] = set()
    total: list[float] = []
    added: list[float] = []
    action_total: list[float] = []
    action_added: list[float] = []
    action_engage: list[float] = []
    e2e: list[float] = []
    last = started_at
    first_received = math.inf
    statuses: dict[str, int] = {}
    for outcome in outcomes:
        data = outcome.get("data") or {}
        event_id = str(data.get("eventId"))
        if event_id not in wanted or event_id in seen:
            continue
        seen.add(event_id)
        kafka_ms = outcome.get("_kafka_ms")
        if sent_at and event_id in sent_at and isinstance(kafka_ms, int) and kafka_ms > 0:
            e2e.append(max(kafka_ms / 1000 - sent_at[event_id], 0.0) * 1000)
        timings = data.get("timings") or {}
        status = f"{data.get('operation')}:{data.get('status')}"
        statuses[status] = statuses.get(status, 0) + 1
        last = max(last, parse_time(str(timings["finishedAt"])))
        first_received = min(first_received, parse_time(str(timings["receivedAt"])))
        total_ms = float(timings.get("totalMs") or 0.0)
        engage_ms = float(timings.get("engageMs") or 0.0)
        total.append(total_ms)
        added.append(max(total_ms - engage_ms, 0.0))
        if data.get("operation") == "action":
            action_total.append(total_ms)
            action_added.append(max(total_ms - engage_ms, 0.0))
            action_engage.append(engage_ms)
    window = max(last - started_at, 1e-9)
    return {
        "answered": len(seen),
        "window_s": window,
        "first_received_after_s": (first_received - started_at) if seen else None,
        "events_per_s": len(seen) / window,
        "statuses": dict(sorted(statuses.items())),
        "latency_ms": latency_summary(total),
        "e2e_ms": latency_summary(e2e),
        "added_ms": latency_summary(added),
        "action_latency_ms": latency_summary(action_total),
        "action_added_ms": latency_summary(action_added),
        "action_engage_ms": latency_summary(action_engage),
    }


def stats_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Simulator counters over a run: requests by route, 429s, actions, jobs."""
    by_route: dict[str, int] = {}
    for route, statuses in after["requests"].items():
        old = before["requests"].get(route, {})
        count = sum(n - old.get(status, 0) for status, n in statuses.items())
        if count:
            by_route[route] = count
    return {
        "requests": after["requestsTotal"] - before["requestsTotal"],
        "requests_by_route": by_route,
        "rate_limited": after["rateLimited"] - before["rateLimited"],
        "actions_accepted": after["actionsAccepted"] - before["actionsAccepted"],
        "jobs_accepted": after["jobs"]["accepted"] - before["jobs"]["accepted"],
    }
