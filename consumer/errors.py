"""The one exception tree of engage-consumer.

Every error the service raises on purpose is a ``ConsumerError``. Each class says whether trying
the same thing again can help (``retriable``); only the runner decides what to do about it
(retry, dead-letter, or stop). The local stand-ins have a tree of their own
(``consumer.sandbox.errors``).

    ConsumerError
    ├── ConfigError                 bad settings; all problems are listed at once
    ├── InvalidEventError           a record that is not a valid event (dead-lettered)
    ├── SendRefused                 the consumer itself withdrew a request before sending it
    ├── CommitFailed                an offset commit did not go through (retriable)
    ├── TransactionFailed           a Kafka transaction (outcomes + offsets) did not commit
    └── EngageError                 a call to Engage did not end in "accepted"
        ├── EngageRejected          Engage said no: 400, 404, 409, 422 (not retriable)
        ├── EngageRetriable         429, 5xx, refused connection, timeout before sending
        │   └── EngageKeyRefused    401, 403: the API key, not the request (waits for a key)
        ├── EngageAmbiguous         the request may have reached Engage: outcome unknown
        └── JobFailed               the asynchronous write job ended in failure
"""

from __future__ import annotations


class ConsumerError(Exception):
    """Base of every error engage-consumer raises on purpose."""

    retriable: bool = False


class ConfigError(ConsumerError):
    """One or more settings are missing or malformed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid settings:\n  - " + "\n  - ".join(problems))


class InvalidEventError(ConsumerError):
    """A record that cannot be decoded or does not match the event contract.

    ``reason`` is a short machine-readable code (``undecodable``, ``schema``, ``key_mismatch``,
    ``too_large``, ...) and ``detail`` says exactly what is wrong and where.
    """

    def __init__(self, reason: str, detail: str, *, order_id: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.order_id = order_id
        super().__init__(f"{reason}: {detail}")


class SendRefused(ConsumerError):
    """A request was withdrawn just before it went out (its partition was revoked): not sent."""


class CommitFailed(ConsumerError):
    """Kafka did not accept an offset commit; the next commit tries again."""

    retriable = True


class TransactionFailed(ConsumerError):
    """A Kafka transaction could not commit; the consumer must restart from committed state."""


class EngageError(ConsumerError):
    """A call to Engage that did not end in acceptance."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "") -> None:
        self.status = status
        self.body = body
        super().__init__(message)


class EngageRejected(EngageError):
    """Engage refused the request (400, 404, 409, 422): sending it again will not help."""


class EngageRetriable(EngageError):
    """A failure that did not take effect (429, 5xx, refused connection): safe to try again."""

    retriable = True

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        body: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, status=status, body=body)


class EngageKeyRefused(EngageRetriable):
    """Engage refused the API key (401, 403): nothing took effect; the service cannot work.

    Not the event's fault, so never its outcome: the request waits for a key Engage accepts
    (``consumer.credentials``) and is sent again then.
    """


class EngageAmbiguous(EngageError):
    """The request may have reached Engage (timeout after sending, connection lost mid-request)."""


class JobFailed(EngageError):
    """Engage's asynchronous job for a write ended in failure."""
