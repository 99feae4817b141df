"""Hostile input through the running consumer: dead-lettered as it came, offsets move on.

A few hundred records from tests/hostile.py (every family the decoder refuses: bytes, bad UTF-8,
wrong types, deep nesting, oversized values above a 10 KB MAX_RECORD_BYTES, tombstones, keys that
disagree, forged dead-letter headers, …) are interleaved with valid order lifecycles on a real
broker, and the consumer's own ``Service`` runs against the Engage simulator. Then:

- every hostile record is on the dead-letter topic once, with its original key, value and
  headers, one ``x-dlq-reason`` (the decoder's), and its source partition and offset;
- every hostile record that names an order has one ``invalid`` outcome; every valid event has
  its outcome, and the simulator's journal shows every action once, with the right tag, in order;
- the group's committed offsets reach the end of the input.

The last tests replay poison records the fuzzing found (each used to crash the service or stall
its partition for good): each is dead-lettered or answered, and the record after it too.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from consumer.errors import InvalidEventError
from consumer.events import decode_record
from consumer.outcomes import DLQ_KEY_LIMIT, DLQ_PREFIX, dead_letter_problem, outcome_problem
from consumer.sandbox.audit import audit
from consumer.sandbox.workload import EventFactory, lifecycle_stream
from tests.hostile import FAMILIES, HostileRecord, hostile_record
from tests.integration.harness import (
    committed_lag,
    consumer_settings,
    make_topics,
    read_all,
    read_outcomes,
    running,
    wait_for,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from consumer.sandbox.engage import EngageSimulator
    from consumer.sandbox.kafka import KafkaBroker
    from consumer.sandbox.workload import GeneratedEvent
    from consumer.types import Headers
    from tests.fixtures.kafka import TopicFactory
    from tests.integration.harness import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.engage]

MAX_RECORD_BYTES = 10_240
HOSTILE = 300
#: What a producer may attach: a trace header, a forged dead-letter reason, binary bytes.
ORIGINAL_HEADERS: Headers = [
    ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ("x-dlq-reason", b"forged"),
    ("bin", b"\xff\x00\xfe"),
]


def refusal(record: HostileRecord) -> InvalidEventError | None:
    """The decoder's verdict as the service reaches it (require_key, the test's size limit)."""
    try:
        decode_record(
            key=record.key,
            value=record.value,
            topic="t",
            partition=0,
            offset=0,
            max_bytes=MAX_RECORD_BYTES,
            require_key=True,
        )
    except InvalidEventError as error:
        return error
    return None


def hostile_corpus(rng: random.Random, count: int) -> list[tuple[HostileRecord, str]]:
    """``count`` records the decoder refuses, every family in turn, with the expected reason."""
    out: list[tuple[HostileRecord, str]] = []
    families = sorted(FAMILIES)
    while len(out) < count:
        for family in families:
            record = hostile_record(rng, max_bytes=MAX_RECORD_BYTES, family=family)
            error = refusal(record)
            if error is not None and len(out) < count:
                out.append((record, error.reason))
    return out


async def produce_records(
    broker: KafkaBroker, topic: str, records: Sequence[tuple[bytes | None, bytes | None, Headers]]
) -> list[tuple[int, int]]:
    """Publish records in order and return each one's (partition, offset)."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415 - heavy import, test-time only

    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, key=key, value=value, headers=headers)
            for key, value, headers in records
        ]
        placed = [await future for future in futures]
    finally:
        await producer.stop()
    return [(meta.partition, meta.offset) for meta in placed]


def interleave(
    rng: random.Random, hostile: list[tuple[HostileRecord, str]], events: list[GeneratedEvent]
) -> list[tuple[HostileRecord, str] | GeneratedEvent]:
    """Hostile records at random places among the valid events (whose order is kept)."""
    out: list[tuple[HostileRecord, str] | GeneratedEvent] = list(events)
    for item in hostile:
        out.insert(rng.randint(0, len(out)), item)
    return out


