"""The Engage simulator's HTTP server (aiohttp): header checks, rate limit, faults, control routes.

The model (engage_state) decides every Engage answer; this module puts it on a socket. Each
API request goes through one lean path, in this order: a running outage, added latency, a
dropped connection, an injected error, ``apikey`` (401), the per-key rate limit (429),
``User-Agent`` (400), ``Content-Type`` (500), then the operation itself. The ``/_sim/*``
control routes skip all of that: they need no key and are never faulted, so a test can always
read the journal, except during a ``refuse`` outage when nothing is listening at all (use the
Python handle then).

Dropping a connection aborts the socket without writing a byte, so an HTTP client sees the
server disconnect without a response (httpx raises ``RemoteProtocolError``, a
``TransportError``). A ``refuse`` outage closes the listening socket and opens it again on the
same port when the outage ends; connections already open are dropped meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

import orjson
from aiohttp import web

from consumer.sandbox.engage.settings import Faults, SimulatorSettings
from consumer.sandbox.engage.state import Answer, EngageState, error
from consumer.sandbox.errors import SandboxError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

    from multidict import CIMultiDictProxy

    Operation = Callable[[dict[str, str], bytes], Answer]

#: Journal entries per page of ``GET /_sim/journal`` unless ``limit`` says otherwise.
JOURNAL_PAGE = 10_000


def _is_json(headers: CIMultiDictProxy[str]) -> bool:
    value = headers.get("Content-Type")
    return value is not None and value.partition(";")[0].strip().lower() == "application/json"


def _encode(answer: Answer) -> web.Response:
    headers: dict[str, str] = {}
    if answer.location is not None:
        headers["Location"] = answer.location
    if answer.retry_after is not None:
        headers["Retry-After"] = str(answer.retry_after)
    if answer.body is None:
        return web.Response(status=answer.status, headers=headers)
    headers["Content-Type"] = "application/json"
    return web.Response(status=answer.status, body=orjson.dumps(answer.body), headers=headers)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )


class EngageSimulator:
    """A running simulator in this event loop: its address, its model, and its controls.

    ``journal``, ``stats``, ``set_faults`` and ``reset`` are coroutines so that this handle and
    the separate-process one (``EngageSimulatorProcess``) can be used the same way; the
    ``*_nowait`` twins answer at once, and ``state`` gives direct access for assertions.
    """

    def __init__(self, settings: SimulatorSettings, *, host: str, port: int) -> None:
        self.settings = settings
        self.state = EngageState(settings)
        self._host = host
        self._port = port
        self._keys = frozenset(settings.api_keys)
        self._rng = random.Random(None if settings.seed is None else settings.seed + 1)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._reopen: asyncio.Task[None] | None = None
        self.base_url = ""
        #: (method, path, traceparent header or None) of each API request as it arrived
        self.traceparents: deque[tuple[str, str, str | None]] = deque(maxlen=settings.journal_limit)

    @property
    def api_key(self) -> str:
        """The first configured API key."""
        return self.settings.api_key

    @property
    def port(self) -> int:
        """The TCP port the simulator listens on (stable across ``refuse`` outages)."""
        return self._port

    # Lifecycle.
    async def start(self) -> None:
        """Bind the socket and start serving; a ``refuse`` outage at start closes it at once."""
        app = web.Application()
        app[_SIM_KEY] = self
        self._add_routes(app)
        # handler_cancellation stays off (the default): a request whose client gave up is still
        # processed to the end, exactly the ambiguity a real slow server creates.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        try:
            await self._listen()
        except OSError as exc:
            await self._runner.cleanup()
            raise SandboxError(
                f"engage simulator cannot listen on {self._host}:{self._port}: {exc}"
            ) from exc
        self._port = int(self._runner.addresses[0][1])
        self.base_url = f"http://{self._host}:{self._port}"
        await self._follow_outage(self.settings.faults)

    async def close(self) -> None:
        """Stop listening, finish in-flight requests (briefly), and release everything."""
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
            self._reopen = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def _listen(self) -> None:
        assert self._runner is not None
        if self._site is None:
            site = web.TCPSite(self._runner, self._host, self._port)
            await site.start()
            self._site = site

    async def _unlisten(self) -> None:
        if self._site is not None:
            site, self._site = self._site, None
            await site.stop()

    async def _reopen_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._listen()

    async def _follow_outage(self, faults: Faults) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopen
            self._reopen = None
        if faults.outage_mode == "refuse" and faults.outage_seconds > 0:
            await self._unlisten()
            self._reopen = asyncio.create_task(self._reopen_after(faults.outage_seconds))
        else:
            await self._listen()

    # Controls for Python callers.
    async def journal(self, since: int = 0) -> list[dict[str, Any]]:
        """Every journal entry with ``seq > since``, oldest first."""
        return self.state.journal(since)

    def journal_nowait(self, since: int = 0) -> list[dict[str, Any]]:
        """Like ``journal``, without awaiting."""
        return self.state.journal(since)

    async def stats(self) -> dict[str, Any]:
        """The simulator's counters (see ``EngageState.stats``)."""
        return self.state.stats()

    def stats_nowait(self) -> dict[str, Any]:
        """Like ``stats``, without awaiting."""
        return self.state.stats()

    async def set_faults(self, faults: Faults) -> None:
        """Replace the injected faults; a non-zero outage starts now."""
        self.state.set_faults(faults)
        await self._follow_outage(faults)

    async def reset(self) -> None:
        """Forget orders, jobs, journal and counters (faults stay as they are)."""
        self.state.reset()

    async def fail_next_job(self, order_id: str, kind: str = "unprocessable") -> None:
        """Make the next write accepted for ``order_id`` fail with ``kind``."""
        self.state.fail_next_job(order_id, kind)

    async def set_api_keys(self, keys: tuple[str, ...]) -> None:
        """Accept exactly ``keys`` from now on (a key rotated, revoked or granted): 401 else."""
        if not keys or not all(isinstance(k, str) and k for k in keys):
            raise ValueError("api keys must be a non-empty list of non-empty strings")
        self._keys = frozenset(keys)

    async def requests(self) -> list[tuple[float, str, str, int | str]]:
        """The request log (``SimulatorSettings.request_log``): time, client, route, status."""
        return self.state.requests()

    async def per_second(self) -> list[tuple[int, int, int]]:
        """``(second, requests, 429s)`` per second since the start (see ``EngageState``)."""
        return self.state.per_second()

    # The API path.
    def _drop(self, request: web.Request, route: str) -> web.Response:
        transport = request.transport
        if transport is not None:
            transport.abort()
        self.state.count_request(route, "dropped", peer=request.remote)
        # Nothing reaches the client: aiohttp sees the closed transport and stops quietly.
        return web.Response(status=503)

    def _check(self, headers: CIMultiDictProxy[str], *, body: bool) -> Answer | None:
        """The header checks and the rate limit, in Engage's order: None when all pass."""
        key = headers.get("apikey")
        if key is None or key not in self._keys:
            return error(401, "Unauthorized", "missing or unknown apikey")
        limited = self.state.admit(key)
        if limited is not None:
            return limited
        if not headers.get("User-Agent"):
            return error(400, "MissingUserAgent", "the User-Agent header is required")
        if (body or self.settings.strict_content_type) and not _is_json(headers):
            # Engage answers 500 here; the message is ours, to save the reader a search.
            return error(500, "InternalServerError", "Content-Type: application/json missing")
        return None

    async def _serve(
        self, request: web.Request, route: str, operation: Operation, *, body: bool
    ) -> web.Response:
        state, faults, rng = self.state, self.state.faults, self._rng
        self.traceparents.append((request.method, request.path, request.headers.get("traceparent")))
        if faults.outage_seconds and state.outage_remaining() > 0:
            state.count_fault("outage")
            if faults.outage_mode != "error":
                return self._drop(request, route)
            return self._answer(
                route,
                error(faults.error_status, "ServiceUnavailable", "outage"),
                peer=request.remote,
            )
        if faults.latency is not None:
            state.count_fault("latency")
            await asyncio.sleep(faults.latency.sample(rng))
        drop = bool(faults.drop_rate) and rng.random() < faults.drop_rate
        if drop:
            state.count_fault("drop")
            if faults.drop_when == "before":
                return self._drop(request, route)
        if faults.error_rate and rng.random() < faults.error_rate:
            state.count_fault("error")
            answer = error(faults.error_status, "ServiceUnavailable", "simulated error")
        else:
            answer = self._check(request.headers, body=body) or operation(
                request.match_info, await request.read() if body else b""
            )
        if drop:  # dropped after processing: it took effect, and the client cannot know
            return self._drop(request, route)
        return self._answer(route, answer, peer=request.remote)

    def _answer(self, route: str, answer: Answer, *, peer: str | None) -> web.Response:
        self.state.count_request(route, answer.status, peer=peer)
        return _encode(answer)

    def _api(
        self, route: str, operation: Operation, *, body: bool
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handle(request: web.Request) -> web.Response:
            return await self._serve(request, route, operation, body=body)

        return handle

    def _add_routes(self, app: web.Application) -> None:
        state = self.state

        def change(kind: Literal["change-status", "change-delivery"]) -> Operation:
            return lambda m, b: state.change_order(m["orderId"], kind, b)

        api: list[tuple[str, str, Operation, bool]] = [
            ("POST", "/api/v3/orders", lambda _, b: state.create_order(b), True),
            ("GET", "/api/v3/orders/jobs/{jobId}", lambda m, _: state.read_job(m["jobId"]), False),
            ("GET", "/api/v3/orders/{orderId}", lambda m, _: state.read_order(m["orderId"]), False),
            (
                "PUT",
                "/api/v3/orders/{orderId}",
                lambda m, b: state.replace_order(m["orderId"], b),
                True,
            ),
            (
                "DELETE",
                "/api/v3/orders/{orderId}",
                lambda m, _: state.delete_order(m["orderId"]),
                False,
            ),
            (
                "POST",
                "/api/v3/orders/{orderId}/action",
                lambda m, b: state.post_action(m["orderId"], b),
                True,
            ),
            ("POST", "/api/v3/orders/{orderId}/change-status", change("change-status"), True),
            ("POST", "/api/v3/orders/{orderId}/change-delivery", change("change-delivery"), True),
        ]
        for method, path, operation, body in api:
            route = f"{method} {path}"
            app.router.add_route(method, path, self._api(route, operation, body=body))
        app.router.add_get("/_sim/journal", _journal)
        app.router.add_get("/_sim/stats", _stats)
        app.router.add_post("/_sim/reset", _reset)
        app.router.add_get("/_sim/faults", _get_faults)
        app.router.add_post("/_sim/faults", _set_faults)
        app.router.add_post("/_sim/fail-next", _fail_next)
        app.router.add_post("/_sim/api-keys", _set_api_keys)
        app.router.add_get("/_sim/per-second", _per_second)
        app.router.add_get("/_sim/requests", _requests)
        app.router.add_get("/_sim/orders/{orderId}", _peek_order)


_SIM_KEY = web.AppKey("engage_simulator", EngageSimulator)


# The control routes (HTTP): no apikey, no rate limit, no faults.
async def _journal(request: web.Request) -> web.Response:
    """GET /_sim/journal?since=N&limit=M: entries with seq > N, oldest first, paged."""
    sim = request.app[_SIM_KEY]
    try:
        since = int(request.query.get("since", "0"))
        limit = int(request.query.get("limit", str(JOURNAL_PAGE)))
    except ValueError:
        return _json({"message": "since and limit must be integers"}, 400)
    if limit < 1:
        return _json({"message": "limit must be >= 1"}, 400)
    entries = sim.state.journal(since, limit + 1)
    more = len(entries) > limit
    entries = entries[:limit]
    last = entries[-1]["seq"] if entries else since
    return _json({"entries": entries, "lastSeq": last, "more": more})


async def _stats(request: web.Request) -> web.Response:
    return _json(request.app[_SIM_KEY].state.stats())


async def _reset(request: web.Request) -> web.Response:
    await request.app[_SIM_KEY].reset()
    return _json({"reset": True})


async def _get_faults(request: web.Request) -> web.Response:
    return _json(request.app[_SIM_KEY].state.faults.to_json())


async def _set_faults(request: web.Request) -> web.Response:
    """POST /_sim/faults: the faults become exactly the given JSON (missing fields: off)."""
    sim = request.app[_SIM_KEY]
    try:
        faults = Faults.from_json(orjson.loads(await request.read() or b"{}"))
    except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
        return _json({"message": str(exc)}, 400)
    await sim.set_faults(faults)
    return _json(faults.to_json())


async def _fail_next(request: web.Request) -> web.Response:
    """POST /_sim/fail-next {"orderId", "kind"}: the order's next accepted write fails."""
    sim = request.app[_SIM_KEY]
    try:
        data = orjson.loads(await request.read())
        order_id, kind = data["orderId"], data.get("kind", "unprocessable")
        if not isinstance(order_id, str) or not isinstance(kind, str):
            raise TypeError("orderId and kind must be strings")  # noqa: TRY301 - one 400 path
        sim.state.fail_next_job(order_id, kind)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return _json({"message": f"bad fail-next request: {exc}"}, 400)
    return _json({"orderId": order_id, "kind": kind})


async def _set_api_keys(request: web.Request) -> web.Response:
    """POST /_sim/api-keys {"apiKeys": [...]}: accept exactly these keys from now on."""
    sim = request.app[_SIM_KEY]
    try:
        keys = orjson.loads(await request.read())["apiKeys"]
        if not isinstance(keys, list):
            raise TypeError("apiKeys must be a list")  # noqa: TRY301 - one 400 path
        await sim.set_api_keys(tuple(keys))
    except (ValueError, TypeError, KeyError) as exc:
        return _json({"message": f"bad api-keys request: {exc}"}, 400)
    return _json({"apiKeys": len(keys)})


async def _requests(request: web.Request) -> web.Response:
    """GET /_sim/requests: [[seconds, client address, route, status], ...], oldest first."""
    return _json(request.app[_SIM_KEY].state.requests())


async def _per_second(request: web.Request) -> web.Response:
    """GET /_sim/per-second: [[second, requests, 429s], ...] since the start."""
    return _json(request.app[_SIM_KEY].state.per_second())


async def _peek_order(request: web.Request) -> web.Response:
    """GET /_sim/orders/{orderId}: the stored order and tag, without key, limit or faults."""
    state = request.app[_SIM_KEY].state
    order_id = request.match_info["orderId"]
    order = state.order(order_id)
    if order is None:
        return _json({"message": f"order {order_id!r} is not stored"}, 404)
    return _json({"order": order, "versionTag": state.version_tag(order_id)})


@asynccontextmanager
async def open_engage_simulator(
    settings: SimulatorSettings | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[EngageSimulator]:
    """Run a simulator in the current event loop for the duration of the block.

    ``port=0`` picks a free port; the handle's ``base_url`` says which.
    """
    simulator = EngageSimulator(settings or SimulatorSettings(), host=host, port=port)
    await simulator.start()
    try:
        yield simulator
    finally:
        await simulator.close()
