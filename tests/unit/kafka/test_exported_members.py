from tests.unit.surface import assert_surface


def test_the_kafka_adapters_surface() -> None:
    """What code outside consumer/kafka may use of the aiokafka adapters."""
    assert_surface(
        "consumer.kafka",
        [
            "AssignmentHandler",
            "ChangelogRecord",
            "ConsumerSettings",
            "GroupOffsets",
            "KafkaConnection",
            "KafkaSink",
            "RecordSink",
            "Staged",
            "TopicReader",
            "TopicRecord",
            "TransactionalSink",
            "committed_state",
            "connection_kwargs",
            "describe_connection_error",
            "ensure_changelog",
            "explain_connection_failure",
            "fetch",
            "group_generation",
            "join",
            "kafka_error_in",
            "make_consumer",
            "make_producer",
            "open_topic_reader",
            "partition_counts",
            "pause",
            "read_changelog",
            "resume",
            "subscribe",
            "watch_heartbeats",
        ],
    )
