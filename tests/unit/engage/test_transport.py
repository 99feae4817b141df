"""The aiohttp transport says "not sent" only when the request cannot have left."""

import aiohttp
import httpx
import pytest

from consumer.engage.classify import transport_error
from consumer.engage.transport import (
    EngageTransport,
    TracedHTTPTransport,
    classify,
    make_transport,
)
from consumer.errors import EngageAmbiguous, EngageRetriable


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (aiohttp.ConnectionTimeoutError("pool"), httpx.ConnectTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError),
        (aiohttp.ClientPayloadError("truncated"), httpx.ReadError),
    ],
)
def test_each_aiohttp_failure_maps_to_the_httpx_error_that_says_if_it_was_sent(
    cause: BaseException, expected: type[httpx.TransportError]
) -> None:
    """A dropped connection is ambiguous; only a connection never made is 'not sent'."""
    assert type(classify(cause)) is expected


def test_a_server_dropping_the_connection_makes_an_action_ambiguous() -> None:
    """httpx-aiohttp alone would call this a connect timeout, and an action would go twice."""
    error = transport_error(
        "POST", "/api/v3/orders/o/action", classify(aiohttp.ServerDisconnectedError())
    )
    assert isinstance(error, EngageAmbiguous)
    assert not isinstance(error, EngageRetriable)


def test_waiting_for_a_connection_is_retriable() -> None:
    """A pool or connect timeout means nothing was sent: safe to try again."""
    error = transport_error("POST", "/x", classify(aiohttp.ConnectionTimeoutError("pool")))
    assert isinstance(error, EngageRetriable)


def test_the_transport_setting_picks_aiohttp_or_httpcore() -> None:
    """`httpx` keeps httpx's own transport (traced); anything else is the aiohttp one."""
    limits = httpx.Limits(max_connections=4)
    assert type(make_transport("httpx", limits)) is TracedHTTPTransport
    assert isinstance(make_transport("aiohttp", limits), EngageTransport)
