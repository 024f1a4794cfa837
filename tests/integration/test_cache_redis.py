"""FallbackCache against the stack's real Redis: shared tier, Redis killed, paused, and back."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from devstack.stack import Stack
from resilience_async import CircuitBreaker, FallbackCache
from tests.fakes import FakeClock
from tests.helpers import kill

pytestmark = pytest.mark.integration

_namespaces = itertools.count()


class CountingGuard:
    """Wraps a guard and counts the Redis calls it let through and those that timed out."""

    def __init__(self, inner: CircuitBreaker) -> None:
        self.inner = inner
        self.attempts = 0
        self.timeouts = 0

    async def call_async(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        async def counted(*call_args: Any) -> Any:
            self.attempts += 1
            try:
                return await fn(*call_args)
            except TimeoutError:
                self.timeouts += 1
                raise

        return await self.inner.call_async(counted, *args)


class Loader:
    """A load function returning `value` and counting its calls."""

    def __init__(self, value: Any = "loaded") -> None:
        self.value = value
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        return self.value


async def fail() -> str:
    raise ConnectionError("upstream down")


@pytest.fixture
async def client(healthy_stack: Stack) -> AsyncIterator[Redis]:
    redis = Redis.from_url(
        healthy_stack.env["REDIS_URL"], socket_timeout=0.25, socket_connect_timeout=0.25
    )
    try:
        yield redis
    finally:
        # A test that paused Redis may end early: resume it so the client can close.
        healthy_stack.children["redis"].resume()
        await redis.aclose()


@pytest.fixture
def namespace() -> str:
    return f"it-{time.time_ns()}-{next(_namespaces)}"


async def test_second_instance_reads_the_value_from_redis(client: Redis, namespace: str) -> None:
    """Another process (empty local tier) gets the value from Redis as cache, without loading."""
    first = FallbackCache(redis=client, namespace=namespace, redis_timeout=1.0)
    assert (await first.get("tips", Loader(["a", "b"]), ttl=30, stale_ttl=60)).source == "live"
    await first.aclose()  # the Redis write happens behind the response
    stored = json.loads(await client.get(f"{namespace}:tips"))
    assert stored["v"] == ["a", "b"]
    assert set(stored) == {"v", "t", "d"}
    assert 0 < await client.pttl(f"{namespace}:tips") <= 90_000

    second, load = FallbackCache(redis=client, namespace=namespace, redis_timeout=1.0), Loader()
    result = await second.get("tips", load, ttl=30, stale_ttl=60)
    assert (result.value, result.source, load.calls) == (["a", "b"], "cache", 0)
    assert result.age >= 0


async def test_second_instance_serves_stale_from_redis_when_load_fails(
    client: Redis, namespace: str
) -> None:
    """With ttl=0, a process that never loaded the key serves another's value as stale."""
    first = FallbackCache(redis=client, namespace=namespace, redis_timeout=1.0)
    await first.get("tips", Loader("old"), ttl=0, stale_ttl=60)
    await first.aclose()
    second = FallbackCache(redis=client, namespace=namespace, redis_timeout=1.0)
    result = await second.get("tips", fail, ttl=0, stale_ttl=60)
    assert (result.value, result.source, result.error) == (
        "old",
        "stale",
        "ConnectionError: upstream down",
    )


async def test_killed_redis_costs_nothing_but_the_local_tier(
    healthy_stack: Stack, client: Redis, namespace: str
) -> None:
    """Redis killed: hits come from the local tier, misses load, failures serve stale."""
    cache, load = FallbackCache(redis=client, namespace=namespace), Loader()
    async with asyncio.timeout(10):
        assert (await cache.get("hot", load, ttl=30, stale_ttl=60)).source == "live"
        await cache.aclose()
        kill(healthy_stack.children["redis"])
        sources = [(await cache.get("hot", load, ttl=30, stale_ttl=60)).source for _ in range(20)]
        assert sources == ["cache"] * 20
        for i in range(20):
            assert (await cache.get(f"new-{i}", load, ttl=30, stale_ttl=60)).source == "live"
        assert (await cache.get("always-live", load, ttl=0, stale_ttl=60)).source == "live"
        assert (await cache.get("always-live", fail, ttl=0, stale_ttl=60)).source == "stale"
        await cache.aclose()
    assert load.calls == 22


async def test_paused_redis_costs_one_timeout_per_guard_period(
    healthy_stack: Stack, client: Redis, namespace: str
) -> None:
    """Redis paused (SIGSTOP): 50 gets succeed and only one call per guard period waits."""
    guard_clock = FakeClock(0.0)
    guard = CountingGuard(
        CircuitBreaker(
            name=f"redis {namespace}",
            failure_threshold=1,
            failure_rate_threshold=None,
            reset_timeout=0.2,
            call_timeout=1.0,
            clock=guard_clock,
            default_hooks=False,
        )
    )  # the cache's default guard, its clock in the test's hands
    # A timeout generous enough that a busy machine never trips the guard before the pause.
    cache = FallbackCache(redis=client, namespace=namespace, redis_guard=guard, redis_timeout=0.25)
    load = Loader()
    async with asyncio.timeout(10):
        await cache.get("warm", load, ttl=30, stale_ttl=60)  # connect while Redis answers
        await cache.aclose()
        assert (guard.attempts, guard.timeouts) == (2, 0)  # the read, then the write
        kill(healthy_stack.children["redis"], signal.SIGSTOP)
        for i in range(50):
            result = await cache.get(f"k{i}", load, ttl=30, stale_ttl=60)
            assert result.source == "live"
        await cache.aclose()
        assert (guard.attempts, guard.timeouts) == (3, 1)  # one read waited; the rest skipped

        guard_clock.now += 0.2  # the next period: concurrent misses send a single probe
        many = [cache.get(f"p{i}", load, ttl=30, stale_ttl=60) for i in range(50)]
        results = await asyncio.gather(*many)
        await cache.aclose()
    assert {r.source for r in results} == {"live"}
    assert (guard.attempts, guard.timeouts) == (4, 2)
    assert load.calls == 101


async def test_cache_uses_redis_again_after_it_comes_back(
    healthy_stack: Stack, client: Redis, namespace: str
) -> None:
    """After Redis resumes, the cache reads it again once the guard period has passed."""
    cache = FallbackCache(redis=client, namespace=namespace, redis_cooldown=0.2, redis_timeout=0.25)
    redis = healthy_stack.children["redis"]
    async with asyncio.timeout(15):
        kill(redis, signal.SIGSTOP)
        assert (await cache.get("during", Loader(), ttl=30, stale_ttl=60)).source == "live"
        redis.resume()
        for attempt in itertools.count():
            payload = {"v": "from redis", "t": time.time(), "d": 0.0}
            await client.set(f"{namespace}:after-{attempt}", json.dumps(payload), px=60_000)
            result = await cache.get(f"after-{attempt}", Loader(), ttl=30, stale_ttl=60)
            if result.source == "cache":
                break
            await asyncio.sleep(0.05)  # poll: the guard's cooldown runs on the real clock
        await cache.aclose()
    assert result.value == "from redis"
