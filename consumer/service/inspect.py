"""What this member knows of one order, as JSON for ``GET /orders/{orderId}`` on the health port.

The book's view (state, confirmed tag and revision, whether Engage has the order) plus, for each
event waiting behind it, which event it is, where it came from and since when it waits; and who
owns the order: the partition the default partitioner puts its key on in every input topic, and
whether this member holds it now (if not, another replica knows more). Read-only: no bodies,
no data, no secrets.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from consumer.orders import OrderSnapshot
    from consumer.service.pending import OpRef
    from consumer.types import TP


def default_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions`` (murmur2)."""
    from aiokafka.partitioner import murmur2  # noqa: PLC0415 - the one use, at request time

    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


def describe_order(
    snapshot: OrderSnapshot[OpRef],
    *,
    partition_counts: Mapping[str, int],
    assigned: set[TP],
    member: Mapping[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The JSON body: the book's view, what waits behind the order, and who owns it."""
    now = now or datetime.now(UTC)
    partitions = [
        {
            "topic": topic,
            "partition": (p := default_partition(snapshot.order_id, count)),
            "ownedHere": (topic, p) in assigned,
        }
        for topic, count in sorted(partition_counts.items())
        if count > 0
    ]
    waiting = [
        *(_op("writing", ref, now) for ref in ([snapshot.writing] if snapshot.writing else [])),
        # An action riding in that write (embedded delivery): in flight with it.
        *(_op("riding", ref, now) for ref in ([snapshot.riding] if snapshot.riding else [])),
        *(_op("acting", ref, now) for ref in snapshot.acting),
        *(_op("queued", ref, now) for ref in snapshot.queued),
        *(_op("parked", ref, now) for ref in snapshot.parked),
    ]
    since = min((op["receivedAt"] for op in waiting), default=None)
    return {
        "orderId": snapshot.order_id,
        "tracked": snapshot.tracked,
        "state": snapshot.state,
        "versionTag": snapshot.tag,
        "revision": snapshot.revision,
        "revisionFloor": snapshot.floor,
        "existsInEngage": snapshot.exists,
        "busySince": since,
        "waiting": waiting,
        "partitions": partitions,
        "ownedHere": any(p["ownedHere"] for p in partitions),
        "member": dict(member),
    }


def _op(stage: str, ref: OpRef, now: datetime) -> dict[str, Any]:
    pending = ref.pending
    event = pending.event
    return {
        "stage": stage,
        "role": ref.role,
        "action": ref.action,
        "eventId": event.id,
        "eventType": event.type,
        "topic": pending.tp[0],
        "partition": pending.tp[1],
        "offset": event.offset,
        "receivedAt": pending.received_at.isoformat(),
        "waitingSeconds": round((now - pending.received_at).total_seconds(), 3),
    }
