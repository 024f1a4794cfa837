"""A demo upstream of a module's own, for tests that switch its modes under their own clients.

The session stack's upstream serves the service (and the scenarios beside): a module that
parks, slows or floods answers starts one of its own, once, and each test gets it back in
`normal` mode with its counts reset. Loaded through `pytest_plugins` in `tests/conftest.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from devstack.upstream import AsyncUpstreamControl
from tests.servers import Upstream, run_upstream


@pytest.fixture(scope="module")
def own_upstream() -> Iterator[Upstream]:
    with run_upstream() as running:
        yield running


@pytest.fixture
async def upstream_control(own_upstream: Upstream) -> AsyncIterator[AsyncUpstreamControl]:
    async with AsyncUpstreamControl(own_upstream.control_url) as client:
        await client.set_mode("normal")
        await client.reset_stats()
        yield client
        await client.set_mode("normal")  # releases anything still parked


async def until_idle(control: AsyncUpstreamControl) -> dict[str, object]:
    """The upstream's stats once no request is in flight (5 s at most): an answer still
    being sent, or a late one still parked, ends only when its client closed the connection."""
    deadline = time.monotonic() + 5.0
    while (stats := await control.stats())["in_flight"] != 0:
        if time.monotonic() >= deadline:
            raise AssertionError(f"a connection was left open to the upstream: {stats}")
        await asyncio.sleep(0.01)
    return stats
