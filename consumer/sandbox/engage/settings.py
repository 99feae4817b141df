"""Settings of the Engage simulator: delay distributions, faults, and the simulator's knobs.

Values only, no I/O. The same values travel three ways: as constructor arguments (tests, demo,
benchmark), as command-line flags (``engage-consumer sandbox engage``), and as JSON through the
control endpoint ``POST /_sim/faults``; the conversions for all three live here so they cannot
drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import random

DelayKind = Literal["fixed", "uniform", "exponential"]
OutageMode = Literal["error", "drop", "refuse"]
DropWhen = Literal["before", "after"]
FailureKind = Literal["invalid", "unprocessable", "internal"]

#: HTTP status a failed job answers with, per failure kind (undocumented by Engage: our choice).
FAILURE_STATUS: dict[str, int] = {"invalid": 400, "unprocessable": 422, "internal": 500}
OUTAGE_MODES: tuple[OutageMode, ...] = ("error", "drop", "refuse")
DROP_WHEN: tuple[DropWhen, ...] = ("before", "after")

_KIND_ALIASES: dict[str, DelayKind] = {
    "fixed": "fixed",
    "uniform": "uniform",
    "exponential": "exponential",
    "exp": "exponential",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Delay:
    """A distribution of delays in seconds.

    Written as text in flags and JSON: ``0.2`` or ``fixed:0.2``; ``uniform:0.1,2`` (low, high);
    ``exponential:0.5`` (mean) or ``exponential:0.5,3`` (mean, capped at 3 s so one unlucky draw
    cannot stall a test).
    """

    kind: DelayKind = "fixed"
    a: float = 0.0
    b: float = math.inf

    def __post_init__(self) -> None:
        if not (math.isfinite(self.a) and self.a >= 0 and self.b >= self.a):
            raise ValueError(f"bad {self.kind} delay parameters: {self.a}, {self.b}")
        if self.kind == "uniform" and math.isinf(self.b):
            raise ValueError("a uniform delay needs a finite upper bound")

    @classmethod
    def fixed(cls, seconds: float) -> Delay:
        """A delay that is always ``seconds``."""
        return cls(kind="fixed", a=seconds)

    @classmethod
    def parse(cls, text: str) -> Delay:
        """Parse ``fixed:s``, a bare number, ``uniform:lo,hi`` or ``exponential:mean[,cap]``."""
        kind_text, sep, params_text = text.strip().partition(":")
        if not sep:
            kind_text, params_text = "fixed", kind_text
        kind = _KIND_ALIASES.get(kind_text.strip().lower())
        if kind is None:
            raise ValueError(f"unknown delay distribution {kind_text!r} in {text!r}")
        try:
            params = [float(part) for part in params_text.split(",")]
        except ValueError:
            raise ValueError(f"delay parameters must be numbers: {text!r}") from None
        if any(not math.isfinite(p) or p < 0 for p in params):
            raise ValueError(f"delay parameters must be finite and >= 0: {text!r}")
        if kind == "fixed" and len(params) == 1:
            return cls(kind=kind, a=params[0])
        if kind == "uniform" and len(params) == 2 and params[0] <= params[1]:
            return cls(kind=kind, a=params[0], b=params[1])
        if kind == "exponential" and len(params) in {1, 2}:
            return cls(kind=kind, a=params[0], b=params[1] if len(params) == 2 else math.inf)
        raise ValueError(
            f"bad delay {text!r}: use fixed:S, uniform:LOW,HIGH (LOW <= HIGH) or "
            "exponential:MEAN[,CAP]"
        )

    def sample(self, rng: random.Random) -> float:
        """Draw one delay in seconds."""
        if self.kind == "fixed":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.a == 0:
            return 0.0
        return min(rng.expovariate(1.0 / self.a), self.b)

    def __str__(self) -> str:
        if self.kind == "fixed":
            return f"fixed:{self.a:g}"
        if self.kind == "uniform":
            return f"uniform:{self.a:g},{self.b:g}"
        cap = "" if math.isinf(self.b) else f",{self.b:g}"
        return f"exponential:{self.a:g}{cap}"


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass(frozen=True, kw_only=True, slots=True)
class Faults:
    """Faults injected on the Engage API routes (never on the ``/_sim`` control routes).

    Each request first meets an outage (if one is running), then the added latency, then a
    dropped connection (``drop_rate``), then an error (``error_rate``). A drop ``"before"``
    processing loses the request; ``"after"`` processes it and loses only the answer, which is
    how a client ends up not knowing whether its action was accepted.
    """

    error_rate: float = 0.0
    error_status: int = 503
    latency: Delay | None = None
    drop_rate: float = 0.0
    drop_when: DropWhen = "before"
    #: Length of a timed outage that starts when these faults are applied (0 = none).
    outage_seconds: float = 0.0
    #: ``error``: every request gets ``error_status``; ``drop``: every connection is closed
    #: without an answer; ``refuse``: the listening socket is closed, so connections are refused.
    outage_mode: OutageMode = "error"

    def __post_init__(self) -> None:
        _check_rate("error_rate", self.error_rate)
        _check_rate("drop_rate", self.drop_rate)
        if not 500 <= self.error_status <= 599:
            raise ValueError(f"error_status must be a 5xx status, got {self.error_status}")
        if self.outage_seconds < 0 or not math.isfinite(self.outage_seconds):
            raise ValueError(f"outage_seconds must be >= 0, got {self.outage_seconds}")
        if self.outage_mode not in OUTAGE_MODES:
            raise ValueError(f"outage_mode must be one of {OUTAGE_MODES}")
        if self.drop_when not in DROP_WHEN:
            raise ValueError(f"drop_when must be one of {DROP_WHEN}")

    def to_json(self) -> dict[str, Any]:
        """The JSON form accepted by ``POST /_sim/faults`` (camelCase keys)."""
        return {
            "errorRate": self.error_rate,
            "errorStatus": self.error_status,
            "latency": None if self.latency is None else str(self.latency),
            "dropRate": self.drop_rate,
            "dropWhen": self.drop_when,
            "outageSeconds": self.outage_seconds,
            "outageMode": self.outage_mode,
        }

    @classmethod
    def from_json(cls, data: object) -> Faults:
        """Build faults from JSON; missing keys mean "off". Raises ``ValueError`` when malformed."""
        if not isinstance(data, dict):
            raise ValueError("faults must be a JSON object")  # noqa: TRY004 - a 400 to the caller
        known = {
            "errorRate": "error_rate",
            "errorStatus": "error_status",
            "latency": "latency",
            "dropRate": "drop_rate",
            "dropWhen": "drop_when",
            "outageSeconds": "outage_seconds",
            "outageMode": "outage_mode",
        }
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(unknown)}")
        values: dict[str, Any] = {known[key]: value for key, value in data.items()}
        latency = values.get("latency")
        if latency is not None:
            if not isinstance(latency, str | int | float) or isinstance(latency, bool):
                raise ValueError("latency must be a delay like 'uniform:0.1,0.5'")
            values["latency"] = Delay.parse(str(latency))
        for name in ("error_rate", "drop_rate", "outage_seconds"):
            if name in values and not _is_number(values[name]):
                raise ValueError(f"{name} must be a number")
        if "error_status" in values and not isinstance(values["error_status"], int):
            raise ValueError("errorStatus must be an integer")
        return cls(**values)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True, slots=True)
class SimulatorSettings:
    """Everything the simulator can be told at start; every field has a test-friendly default."""

    #: Accepted ``apikey`` values; the rate limit is kept per key.
    api_keys: tuple[str, ...] = ("engage-sim-key",)
    job_delay: Delay = field(default_factory=lambda: Delay.parse("uniform:0.05,0.3"))
    #: Fraction of write jobs that fail; the kind of failure is drawn from ``job_failure_kinds``.
    job_failure_rate: float = 0.0
    job_failure_kinds: tuple[FailureKind, ...] = ("invalid", "unprocessable", "internal")
    #: Requests per second per API key before 429 (None: no limit). Engage: 429 above 200/s.
    rate_limit: float | None = 200.0
    #: Token-bucket size: how many requests may arrive at once (default: one second's worth).
    rate_burst: int | None = None
    #: Seconds sent in ``Retry-After`` on a 429 (None: no header, as Engage may do).
    retry_after: int | None = 1
    faults: Faults = field(default_factory=Faults)
    #: Engage documents Content-Type as required on every request; by default the simulator
    #: demands it only where a body is sent (POST, PUT); True demands it on GET and DELETE too.
    strict_content_type: bool = False
    #: Refuse (404) an action while a write of its order is still queued or processing. Engage
    #: itself would accept the old tag there; this makes gating mistakes visible in tests.
    refuse_actions_while_writing: bool = False
    #: The journal keeps at most this many entries (oldest dropped first, counted in stats).
    journal_limit: int = 1_000_000
    #: Finished jobs remembered for polling; older ones answer 404 like an unknown job.
    job_retention: int = 1_000_000
    #: Seed of the random draws (delays, failures, tags, job ids) for reproducible runs.
    seed: int | None = None
    #: Keep the last N API requests as (seconds since start, client address, route, status),
    #: for tests that must tell which client sent what (``GET /_sim/requests``); 0: keep none.
    request_log: int = 0
    #: The order-body field of POST and PUT that carries an embedded order action (Engage names
    #: it only in each tenant's Swagger: our reading, see engage_actions).
    embedded_action_field: str = "orderAction"

    def __post_init__(self) -> None:
        if not self.api_keys or any(not key for key in self.api_keys):
            raise ValueError("api_keys must name at least one non-empty key")
        _check_rate("job_failure_rate", self.job_failure_rate)
        if not self.job_failure_kinds or any(
            kind not in FAILURE_STATUS for kind in self.job_failure_kinds
        ):
            raise ValueError(f"job_failure_kinds must be drawn from {sorted(FAILURE_STATUS)}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be > 0 (or None for no limit)")
        if self.rate_burst is not None and self.rate_burst < 1:
            raise ValueError("rate_burst must be >= 1")
        if self.retry_after is not None and self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.journal_limit < 1 or self.job_retention < 1:
            raise ValueError("journal_limit and job_retention must be >= 1")
        if self.request_log < 0:
            raise ValueError("request_log must be >= 0")
        if not self.embedded_action_field or self.embedded_action_field in {
            "orderId",
            "versionTag",
        }:
            raise ValueError(
                "embedded_action_field must be a non-empty name, not orderId or versionTag"
            )

    @property
    def api_key(self) -> str:
        """The first API key: the one clients use unless a test needs several."""
        return self.api_keys[0]


def settings_to_argv(settings: SimulatorSettings) -> list[str]:
    """The ``sandbox engage`` flags that make a separate process run with ``settings``."""
    argv: list[str] = []
    for key in settings.api_keys:
        argv += ["--api-key", key]
    argv += ["--job-delay", str(settings.job_delay)]
    argv += ["--job-failure-rate", repr(settings.job_failure_rate)]
    argv += ["--job-failure-kinds", ",".join(settings.job_failure_kinds)]
    argv += ["--rate-limit", "0" if settings.rate_limit is None else repr(settings.rate_limit)]
    if settings.rate_burst is not None:
        argv += ["--rate-burst", str(settings.rate_burst)]
    argv += ["--retry-after", "none" if settings.retry_after is None else str(settings.retry_after)]
    faults = settings.faults
    argv += ["--error-rate", repr(faults.error_rate), "--error-status", str(faults.error_status)]
    if faults.latency is not None:
        argv += ["--latency", str(faults.latency)]
    argv += ["--drop-rate", repr(faults.drop_rate), "--drop-when", faults.drop_when]
    argv += ["--outage", repr(faults.outage_seconds), "--outage-mode", faults.outage_mode]
    if settings.strict_content_type:
        argv.append("--strict-content-type")
    if settings.refuse_actions_while_writing:
        argv.append("--refuse-actions-while-writing")
    argv += ["--journal-limit", str(settings.journal_limit)]
    argv += ["--job-retention", str(settings.job_retention)]
    if settings.seed is not None:
        argv += ["--seed", str(settings.seed)]
    argv += ["--request-log", str(settings.request_log)]
    argv += ["--embedded-action-field", settings.embedded_action_field]
    return argv


def setting_names() -> list[str]:
    """Names of every settings field (used by tests to prove the flags cover them all)."""
    return [f.name for f in fields(SimulatorSettings)]
