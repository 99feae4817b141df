"""W3C trace context as this service reads it from an input record and writes it onward.

An input event may carry its producer's trace context in two places: the Kafka record's
``traceparent``/``tracestate`` headers (what an OpenTelemetry-instrumented producer or any hop
in between sets) and the CloudEvents distributed-tracing extension, the ``traceparent`` and
``tracestate`` attributes of the event envelope (set when the event was created). The header
is the latest hop, so it is the parent; an envelope context of another trace becomes a link
(``InboundContext.creation``), as the CloudEvents semantic conventions suggest.

Parsing follows the W3C Trace Context recommendation (level 1): a version-00 ``traceparent``
is exactly 55 characters of lower-case hex; a later version is read by its first four fields;
all-zero ids and version ``ff`` are invalid. A ``tracestate`` that breaks the list rules (more
than 32 members, longer than 512 characters, a malformed member) is dropped, not the
``traceparent``. Whatever is invalid is ignored: bad trace context never makes an event invalid.

Pure: no I/O and no OpenTelemetry import, so the hot path of an untraced service costs a scan
of the record's headers and a substring test of its value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import orjson

if TYPE_CHECKING:
    from collections.abc import Sequence

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

_PARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
# One list member: a key (simple or tenant@system) and a value of printable ASCII, no , or =.
_MEMBER = re.compile(
    r"(?:[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
_STATE_MAX_CHARS: Final = 512
_STATE_MAX_MEMBERS: Final = 32
# The envelope is parsed a second time only when this appears in the value at all.
_ENVELOPE_MARK: Final = b'"traceparent"'


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceContext:
    """One valid W3C trace context: ids as integers, flags, and the ``tracestate`` text."""

    trace_id: int
    span_id: int
    flags: int
    state: str | None = None

    @property
    def sampled(self) -> bool:
        """Whether the caller recorded its span (the ``sampled`` flag)."""
        return bool(self.flags & 0x01)

    def traceparent(self) -> str:
        """The version-00 ``traceparent`` header for this context."""
        return format_traceparent(self.trace_id, self.span_id, self.flags)


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundContext:
    """The trace context an input record brought: its parent and, if different, its creation."""

    parent: TraceContext
    #: the envelope's context when it names another span than the header: a link, not a parent
    creation: TraceContext | None = None


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    """``00-<trace id>-<span id>-<flags>`` in lower-case hex."""
    return f"00-{trace_id:032x}-{span_id:016x}-{flags & 0xFF:02x}"


def parse_traceparent(value: str | bytes, state: str | bytes | None = None) -> TraceContext | None:
    """The context in a ``traceparent`` (and ``tracestate``) value; None when it is invalid."""
    text = _text(value)
    if text is None:
        return None
    text = text.strip(" \t")
    match = _PARENT.fullmatch(text)
    if match is None:
        return None
    version, trace_hex, span_hex, flags_hex, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == 0 or span_id == 0:
        return None
    return TraceContext(
        trace_id=trace_id,
        span_id=span_id,
        flags=int(flags_hex, 16),
        state=parse_tracestate(state) if state is not None else None,
    )


def parse_tracestate(value: str | bytes) -> str | None:
    """The ``tracestate`` list, normalised (blank members dropped); None when it is invalid."""
    text = _text(value)
    if text is None or len(text) > _STATE_MAX_CHARS:
        return None
    members = [member.strip(" \t") for member in text.split(",")]
    members = [member for member in members if member]
    if not members or len(members) > _STATE_MAX_MEMBERS:
        return None
    keys: set[str] = set()
    for member in members:
        if _MEMBER.fullmatch(member) is None:
            return None
        key = member.partition("=")[0]
        if key in keys:
            return None
        keys.add(key)
    return ",".join(members)


def from_headers(headers: Sequence[tuple[str, bytes]]) -> TraceContext | None:
    """The context in Kafka record headers (the first ``traceparent``); None without one."""
    parent: bytes | None = None
    state: bytes | None = None
    for key, value in headers:
        # Header names are case-sensitive in Kafka; W3C names are lower case, HTTP's are not.
        name = key.lower()
        if name == TRACEPARENT:
            if parent is None:
                parent = value
        elif name == TRACESTATE and state is None:
            state = value
    if parent is None:
        return None
    return parse_traceparent(parent, state)


def from_envelope(value: bytes | None) -> TraceContext | None:
    """The CloudEvents distributed-tracing extension of a structured JSON event, if any."""
    if not value or _ENVELOPE_MARK not in value:
        return None
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict):
        return None
    parent = document.get(TRACEPARENT)
    state = document.get(TRACESTATE)
    if not isinstance(parent, str):
        return None
    return parse_traceparent(parent, state if isinstance(state, str) else None)


def inbound_context(
    headers: Sequence[tuple[str, bytes]], value: bytes | None
) -> InboundContext | None:
    """What a record carries: the header's context as parent, else the envelope's.

    When both are present and name different spans, the envelope's (where the event was
    created) is kept as ``creation``, for a span link.
    """
    header = from_headers(headers) if headers else None
    envelope = from_envelope(value)
    if header is None:
        return InboundContext(parent=envelope) if envelope is not None else None
    if envelope is None or (envelope.trace_id, envelope.span_id) == (
        header.trace_id,
        header.span_id,
    ):
        return InboundContext(parent=header)
    return InboundContext(parent=header, creation=envelope)


def _text(value: str | bytes) -> str | None:
    if isinstance(value, str):
        return value
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None
