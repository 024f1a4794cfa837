"""One lifecycle: every resource opens on the running loop when entered (`async with`), and
closes with `aclose()`; built, none has opened anything."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from resilience_async import (
    AiohttpTransport,
    CircuitBreaker,
    Database,
    FallbackCache,
    Monitor,
    RateLimiter,
    RedisBreakerState,
    ResilientClient,
)
from tests.fakes import FakeRedis


class ClosedPool:
    """The part of psycopg_pool's pool `Database` opens and closes (its `pool_class` seam)."""

    def __init__(self, conninfo: str, *, name: str, timeout: float, **options: Any) -> None:
        self.name = name
        self.timeout = timeout
        self.closed = True

    async def open(self, wait: bool = False) -> None:
        self.closed = False

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - psycopg_pool's
        self.closed = True


# Refused at once: an open monitor samples it for real, and no database is reached.
NOWHERE = "postgresql://127.0.0.1:1/app?connect_timeout=1"

# Each case: a resource, built, and what says it is open now (on the loop).
Case = tuple[Any, Callable[[], bool]]


def breaker() -> Case:
    shared = RedisBreakerState(FakeRedis(), poll_interval=0.01)
    built = CircuitBreaker(name="tips", shared=shared, default_hooks=False)
    return built, lambda: bool(shared._links)  # its key polled, through the shared state


def breaker_state() -> Case:
    shared = RedisBreakerState(FakeRedis(), poll_interval=0.01)
    return shared, lambda: True  # opens nothing of its own: the client is the caller's


def cache() -> Case:
    built = FallbackCache(redis=None)
    return built, lambda: True  # opens nothing: loads start with the calls that need them


def rate_limiter() -> Case:
    built = RateLimiter(redis=None)
    return built, lambda: True  # loads its script into Redis, if any; nothing runs after


def database() -> Case:
    built = Database(
        primary_url=NOWHERE,
        replica_urls=[NOWHERE],
        pool_class=ClosedPool,  # type: ignore[arg-type]
    )
    pools = (built.primary, *built.replicas)
    return built, lambda: not any(pool.closed for pool in pools) and monitor_running(built.monitor)


def monitor() -> Case:
    built = Monitor(NOWHERE, [])
    return built, lambda: monitor_running(built)


def monitor_running(monitor: Monitor) -> bool:
    return monitor._task is not None and not monitor._task.done()


def client() -> Case:
    transport = AiohttpTransport()
    built = ResilientClient("tips", "http://tips.invalid", transport=transport)
    return built, lambda: session_open(transport)  # httpx's client opens its transport


def transport() -> Case:
    built = AiohttpTransport()
    return built, lambda: session_open(built)


def session_open(transport: AiohttpTransport) -> bool:
    return transport._session is not None and not transport._session.closed


@pytest.mark.parametrize(
    "case",
    [breaker, breaker_state, cache, rate_limiter, database, monitor, client, transport],
    ids=lambda case: case.__name__,
)
async def test_a_resource_opens_when_entered_and_closes_with_aclose(
    case: Callable[[], Case],
) -> None:
    resource, is_open = case()
    async with resource as entered:
        assert entered is resource
        assert is_open()
    reopened, is_open = case()
    await reopened.__aenter__()
    await reopened.aclose()
    if case not in (breaker_state, cache, rate_limiter):  # those have nothing to close
        assert not is_open()


@pytest.mark.parametrize("case", [database, monitor, client, transport])
def test_building_a_resource_opens_nothing(case: Callable[[], Case]) -> None:
    """No loop runs here: a constructor that started a task or a pool would fail."""
    _, is_open = case()
    assert not is_open()


async def test_closing_the_shared_state_stops_every_breaker_sharing_through_it() -> None:
    redis = FakeRedis()
    shared = RedisBreakerState(redis, poll_interval=0.01)
    one = CircuitBreaker(name="one", shared=shared, default_hooks=False)
    other = CircuitBreaker(name="other", shared=shared, default_hooks=False)
    async with one, other:
        await redis.until(lambda: True)  # they poll
        await shared.aclose()
        assert shared._links == set()
        await asyncio.sleep(0.05)
        written = dict(redis.data)
        one.open()  # no longer published: nobody polls or writes
        await asyncio.sleep(0.05)
        assert redis.data == written


def test_nothing_opens_or_closes_them_but_async_with_and_aclose() -> None:
    """The old spellings are gone; aiobreaker's open/close (trip, reset) are not lifecycle."""
    assert not hasattr(Database, "open")
    assert not hasattr(Database, "close")
    for kind in (CircuitBreaker, RedisBreakerState, Monitor):
        assert not hasattr(kind, "start"), kind
