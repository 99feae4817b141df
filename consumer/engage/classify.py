"""How the Engage client classifies an answer it did not expect, or the lack of one.

Every failure becomes one class of ``consumer.errors``, chosen by one question: can the request
have taken effect in Engage?

- no, and Engage said why (400, 404, 409, 422): ``EngageRejected``;
- no, because Engage refused the API key (401, 403): ``EngageKeyRefused``, which says nothing
  about the request and is sent again once the key works;
- no, and trying again later can work (429, 5xx; the connection never opened, or we were still
  waiting for a pooled one): ``EngageRetriable``, with the ``Retry-After`` it may carry;
- maybe (read timeout, connection lost after sending; for an action also a gateway's 502/504):
  ``EngageAmbiguous``.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Final

import httpx

from consumer.engage import wire as engage_wire
from consumer.errors import (
    EngageAmbiguous,
    EngageError,
    EngageKeyRefused,
    EngageRejected,
    EngageRetriable,
)

BODY_LIMIT: Final = 2000  # characters of an error body kept on an exception
MAX_RETRY_AFTER: Final = 3600.0  # a broken header must not park the service for days

# Transport failures that prove nothing reached Engage: the connection never opened, or we were
# still waiting for a pooled connection. Every other transport failure may have happened after
# Engage read the request, so it is ambiguous.
_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN  # noqa: PLR0124
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def short(text: str) -> str:
    """An error body cut to a size that fits on an exception and a log line."""
    return text if len(text) <= BODY_LIMIT else text[:BODY_LIMIT] + "…"


def transport_error(method: str, path: str, exc: httpx.TransportError) -> EngageError:
    """Classify a failure without an answer by whether the request can have reached Engage."""
    what = f"{method} {path}: {type(exc).__name__}"
    if isinstance(exc, _NOT_SENT):
        return EngageRetriable(f"{what} (not sent)")
    return EngageAmbiguous(f"{what} (may have reached Engage)")


def status_error(
    method: str,
    path: str,
    response: httpx.Response,
    *,
    ambiguous: frozenset[int] = frozenset(),
) -> EngageError:
    """Classify an answer the caller did not expect as rejected, retriable or ambiguous."""
    status = response.status_code
    body = short(response.text)
    what = f"{method} {path} answered {status}"
    reason = engage_wire.reason_text(engage_wire.decode_body(response.content))
    if reason:
        what = f"{what}: {short(reason)}"
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status in ambiguous:
        return EngageAmbiguous(what, status=status, body=body)
    if status in (401, 403):
        return EngageKeyRefused(what, status=status, body=body)
    if status == 429 or status >= 500:
        return EngageRetriable(what, status=status, body=body, retry_after=retry_after)
    if 400 <= status < 500:
        return EngageRejected(what, status=status, body=body)
    # A redirect or informational answer where none is documented: not retriable, not Engage's no.
    return EngageError(what, status=status, body=body)


# A gateway answering 502/504 for an action cannot say whether Engage ran it before the gateway
# gave up, and actions are not idempotent: those answers are ambiguous for actions. 500 and 503
# are Engage's own refusals (e.g. a missing Content-Type is a 500), so they stay retriable.
ACTION_AMBIGUOUS: Final = frozenset({502, 504})
