"""The Protocols the service's parts meet at: a consumed record, the dispatcher, the intent log.

Small on purpose: integration tests pass the real Kafka records, the real dispatcher over HTTP
and the real intent log; unit tests pass fakes that implement the same Protocol.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from consumer.engage import BeforeSend, SendGuard
    from consumer.service.dispatch import DispatchResult
    from consumer.types import TP


class Record(Protocol):
    """The parts of a consumed Kafka record the pipeline reads (aiokafka's ConsumerRecord)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class EngageCalls(Protocol):
    """The dispatcher's operations, as the pipeline uses them."""

    async def write(
        self,
        order_id: str,
        body: Mapping[str, Any],
        *,
        exists: bool | None,
        deadline: float,
        wait: Callable[[float], Awaitable[None]],
        tag_wanted: Callable[[], bool] | None,
        guard: SendGuard | None = None,
        embedded: Mapping[str, Any] | None = None,
        before_send: BeforeSend | None = None,
        patient: Callable[[], bool] | None = None,
    ) -> DispatchResult:
        """Create or replace, wait for the job, learn the tag if ``tag_wanted`` says so.

        ``embedded``: an action riding in the write (its result is the result's ``rider``).
        """
        ...

    async def delete(
        self,
        order_id: str,
        *,
        deadline: float,
        wait: Callable[[float], Awaitable[None]],
        guard: SendGuard | None = None,
    ) -> DispatchResult:
        """Delete, wait for the job (``wait`` sleeps between polls)."""
        ...

    async def action(
        self,
        order_id: str,
        *,
        action: str,
        version_tag: str,
        language: str | None,
        data: dict[str, Any] | None,
        deadline: float,
        before_send: BeforeSend | None = None,
        guard: SendGuard | None = None,
    ) -> DispatchResult:
        """Post an action with a tag; ``guard``, then ``before_send`` run just before it goes."""
        ...

    async def read_tag(self, order_id: str, *, deadline: float) -> DispatchResult:
        """GET the order's current tag."""
        ...


class IntentLog(Protocol):
    """Makes "this action is about to be sent" durable before it is (``service.commits``)."""

    async def record(self, tp: TP, offset: int) -> bool:
        """Return once the intent is durable; False if the partition is no longer ours."""
        ...

    def released(self) -> None:
        """An offset with an intent finished: its intent can leave the metadata soon."""
        ...
