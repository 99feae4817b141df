"""The parameters of one benchmark run: two presets (smoke, full) and the command-line overrides.

Every figure in the report names the parameters that produced it; they all come from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

#: Engage's documented rate limit per API key (429 above it).
ENGAGE_LIMIT_PER_S = 200.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Plan:
    """What to run and how big; ``smoke`` and ``full`` below, overridable from the CLI."""

    name: str
    partitions: int = 12
    #: Simulator latency added to every Engage request (a delay distribution, see Delay.parse).
    latency: str = "fixed:0.02"
    # Lifecycle workload (our consumer against the naive baseline).
    # Long enough that the ramp-down (the last orders' chains of jobs, ~6 s) is a small part of
    # the window: with 1,000 orders it cost 0.875 instead of 0.94 of the budget.
    lifecycle_orders: int = 2000
    naive_orders: int = 60
    lifecycle_job_delay: str = "uniform:0.1,2"
    lifecycle_in_flight: int = 64
    lifecycle_polls_in_flight: int = 32
    #: Our rate budget on the lifecycle workload (requests/s); the simulator's limit is above it.
    lifecycle_rate_budget: float = 1000.0
    lifecycle_sim_rate_limit: float = 1200.0
    naive_poll_interval: float = 0.5
    # Action-only workload (raw dispatch against Parallel Consumer and FastStream).
    action_keys: int = 1000
    actions: int = 8000
    action_job_delay: str = "fixed:0.01"
    #: In-flight bounds of the sweep; at 20 ms latency Little's law gives 50 x bound per second.
    in_flight_levels: tuple[int, ...] = (8, 16, 20, 40, 100)
    # Latency at half of saturation (action-only, paced producer, at the best sweep level).
    paced_seconds: float = 20.0
    # Scale-out: 1..N replicas under one API key's budget, below the simulator's limit for it.
    scaleout_orders: int = 400
    scaleout_budget: float = 100.0
    scaleout_key_limit: float = 110.0
    scaleout_replicas: tuple[int, ...] = (1, 2, 3)
    scaleout_job_delay: str = "uniform:0.1,0.5"
    #: Orders of the rebalance runs (a third replica joins, then leaves); 0: no such runs.
    scaleout_rebalance_orders: int = 200
    # Action delivery: separate against embedded on the lifecycle workload, under one budget
    # that binds both (a merchant's key at Engage's advised 50/s binds harder still).
    delivery_orders: int = 2000
    delivery_budget: float = 100.0
    #: Orders of the paced runs (latency below the budget: half of separate's throughput);
    #: 0: no paced runs.
    delivery_paced_orders: int = 500
    # Memory of idle tracked orders.
    memory_orders: int = 1_000_000
    # Bounds.
    capacity_seconds: float = 5.0
    perf_messages: int = 0
    """Records for Kafka's ConsumerPerformance (0: as many as the lifecycle topic holds)."""
    # Which parts to run.
    parts: tuple[str, ...] = (
        "memory",
        "capacity",
        "lifecycle",
        "actions",
        "scaleout",
        "delivery",
    )
    contenders: tuple[str, ...] = ("ours", "naive", "parallel", "faststream")
    #: Also run our consumer with ENGAGE_HTTP_TRANSPORT=httpx (the transport before aiohttp's).
    transport_comparison: bool = True
    profile: bool = True
    run_timeout: float = 600.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The plan as plain values (for the JSON report)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


FULL = Plan(name="full")

SMOKE = Plan(
    name="smoke",
    lifecycle_orders=30,
    naive_orders=4,
    lifecycle_job_delay="uniform:0.05,0.2",
    naive_poll_interval=0.1,
    action_keys=20,
    actions=300,
    in_flight_levels=(16,),
    paced_seconds=3.0,
    memory_orders=20_000,
    scaleout_orders=15,
    scaleout_budget=60.0,
    scaleout_key_limit=66.0,
    scaleout_replicas=(2,),
    scaleout_rebalance_orders=0,
    delivery_orders=15,
    delivery_budget=200.0,
    delivery_paced_orders=0,
    capacity_seconds=1.0,
    perf_messages=0,
    transport_comparison=False,
    profile=False,
    run_timeout=60.0,
)

PRESETS = {"full": FULL, "smoke": SMOKE}


def with_overrides(plan: Plan, **overrides: Any) -> Plan:  # noqa: ANN401
    """The plan with the given fields replaced (None values are ignored)."""
    return replace(plan, **{k: v for k, v in overrides.items() if v is not None})
