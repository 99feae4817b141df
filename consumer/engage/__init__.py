"""The Engage Orders v3 client: one call per HTTP method, every answer classified.

``client`` speaks the calls; ``types`` holds its settings and results; ``seams`` the Protocols
the service plugs in (its gate, its observer, its retry policy); ``classify`` turns answers into
the error classes of ``consumer.errors``; ``transport`` is the HTTP transport; ``wire`` holds
Engage's undocumented and beta wire details, one function each.

Imports nothing of the consumer outside this folder but ``errors``, ``config`` and ``polling``;
never the service, Kafka or the order book.
"""

from consumer.engage.classify import parse_retry_after
from consumer.engage.client import EngageClient, open_engage_client
from consumer.engage.embedded import EmbeddedRider
from consumer.engage.seams import (
    BeforeSend,
    OpenGate,
    RequestGate,
    RequestObserver,
    SendGuard,
    StepRunner,
    run_once,
)
from consumer.engage.types import (
    ActionResult,
    CallKind,
    EmbeddedReport,
    EngageClientSettings,
    JobRef,
    JobResult,
    Meter,
    OrderState,
    WriteConfirmation,
    WriteMethod,
)
from consumer.engage.wire import (
    EMBEDDED_ACTION_FIELD,
    NO_CONTACT_CODES,
    EmbeddedResult,
    action_rejection_reason,
    embedded_action,
)

__all__ = [
    "EMBEDDED_ACTION_FIELD",
    "NO_CONTACT_CODES",
    "ActionResult",
    "BeforeSend",
    "CallKind",
    "EmbeddedReport",
    "EmbeddedResult",
    "EmbeddedRider",
    "EngageClient",
    "EngageClientSettings",
    "JobRef",
    "JobResult",
    "Meter",
    "OpenGate",
    "OrderState",
    "RequestGate",
    "RequestObserver",
    "SendGuard",
    "StepRunner",
    "WriteConfirmation",
    "WriteMethod",
    "action_rejection_reason",
    "embedded_action",
    "open_engage_client",
    "parse_retry_after",
    "run_once",
]
