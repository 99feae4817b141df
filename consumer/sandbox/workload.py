"""Realistic order-lifecycle streams for the demo, the tests and the benchmark.

``lifecycle_stream`` makes N orders go through create → confirm → ship → deliver (some
cancelled, some with custom actions and bursts of consecutive writes), interleaved across
orders while each order's own events keep their order. Every action carries the id of the event
that asked for it in its ``data`` (``_eventId``), so the simulator's journal can be matched back
to the input: that is how ``consumer.sandbox.audit`` counts duplicates and checks tags.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

SOURCE: Final = "/sandbox/order-service"
_EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class GeneratedEvent:
    """One input record: the key, the CloudEvent and its encoded value."""

    order_id: str
    event: dict[str, Any]

    @property
    def key(self) -> bytes:
        """The record key: the orderId as UTF-8."""
        return self.order_id.encode()

    @property
    def value(self) -> bytes:
        """The record value: the CloudEvent as JSON."""
        return orjson.dumps(self.event)

    @property
    def event_id(self) -> str:
        """The CloudEvent id."""
        return str(self.event["id"])


class EventFactory:
    """Builds valid CloudEvents with unique ids and advancing times."""

    def __init__(self, *, prefix: str = "evt", rng: random.Random | None = None) -> None:
        self.prefix = prefix
        self.rng = rng or random.Random(7)
        self._serial = 0

    def _envelope(self, event_type: str, order_id: str, data: dict[str, Any]) -> GeneratedEvent:
        self._serial += 1
        moment = _EPOCH + timedelta(seconds=self._serial)
        event = {
            "specversion": "1.0",
            "id": f"{self.prefix}-{self._serial}",
            "source": SOURCE,
            "type": event_type,
            "subject": order_id,
            "time": moment.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": data,
        }
        return GeneratedEvent(order_id=order_id, event=event)

    def order_body(
        self, order_id: str, revision: int, *, status: str = "Paid", contact: bool = True
    ) -> dict[str, Any]:
        """An Engage v3 order body; the revision is visible in it so every write differs."""
        body: dict[str, Any] = {
            "orderId": order_id,
            "externalStoreId": "web-se",
            "status": status,
            "currencyCode": "SEK",
            "channel": "Web",
            "createdAt": "2026-01-01T10:00:00+01:00",
            "lastChangedAt": (_EPOCH + timedelta(minutes=revision)).isoformat(),
            "references": [{"type": "Revision", "value": str(revision)}],
            "lineItems": {
                "items": [{"sku": "SKU-1", "quantity": 1 + revision % 3, "grossPrice": 199.0}],
                "subTotal": 199.0,
            },
        }
        if contact:
            body["contact"] = {
                "matchKey": f"{order_id.lower()}@example.com",
                "matchKeyType": "Email",
            }
        return body

    def upserted(
        self, order_id: str, revision: int | None, *, status: str = "Paid", contact: bool = True
    ) -> GeneratedEvent:
        """``order.upserted`` with a full body."""
        data: dict[str, Any] = {
            "order": self.order_body(order_id, revision or 0, status=status, contact=contact)
        }
        if revision is not None:
            data["revision"] = revision
        return self._envelope("order.upserted", order_id, data)

    def action(
        self,
        order_id: str,
        name: str,
        *,
        min_revision: int | None = None,
        language: str | None = "sv-SE",
    ) -> GeneratedEvent:
        """``order.action`` naming a (custom) action."""
        event = self._envelope("order.action", order_id, {"action": name})
        data: dict[str, Any] = event.event["data"]
        data["data"] = {"_eventId": event.event_id}
        if language:
            data["language"] = language
        if min_revision is not None:
            data["minRevision"] = min_revision
        return event

    def lifecycle(
        self,
        kind: str,
        order_id: str,
        *,
        revision: int | None,
        snapshot_status: str | None = None,
        contact: bool = True,
    ) -> GeneratedEvent:
        """``order.<kind>`` (confirmed, shipped, …), with a snapshot when a status is given."""
        data: dict[str, Any] = {"language": "sv-SE"}
        if revision is not None:
            data["revision"] = revision
        if snapshot_status is not None:
            data["order"] = self.order_body(
                order_id, revision or 0, status=snapshot_status, contact=contact
            )
        event = self._envelope(f"order.{kind}", order_id, data)
        event.event["data"]["actionData"] = {"_eventId": event.event_id}
        return event

    def deleted(self, order_id: str, revision: int | None) -> GeneratedEvent:
        """``order.deleted``."""
        data: dict[str, Any] = {} if revision is None else {"revision": revision}
        return self._envelope("order.deleted", order_id, data)


def order_lifecycle(
    factory: EventFactory, order_id: str, rng: random.Random
) -> list[GeneratedEvent]:
    """One order's events, in order: a realistic path with occasional bursts and detours."""
    events: list[GeneratedEvent] = []
    revision = 1
    events.append(factory.upserted(order_id, revision, status="Created"))
    # Bursts of consecutive writes (address fixes, payment updates) that the consumer may coalesce.
    for _ in range(rng.choice((0, 0, 1, 2))):
        revision += 1
        events.append(factory.upserted(order_id, revision, status="Created"))
    revision += 1
    events.append(
        factory.lifecycle("confirmed", order_id, revision=revision, snapshot_status="Paid")
    )
    if rng.random() < 0.1:
        events.append(factory.action(order_id, "ReviewReminder"))
    if rng.random() < 0.15:
        revision += 1
        events.append(
            factory.lifecycle("cancelled", order_id, revision=revision, snapshot_status="Cancelled")
        )
        return events
    revision += 1
    events.append(
        factory.lifecycle("shipped", order_id, revision=revision, snapshot_status="Shipped")
    )
    revision += 1
    events.append(
        factory.lifecycle("delivered", order_id, revision=revision, snapshot_status="Delivered")
    )
    return events


