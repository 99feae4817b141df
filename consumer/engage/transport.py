"""The HTTP transport under the Engage client: aiohttp's connection handling behind httpx's API.

Why: the benchmark measured httpx's own transport (httpcore) as the consumer's bottleneck — 39 %
of its CPU at 100 requests in flight, work that grows with the number of pooled connections —
while the same client on aiohttp's transport needed about half the CPU per action and kept the
consumer-added p99 latency near 17 ms instead of 400 ms at half of saturation
(bench/README.md). ``ENGAGE_HTTP_TRANSPORT=httpx`` switches back.

``httpx-aiohttp`` maps aiohttp's errors onto httpx's, but it maps a connection the server
dropped mid-request (``ServerDisconnectedError``) to ``httpx.ConnectTimeout``, which would
tell the client nothing was sent — and an action would be sent twice. Whether a request may
have reached Engage is what this service's guarantees rest on, so ``EngageTransport`` maps
every aiohttp failure itself: only failures to open a connection (or to get one from the pool)
are "not sent"; everything else is ambiguous. It also reads the (small) body inside the same
mapping, so a failure while reading is classified the same way.

Every request is sent inside ``consumer.tracing.traced_request``: within a traced call it
carries the call's ``traceparent`` and is recorded as a client span (with the status, or the
class of the error it ended in); otherwise that costs one context-variable lookup. With
``ENGAGE_HTTP_TRANSPORT=httpx`` the same happens around httpx's own transport.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from consumer.tracing import traced_request


def _not_sent(cause: BaseException) -> httpx.TransportError | None:
    """The httpx error for an aiohttp failure that proves the request never left, if it is one."""
    if isinstance(cause, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(cause))
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        # Raised while opening a connection or waiting for a pooled one.
        return httpx.ConnectTimeout(str(cause))
    return None


def classify(cause: BaseException) -> httpx.TransportError:
    """Map an aiohttp (or timeout) failure to the httpx error that says whether it was sent."""
    not_sent = _not_sent(cause)
    if not_sent is not None:
        return not_sent
    if isinstance(cause, aiohttp.ServerTimeoutError | asyncio.TimeoutError | TimeoutError):
        return httpx.ReadTimeout(str(cause) or type(cause).__name__)
    if isinstance(cause, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(cause) or "server disconnected")
    return httpx.ReadError(str(cause) or type(cause).__name__)


class EngageTransport(AiohttpTransport):
    """``AiohttpTransport`` with errors mapped by whether the request may have been sent."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send, read the whole answer, and map any failure (see the module docstring)."""
        with traced_request(request) as span:
            response = await self._send(request)
            span.answered(response.status_code)
        return response

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            response: httpx.Response = await super().handle_async_request(request)
            # Raw bytes: the Response built below decodes any Content-Encoding once.
            content = b"".join([chunk async for chunk in response.aiter_raw()])
        except httpx.TransportError as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            if isinstance(cause, httpx.TransportError):
                raise
            raise classify(cause) from cause
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise classify(exc) from exc
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            content=content,
            request=request,
            extensions=response.extensions,
        )


class TracedHTTPTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport (httpcore), each request traced as ``EngageTransport``'s are."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send through httpcore inside the request's trace context."""
        with traced_request(request) as span:
            response = await super().handle_async_request(request)
            span.answered(response.status_code)
        return response


def make_transport(kind: str, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """The transport for ``ENGAGE_HTTP_TRANSPORT``: ``aiohttp`` (default) or ``httpx``."""
    if kind == "httpx":
        # What httpx.AsyncClient makes by default, traced.
        return TracedHTTPTransport(limits=limits)
    return EngageTransport(limits=limits)
