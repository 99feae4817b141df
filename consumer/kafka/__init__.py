"""The aiokafka adapters: how to reach the cluster, the group consumer, the outcome producer.

``connection`` builds the shared connection arguments and explains a failed start; ``source`` is
the group consumer with its rebalance hooks and what a previous owner committed; ``sink``
publishes outcome and dead-letter records (plainly or in transactions); ``changelog`` creates
and reads back the compacted state topic; ``reader`` reads topics without a group (whole, from a
time on, or records by position) for the operator commands.

Imports nothing of the consumer outside this folder but ``errors``, ``config``, ``types`` and
``offsets``; never the service, the Engage client or the order book.
"""

from consumer.kafka.changelog import ChangelogRecord, ensure_changelog, read_changelog
from consumer.kafka.connection import (
    KafkaConnection,
    connection_kwargs,
    describe_connection_error,
    explain_connection_failure,
    kafka_error_in,
)
from consumer.kafka.reader import TopicReader, TopicRecord, open_topic_reader
from consumer.kafka.sink import KafkaSink, RecordSink, Staged, TransactionalSink, make_producer
from consumer.kafka.source import (
    AssignmentHandler,
    ConsumerSettings,
    GroupOffsets,
    committed_state,
    fetch,
    group_generation,
    join,
    make_consumer,
    partition_counts,
    pause,
    resume,
    subscribe,
    watch_heartbeats,
)

__all__ = [
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
]
