"""The sandbox's own errors: a local stand-in (broker, simulator, helm) could not do its job.

Kept apart from ``consumer.errors``: the running service never raises or catches these, and the
sandbox never raises the service's. Imports nothing of the consumer.

    SandboxError            a local stand-in failed to start, stop or answer
    └── MissingToolError    Java 17+, Maven, Go or a dev-only package is missing; says how to get it
"""

from __future__ import annotations


class SandboxError(Exception):
    """A local stand-in (Kafka broker, Engage simulator, helm) failed to start or stop."""


class MissingToolError(SandboxError):
    """A program a local stand-in needs (Java 17+, Maven or Go) is missing; the message says how."""
