"""The Engage simulator: ``engage-consumer sandbox engage`` and the Python API behind it.

A real HTTP server (aiohttp) that behaves as docs/engage-api.md says: ``apikey`` (401),
``User-Agent`` (400) and ``Content-Type`` (500) checks; asynchronous writes answering 202 with a
job link; jobs that finish after a configurable delay or fail; a new random ``versionTag`` per
processed write; actions refused with 404 on a stale tag and 422 without a contact; 429 above a
per-key rate; faults on demand; and a journal of everything accepted, the tests' source of truth.

The pieces: engage_settings (values, parsing), engage_state (the pure model), engage_actions (the
action rules, embedded order actions included), engage_http (the server and the in-process
handle), engage_process (the same server in a child process).

Python API::

    async with open_engage_simulator(SimulatorSettings(job_delay=Delay.fixed(0.01))) as sim:
        ...  # sim.base_url, sim.api_key, await sim.journal(), sim.state.version_tag("o-1")
    async with open_engage_simulator_process(settings, cpus={1}) as sim:
        ...  # same coroutines, over HTTP

Wire choices where Engage's documentation is silent (kept in one place each, easy to change):

* ``Content-Type: application/json`` is demanded (500 without it) on POST and PUT, the requests
  with a body; GET and DELETE pass without it unless ``--strict-content-type``.
* A write answers 202, ``Location: /api/v3/orders/jobs/<jobId>`` (a relative path) and the body
  ``{"jobId", "location"}``. Polling answers 202 ``{"status": "Queued" | "Processing"}`` while
  the job waits or runs, 302 with ``Location: /api/v3/orders/<orderId>`` when it succeeded (for
  a DELETE too: the order it points to is then gone), and when it failed the status of its
  failure kind (``invalid`` 400, ``unprocessable`` 422, ``internal`` 500) with
  ``{"status": "Failed", "errorCode", "message"}``. Unknown jobs answer 404.
* ``GET /api/v3/orders/<id>`` returns the stored body plus a top-level ``versionTag``.
* An action is checked in this order: 400 (bad JSON, missing or non-string ``action`` or
  ``versionTag``, non-string ``language``), 404 (no such order, or a tag that is not the
  current one), 422 (no ``contact.matchKey``); 202 has an empty body.
* POST and PUT accept an embedded order action under ``orderAction`` (the field's name is the
  setting ``embedded_action_field``, flag ``--embedded-action-field``): the action body minus
  ``versionTag``, stripped before the order is stored, 400 ``InvalidOrderAction`` when malformed,
  run when the job succeeds; the job's answer reports it as ``{"orderAction": {"status":
  "Succeeded" | "NotRun"}}`` or ``{"status": "Failed", "errorCode": "OrderHasNoContact"}``
  (details in engage_actions).
* Error bodies are ``{"errorCode", "message"}``; a 429 carries ``Retry-After: <seconds>`` when
  configured (default 1 s) and nothing otherwise; the rate limit is a token bucket per key.

Control routes (no ``apikey``, never faulted): ``GET /_sim/journal?since=N&limit=M``,
``GET /_sim/stats``, ``POST /_sim/reset``, ``GET|POST /_sim/faults``, ``POST /_sim/fail-next``,
``GET /_sim/orders/<id>``.

Capacity, measured by bench/simulator_capacity.py (a mix of 50 % action POSTs, 40 % order GETs
and 10 % job polls from wrk at concurrency 64, simulator pinned to its own core): 16,000-21,000
requests per CPU-second, i.e. about 20,000 requests/s on one core (14,900 req/s achieved on
the busy shared machine), ~100 times Engage's own limit of 200 requests/s per key. The
per-request path is one handler, no middleware, no access log, orjson, and jobs without timers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consumer.sandbox.engage.handle import EngageSimulatorHandle
from consumer.sandbox.engage.settings import Delay, Faults, SimulatorSettings
from consumer.sandbox.engage.state import body_digest

if TYPE_CHECKING:
    from consumer.sandbox.engage.http import EngageSimulator, open_engage_simulator
    from consumer.sandbox.engage.process import (
        EngageSimulatorProcess,
        open_engage_simulator_process,
    )

__all__ = [
    "Delay",
    "EngageSimulator",
    "EngageSimulatorHandle",
    "EngageSimulatorProcess",
    "Faults",
    "SimulatorSettings",
    "body_digest",
    "open_engage_simulator",
    "open_engage_simulator_process",
]

# The server stack is imported on first use, so that building the CLI parser stays cheap.
_LAZY = {
    "EngageSimulator": "consumer.sandbox.engage.http",
    "open_engage_simulator": "consumer.sandbox.engage.http",
    "EngageSimulatorProcess": "consumer.sandbox.engage.process",
    "open_engage_simulator_process": "consumer.sandbox.engage.process",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - lazy on purpose

    return getattr(importlib.import_module(module), name)
