"""An embedded order action through the attempts of one write, and what the write learned of it.

Engage runs an action that rides in a write when the write's job succeeds, on exactly that
write. The write is idempotent and the action is not, so the action rides only as long as no
attempt may have reached Engage unanswered; a write Engage refuses because of its action is
sent again without it. The wire details (field, shape, report) are ``wire``'s.

Used by ``client.write_and_confirm``, which it reaches through the ``OrderWriter`` Protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from consumer.engage import wire as engage_wire
from consumer.engage.types import EmbeddedReport
from consumer.errors import EngageAmbiguous, EngageRejected

if TYPE_CHECKING:
    from collections.abc import Mapping

    from consumer.engage.seams import BeforeSend, SendGuard
    from consumer.engage.types import JobRef, JobResult, Meter


class OrderWriter(Protocol):
    """The one call of the client a rider makes: one write (with its PUT/POST switch)."""

    async def write_order(
        self,
        order_id: str,
        body: Mapping[str, Any],
        *,
        exists: bool | None,
        deadline: float | None = None,
        meter: Meter | None = None,
        guard: SendGuard | None = None,
        before_send: BeforeSend | None = None,
    ) -> JobRef:
        """Create or replace the order; the job Engage started."""
        ...


class EmbeddedRider:
    """An embedded action through the attempts of one write: when it rides, and what came of it.

    It rides until an attempt is answered ambiguously (``maybe_sent``: later attempts go
    without it, as the write is idempotent and the action is not), or until Engage refuses the
    write because of it (``refused``: the write goes again at once without it).
    """

    def __init__(self, action: Mapping[str, Any] | None, *, field: str) -> None:
        self._action = action
        self._field = field
        self.carrying = action is not None
        self.maybe_sent = False
        self.refused: str | None = None

    async def write(
        self,
        client: OrderWriter,
        order_id: str,
        body: Mapping[str, Any],
        *,
        exists: bool | None,
        deadline: float,
        meter: Meter,
        guard: SendGuard | None,
        before_send: BeforeSend | None,
    ) -> JobRef:
        """One attempt of the write, with the action while it still rides."""
        action = self._action if self.carrying else None
        payload = body
        if action is not None:
            payload = engage_wire.with_embedded_action(body, action, field=self._field)
        try:
            return await client.write_order(
                order_id,
                payload,
                exists=exists,
                deadline=deadline,
                meter=meter,
                guard=guard,
                before_send=before_send if action is not None else None,
            )
        except EngageAmbiguous:
            self.maybe_sent = self.maybe_sent or action is not None
            self.carrying = False
            raise
        except EngageRejected as exc:
            if action is None or not engage_wire.embedded_action_refused(
                exc.status or 0, exc.body, field=self._field
            ):
                raise
            # The order is fine, its action is not: store the order, refuse the action.
            self.refused, self.carrying = str(exc), False
            return await client.write_order(
                order_id, body, exists=exists, deadline=deadline, meter=meter, guard=guard
            )

    def report(self, job: JobResult | None) -> EmbeddedReport | None:
        """What the write learned of its action (None: it carried none).

        ``job``: how the write's job ended (None: the write never got that far).
        """
        if self._action is None:
            return None
        result = None
        if self.carrying and job is not None and job.state != "timed_out":
            result = engage_wire.embedded_action_result(job.body, field=self._field)
        return EmbeddedReport(
            carried=self.carrying, maybe_sent=self.maybe_sent, refused=self.refused, result=result
        )
