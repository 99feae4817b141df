from tests.unit.surface import assert_surface


def test_the_replay_surface() -> None:
    """What code outside consumer/replay may use of the replay decisions."""
    assert_surface(
        "consumer.replay",
        [
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
        ],
    )
