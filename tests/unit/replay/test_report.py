"""What a replay prints: the listing of what goes and what not, and the summary table."""
# ruff: noqa: E501 - the expected lines are the printed lines, as wide as they are

from __future__ import annotations

from consumer.replay import Criteria, render_plan, render_summary
from consumer.results import RecordPosition
from tests.unit.replay.history import History


def small_history() -> tuple[History, dict[RecordPosition, RecordPosition]]:
    """Two orders after an outage: what goes, one mended, one superseded, one already sent."""
    h = History()
    f = h.factory
    h.handled(f.upserted("A", 1), "unknown", reason="deadline")
    h.handled(f.action("A", "ConfirmOrder"), "failed", reason="write_failed")
    h.handled(f.upserted("B", 1), "failed", reason="deadline")
    h.handled(f.upserted("B", 2), "accepted")
    mended = f.upserted("C", 1)
    first = h.handled(mended, "failed", reason="deadline")
    h.outcome(mended, h.publish(mended), "accepted")
    sent = h.handled(f.upserted("D", 1), "failed", reason="job_timeout")
    return h, {first: RecordPosition(topic="orders", partition=0, offset=5), sent: sent}


def test_the_dry_run_lists_what_would_go_and_what_not_and_why() -> None:
    """Per order in stream order, with the write an action needs; then the exclusions."""
    h, copies = small_history()
    copies = {p: RecordPosition(topic="orders", partition=0, offset=9) for p in copies}
    plan = h.plan(copies=copies)
    assert render_plan(plan, dry_run=True).splitlines() == [
        "would republish 2 events of 1 order",
        "  order  input       event  type            outcome              to",
        "  A      orders/0/0  h-1    order.upserted  unknown/deadline     orders/0  (needed by h-2)",
        "  A      orders/0/1  h-2    order.action    failed/write_failed  orders/0",
        "excluded 2 events",
        "  order  input       event  type            outcome             why",
        "  D      orders/0/6  h-6    order.upserted  failed/job_timeout  already_replayed",
        "      an earlier replay republished it as orders/0/9; its outcome decides",
        "  B      orders/0/2  h-3    order.upserted  failed/deadline     superseded",
        "      a later write of the order was accepted (h-4, input orders/0/3, at 2026-03-01T14:00:08Z):",
        "      replaying this one would put the older order back in Engage (--include-superseded to send it",
        "      anyway)",
        "excluded 1 event a later accepted outcome mended (accepted_later)",
    ]


def test_the_summary_counts_by_outcome_what_goes_and_each_reason_to_leave_out() -> None:
    """A column for what goes (or went), one per kind of exclusion that occurred."""
    h, copies = small_history()
    copies = {p: RecordPosition(topic="orders", partition=0, offset=9) for p in copies}
    plan = h.plan(Criteria(), copies=copies)
    assert render_summary(plan, sent=None).splitlines() == [
        "",
        "outcome                to send  accepted_later  already_replayed  superseded",
        "----------------------------------------------------------------------------",
        "failed/deadline              0               1                 0           1",
        "failed/job_timeout           0               0                 1           0",
        "failed/write_failed          1               0                 0           0",
        "unknown/deadline             1               0                 0           0",
        "total                        2               1                 1           1",
        "1 other event matched no criteria",
    ]
    assert render_summary(plan, sent=1).splitlines()[-2:] == [
        "1 planned records were NOT sent (see above)",
        "1 other event matched no criteria",
    ]
