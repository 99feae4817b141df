"""The running consumer: the pipeline from record to outcome, its calls, commits and loops.

``runner`` wires Kafka, the order book and the dispatcher together and runs the loops;
``pipeline`` takes records in and carries out the book's effects; ``calls`` schedules Engage
calls onto a bounded number of places and ``call_runner`` carries each out; ``fence`` keeps
requests of partitions this member may no longer own from going; ``publisher`` writes
outcomes and dead letters;
``commits`` commits offsets and makes action intents durable; ``gate`` is what every Engage
request waits for (a rate token, an in-flight place); ``dispatch`` runs one Engage
operation under the gate, the rate budget and retries; ``pending`` holds the values one event
carries through, ``seams`` the Protocols the parts meet at; ``wiring`` derives each part's
small settings from the one ``Settings``.

The one place that knows every other part; nothing outside imports from here but the commands.
"""

from consumer.service.dispatch import (
    Dispatcher,
    DispatchResult,
    DispatchSettings,
    open_dispatcher,
)
from consumer.service.gate import CallGate
from consumer.service.pipeline import PipelineSettings
from consumer.service.runner import Service, serve
from consumer.service.wiring import (
    consumer_settings,
    dispatch_settings,
    engage_client_settings,
    kafka_connection,
    pipeline_settings,
)

__all__ = [
    "CallGate",
    "DispatchResult",
    "DispatchSettings",
    "Dispatcher",
    "PipelineSettings",
    "Service",
    "consumer_settings",
    "dispatch_settings",
    "engage_client_settings",
    "kafka_connection",
    "open_dispatcher",
    "pipeline_settings",
    "serve",
]