def lifecycle_stream(
    n_orders: int, *, seed: int = 1, prefix: str = "evt", order_prefix: str = "ORD"
) -> list[GeneratedEvent]:
    """N orders' lifecycles interleaved at random; each order's events stay in order."""
    rng = random.Random(seed)
    factory = EventFactory(prefix=prefix, rng=rng)
    queues = [
        order_lifecycle(factory, f"{order_prefix}-{seed}-{n:06d}", rng) for n in range(n_orders)
    ]
    return _interleave(queues, rng)


def _interleave(queues: list[list[GeneratedEvent]], rng: random.Random) -> list[GeneratedEvent]:
    """The queues' events interleaved at random, each queue's own order kept."""
    out: list[GeneratedEvent] = []
    active = [q for q in queues if q]
    cursor = [0] * len(active)
    live = list(range(len(active)))
    while live:
        pick = rng.randrange(len(live))
        index = live[pick]
        out.append(active[index][cursor[index]])
        cursor[index] += 1
        if cursor[index] == len(active[index]):
            live[pick] = live[-1]
            live.pop()
    return out


def gated_lifecycle(
    factory: EventFactory, order_id: str, rng: random.Random
) -> list[GeneratedEvent]:
    """One order whose actions are gated on revisions, with a write right behind each of them.

    ``order.upserted`` (revision r, sometimes a burst that coalesces), ``order.action``
    ConfirmOrder with ``minRevision`` r, then the next write at once (r + 1), a shipment (a
    composite: snapshot and ConfirmShipment), sometimes a gated custom action and a delivery.
    An action gated on r must go with the tag of r's write, before r + 1's write replaces it:
    the order a replica that takes the partition over mid-stream must keep.
    """
    events: list[GeneratedEvent] = []
    revision = 1
    events.append(factory.upserted(order_id, revision, status="Created"))
    for _ in range(rng.choice((0, 0, 1))):
        revision += 1
        events.append(factory.upserted(order_id, revision, status="Created"))
    events.append(factory.action(order_id, "ConfirmOrder", min_revision=revision))
    revision += 1
    events.append(factory.upserted(order_id, revision, status="Paid"))
    revision += 1
    events.append(
        factory.lifecycle("shipped", order_id, revision=revision, snapshot_status="Shipped")
    )
    if rng.random() < 0.3:
        events.append(factory.action(order_id, "ReviewReminder", min_revision=revision))
    if rng.random() < 0.5:
        revision += 1
        events.append(
            factory.lifecycle("delivered", order_id, revision=revision, snapshot_status="Delivered")
        )
    return events


def gated_stream(
    n_orders: int, *, seed: int = 1, prefix: str = "gev", order_prefix: str = "GRD"
) -> list[GeneratedEvent]:
    """N orders' ``gated_lifecycle`` interleaved at random; each order's events stay in order."""
    rng = random.Random(seed)
    factory = EventFactory(prefix=prefix, rng=rng)
    queues = [
        gated_lifecycle(factory, f"{order_prefix}-{seed}-{n:06d}", rng) for n in range(n_orders)
    ]
    return _interleave(queues, rng)
