"""Shared pytest setup: the asyncio backend for anyio, and the session fixtures for real parts."""

import pytest

# Each real part lives in its own fixture module so its owner can change it alone.
pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.engage"]


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run every async test on asyncio: aiokafka is asyncio-only."""
    return "asyncio"