async def test_hostile_records_are_dead_lettered_and_valid_events_still_answered(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """300 hostile records among 40 lifecycles: DLQ'd as sent, valid events answered, offsets on."""
    rng = random.Random(20_260_101)
    topics = await make_topics(new_topic, partitions=3)
    hostile = hostile_corpus(rng, HOSTILE)
    events = lifecycle_stream(40, seed=17, prefix="hostile")
    stream = interleave(rng, hostile, events)
    records: list[tuple[bytes | None, bytes | None, Headers]] = []
    for item in stream:
        if isinstance(item, tuple):
            record = item[0]
            headers = ORIGINAL_HEADERS if rng.random() < 0.3 else []
            records.append((record.key, record.value, headers))
        else:
            records.append((item.key, item.value, []))
    placed = await produce_records(kafka_broker, topics.inputs[0], records)
    settings = consumer_settings(
        kafka_broker, engage_sim, topics, max_record_bytes=MAX_RECORD_BYTES
    )
    async with running(settings) as service:
        await wait_for(service, finished=len(records), wait_seconds=120)
    assert service.count("invalid") == HOSTILE

    # Dead letters: one per hostile record, as it was sent, with one reason (the decoder's).
    sent = {
        position: (record, reason, headers)
        for position, item, (_, _, headers) in zip(placed, stream, records, strict=True)
        if isinstance(item, tuple)
        for record, reason in [item]
    }
    letters = await read_all(kafka_broker, topics.dead_letter, at_least=HOSTILE)
    by_position: dict[tuple[int, int], Any] = {}
    for letter in letters:
        view = {name: raw.decode(errors="replace") for name, raw in letter.headers}
        position = (int(view["x-dlq-source-partition"]), int(view["x-dlq-source-offset"]))
        assert position not in by_position, f"dead-lettered twice: {position}"
        by_position[position] = letter
    assert sorted(by_position) == sorted(sent)
    for position, letter in by_position.items():
        record, reason, headers = sent[position]
        assert (letter.key, letter.value) == (record.key, record.value), record
        kept = [(n, r) for n, r in headers if not n.startswith(DLQ_PREFIX)]
        assert list(letter.headers[: len(kept)]) == kept
        assert [r for n, r in letter.headers if n == "x-dlq-reason"] == [reason.encode()], record
        assert dead_letter_problem(list(letter.headers)) is None
    reasons = Counter(reason for _, reason in hostile)
    assert set(reasons) >= {"undecodable", "schema", "too_large", "empty", "key_mismatch"}

    # Outcomes: `invalid` for each hostile record that names an order, the usual ones for events.
    named = sum(1 for record, _ in hostile if (error := refusal(record)) and error.order_id)
    outcomes = await read_outcomes(kafka_broker, topics, at_least=len(events) + named)
    assert [problem for o in outcomes if (problem := outcome_problem(o))] == []
    invalid = [o for o in outcomes if o["data"]["status"] == "invalid"]
    assert len(invalid) == named
    valid = [o for o in outcomes if o["data"]["status"] != "invalid"]
    report = audit(events=events, journal=await engage_sim.journal(), outcomes=valid)
    assert report.correct, report.summary()
    assert (report.outcomes, report.repeated_outcomes, report.missing_outcomes) == (
        len(events),
        0,
        [],
    )

    # Offsets moved on past every record, hostile ones included.
    assert await committed_lag(kafka_broker, settings.kafka_group_id, topics.inputs[0]) == 0


async def test_duplicate_event_ids_each_get_an_outcome(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """The same event sent twice, and two events sharing an id: each record is answered."""
    topics = await make_topics(new_topic, partitions=1)
    factory = EventFactory(prefix="dup")
    first = factory.upserted("DUP-1", 1)
    other = factory.upserted("DUP-2", 1)
    other.event["id"] = first.event_id  # another event, the same id
    records: list[tuple[bytes | None, bytes | None, Headers]] = [
        (e.key, e.value, []) for e in (first, first, other)
    ]
    await produce_records(kafka_broker, topics.inputs[0], records)
    settings = consumer_settings(kafka_broker, engage_sim, topics)
    async with running(settings) as service:
        await wait_for(service, finished=3)
    outcomes = await read_outcomes(kafka_broker, topics, at_least=3)
    positions = sorted(o["data"]["offset"] for o in outcomes)
    assert positions == [0, 1, 2]
    assert {o["data"]["eventId"] for o in outcomes} == {first.event_id}
    assert await committed_lag(kafka_broker, settings.kafka_group_id, topics.inputs[0]) == 0


# -- poison records the fuzzing found ------------------------------------------------------------


async def run_one_poison_record(
    kafka_broker: KafkaBroker,
    engage_sim: EngageSimulator,
    new_topic: TopicFactory,
    poison: tuple[bytes | None, bytes | None],
) -> Topics:
    """A poison record then a valid event on one partition: both answered, offsets at the end."""
    topics = await make_topics(new_topic, partitions=1)
    after = EventFactory(prefix="after").upserted("AFTER-1", 1)
    records: list[tuple[bytes | None, bytes | None, Headers]] = [
        (*poison, []),
        (after.key, after.value, []),
    ]
    await produce_records(kafka_broker, topics.inputs[0], records)
    settings = consumer_settings(kafka_broker, engage_sim, topics, drain_timeout_seconds=2.0)
    async with running(settings) as service:
        await wait_for(service, finished=2, wait_seconds=15)
    outcomes = await read_outcomes(kafka_broker, topics, at_least=1, wait_seconds=5)
    assert after.event_id in {o["data"]["eventId"] for o in outcomes}
    assert await committed_lag(kafka_broker, settings.kafka_group_id, topics.inputs[0]) == 0
    return topics


async def test_an_oversized_key_does_not_stall_its_partition(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """A tombstone with a 600 KB key is dead-lettered and the next record is answered."""
    await run_one_poison_record(kafka_broker, engage_sim, new_topic, (b"K" * 600_000, None))


def _deleted(revision_literal: bytes) -> bytes:
    return (
        b'{"specversion":"1.0","id":"poison-1","source":"/s","type":"order.deleted",'
        b'"subject":"POISON-1","time":"2025-03-01T10:15:00Z","data":{"revision":'
        + revision_literal
        + b"}}"
    )


async def test_a_revision_beyond_64_bits_does_not_crash_the_consumer(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """An order.deleted with revision 1e20 is refused or answered; the next record too."""
    await run_one_poison_record(
        kafka_broker, engage_sim, new_topic, (b"POISON-1", _deleted(b"1e20"))
    )


async def test_a_deeply_nested_order_body_does_not_crash_the_consumer(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """An upsert whose order body nests 300 levels is refused or sent; the next record too."""
    nested = b"[" * 300 + b"]" * 300
    value = (
        b'{"specversion":"1.0","id":"poison-2","source":"/s","type":"order.upserted",'
        b'"subject":"POISON-2","time":"2025-03-01T10:15:00Z",'
        b'"data":{"order":{"orderId":"POISON-2","deep":' + nested + b"}}}"
    )
    await run_one_poison_record(kafka_broker, engage_sim, new_topic, (b"POISON-2", value))


async def test_a_dead_letter_copy_too_large_for_kafka_is_published_reduced(
    kafka_broker: KafkaBroker, engage_sim: EngageSimulator, new_topic: TopicFactory
) -> None:
    """A refused record just under 1 MiB: its copy plus reason headers is not; a reduced copy is."""
    # 1,048,465 bytes as the producer counts them; with the x-dlq-* headers, 1,048,941: over
    # max_request_size (1 MiB), which the producer refuses (MessageSizeTooLargeError).
    key, value = b"K" * 700_000, b"x" * (1_048_576 - 700_000 - 200)
    topics = await run_one_poison_record(kafka_broker, engage_sim, new_topic, (key, value))
    [letter] = await read_all(kafka_broker, topics.dead_letter, at_least=1)
    view = {name: raw.decode() for name, raw in letter.headers}
    assert (letter.key, letter.value) == (key[:DLQ_KEY_LIMIT], b"")
    assert (view["x-dlq-reason"], view["x-dlq-truncated"]) == ("undecodable", "key,value")
    assert view["x-dlq-order-id"] == "K" * 255 + "…"
    assert dead_letter_problem(list(letter.headers)) is None
