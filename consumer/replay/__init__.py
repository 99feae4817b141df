"""Replaying events: which to do again and which not (and why), and what the copies carry.

The decisions take two pure steps: ``candidates`` (what the outcome history and the dead
letters choose) and ``plan`` (with the records fetched and the marks of earlier replays, what
goes where, in per-order order); ``records`` reads dead letters and writes the ``x-replay-of`` mark;
``report`` turns a plan into the listing and the summary table. ``engage-consumer replay``
(``consumer.commands.replay``) does the Kafka part around them.

Pure: imports no I/O library, and nothing of the consumer but ``events``, ``outcomes`` and
``results``.
"""

from consumer.replay.candidates import (
    EXCLUSION_KINDS,
    AcceptedWrite,
    Candidate,
    Criteria,
    Excluded,
    ExclusionKind,
    Selection,
    StreamPlace,
    select_candidates,
)
from consumer.replay.plan import Plan, Replay, in_stream_order, plan_replay
from consumer.replay.records import (
    REPLAY_HEADER,
    DeadLetter,
    EventPeek,
    KafkaRecord,
    peek_event,
    position_of,
    read_dead_letter,
    replay_headers,
    replayed_from,
)
from consumer.replay.report import render_plan, render_summary

__all__ = [
    "EXCLUSION_KINDS",
    "REPLAY_HEADER",
    "AcceptedWrite",
    "Candidate",
    "Criteria",
    "DeadLetter",
    "EventPeek",
    "Excluded",
    "ExclusionKind",
    "KafkaRecord",
    "Plan",
    "Replay",
    "Selection",
    "StreamPlace",
    "in_stream_order",
    "peek_event",
    "plan_replay",
    "position_of",
    "read_dead_letter",
    "render_plan",
    "render_summary",
    "replay_headers",
    "replayed_from",
    "select_candidates",
]
