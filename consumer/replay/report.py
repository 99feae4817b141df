"""What ``engage-consumer replay`` prints: the plan (what goes, what not and why) and a summary.

Text only, from a ``Plan``; the command decides where it goes. Pure: no I/O.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import TYPE_CHECKING, Final

from consumer.replay.candidates import EXCLUSION_KINDS

if TYPE_CHECKING:
    from consumer.replay.candidates import Candidate
    from consumer.replay.plan import Plan, Replay

#: Explanations wrap at this width (an operator's terminal, or a ticket).
_WIDTH: Final = 100


def render_plan(plan: Plan, *, dry_run: bool) -> str:
    """The listing: each record to republish, per order in stream order; then the excluded."""
    lines: list[str] = []
    orders = len({r.candidate.order_id for r in plan.replays})
    verb = "would republish" if dry_run else "republishing"
    lines.append(f"{verb} {_count(len(plan.replays), 'event')} of {_count(orders, 'order')}")
    if plan.replays:
        rows = [[*_columns(r.candidate), _target(r)] for r in plan.replays]
        lines.extend(_table(["order", "input", "event", "type", "outcome", "to"], rows))
    # Mended events (a later outcome accepted them) are the usual answer of a second run:
    # counted, not listed one by one.
    listed = [e for e in plan.excluded if e.kind != "accepted_later"]
    mended = len(plan.excluded) - len(listed)
    if listed:
        lines.append(f"excluded {_count(len(listed), 'event')}")
        rows = [[*_columns(e.candidate), e.kind] for e in listed]
        table = _table(["order", "input", "event", "type", "outcome", "why"], rows)
        lines.append(table[0])
        for row, excluded in zip(table[1:], listed, strict=True):
            lines.append(row)
            needed = excluded.candidate.needed_by
            prefix = f"needed by {', '.join(needed)}; " if needed else ""
            lines.append(
                textwrap.fill(
                    prefix + excluded.detail,
                    width=_WIDTH,
                    initial_indent="      ",
                    subsequent_indent="      ",
                    break_on_hyphens=False,
                )
            )
    if mended:
        lines.append(
            f"excluded {_count(mended, 'event')} a later accepted outcome mended (accepted_later)"
        )
    return "\n".join(lines) + "\n"


def render_summary(plan: Plan, *, sent: int | None) -> str:
    """A table by the status and reason that chose each event: republished, and excluded by why.

    ``sent`` is how many records Kafka acknowledged (None: a dry run, nothing was sent).
    """
    label = "to send" if sent is None else "sent"
    kinds = [k for k in EXCLUSION_KINDS if any(e.kind == k for e in plan.excluded)]
    counts: dict[str, Counter[str]] = {}
    for replay in plan.replays:
        counts.setdefault(_outcome(replay.candidate), Counter())[label] += 1
    for excluded in plan.excluded:
        counts.setdefault(_outcome(excluded.candidate), Counter())[excluded.kind] += 1
    columns = [label, *kinds]
    first = max(len("outcome"), *(len(row) for row in counts)) + 2

    def row(name: str, cells: Counter[str]) -> str:
        return f"{name:<{first}}" + "".join(f"{cells[c]:>{len(c) + 2}}" for c in columns)

    header = f"{'outcome':<{first}}" + "".join(f"{c:>{len(c) + 2}}" for c in columns)
    lines = ["", header, "-" * len(header)]
    totals: Counter[str] = Counter()
    for name in sorted(counts):
        totals.update(counts[name])
        lines.append(row(name, counts[name]))
    lines.append(row("total", totals))
    if sent is not None and sent < len(plan.replays):
        lines.append(f"{len(plan.replays) - sent} planned records were NOT sent (see above)")
    lines.append(f"{_count(plan.unmatched, 'other event')} matched no criteria")
    return "\n".join(lines) + "\n"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _columns(candidate: Candidate) -> list[str]:
    return [
        candidate.order_id,
        str(candidate.position),
        candidate.event_id or "-",
        candidate.event_type or "-",
        _outcome(candidate),
    ]


def _outcome(candidate: Candidate) -> str:
    return f"{candidate.status}/{candidate.reason or '-'}"


def _target(replay: Replay) -> str:
    return f"{replay.topic}/{replay.partition}{_note(replay)}"


def _note(replay: Replay) -> str:
    notes = []
    if replay.candidate.needed_by:
        notes.append(f"needed by {', '.join(replay.candidate.needed_by)}")
    if replay.from_dead_letter:
        notes.append("from the dead-letter copy")
    if replay.candidate.unknown_action:
        notes.append("UNKNOWN ACTION: may run twice")
    return f"  ({'; '.join(notes)})" if notes else ""


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Left-aligned columns, two spaces apart, indented by two; the last column is not padded."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
        return "  " + "  ".join([*padded, cells[-1]])

    return [line(header), *(line(row) for row in rows)]
