"""RateLimiter against the stack's real Redis: one budget for every process, atomic under
concurrency, one round trip a call, and decided in process when Redis is killed or paused.

Each "process" is a limiter with a Redis client of its own, as two workers would have.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from devstack.stack import Stack
from resilience_async import CircuitBreaker, RateLimitDecision, RateLimiter, RateLimitPolicy
from resilience_async.prometheus import Instruments, instrument
from tests.fakes import FakeClock
from tests.helpers import kill

pytestmark = pytest.mark.integration

REDIS_TIMEOUT = 0.25  # generous: a busy machine must never time out a healthy Redis
HOUR = 3600  # windows long enough that nothing refills while a test runs
FALLBACK_WARNING = "redis unavailable; rate limits decided in each process"


@pytest.fixture
async def clients(healthy_stack: Stack) -> AsyncIterator[list[Redis]]:
    """Two clients of the stack's Redis, one per simulated process."""
    url = healthy_stack.env["REDIS_URL"]
    pair = [Redis.from_url(url), Redis.from_url(url)]
    try:
        yield pair
    finally:
        healthy_stack.children["redis"].resume()  # a test that paused it may end early
        for client in pair:
            await client.aclose()


@pytest.fixture
def namespace() -> str:
    return f"rl-{uuid.uuid4().hex[:8]}"


def guard(clock: FakeClock) -> CircuitBreaker:
    """The limiter's default guard, its clock in the test's hands."""
    return CircuitBreaker(
        name="redis guard", failure_threshold=1, failure_rate_threshold=None,
        reset_timeout=1.0, clock=clock, default_hooks=False,
    )  # fmt: skip


def limiter(client: Redis, namespace: str, **options: Any) -> RateLimiter:
    settings = {"redis_timeout": REDIS_TIMEOUT} | options
    return RateLimiter(redis=client, namespace=namespace, **settings)


class HeldGuard:
    """A real breaker whose first call waits until the test lets it go: a round trip held
    in flight for as long as the test likes."""

    def __init__(self, inner: CircuitBreaker) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def call_async(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if not self.entered.is_set():
            self.entered.set()
            await self.release.wait()
        return await self.inner.call_async(fn, *args)


async def acquire_all(
    limiters: list[RateLimiter], key: str, policy: RateLimitPolicy, calls: int
) -> list[RateLimitDecision]:
    """`calls` acquires at once, spread over the limiters."""
    many = [limiters[i % len(limiters)].acquire(key, policy) for i in range(calls)]
    return list(await asyncio.gather(*many))


async def command_counts(client: Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


async def test_two_processes_draw_on_one_budget(clients: list[Redis], namespace: str) -> None:
    """Ten tokens between two limiters: alternating calls see one count, down to refusal."""
    one, other = (limiter(client, namespace) for client in clients)
    policy = RateLimitPolicy("key", limit=10, window=HOUR)
    decisions = [await (one, other)[i % 2].acquire("key:7", policy) for i in range(12)]
    assert [d.remaining for d in decisions] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0]
    assert [d.allowed for d in decisions] == [True] * 10 + [False] * 2
    assert {d.shared for d in decisions} == {True}
    assert 359 < decisions[-1].retry_after <= 360  # one interval of 360 s, less time passed
    assert (await one.acquire("key:8", policy)).remaining == 9  # another key, its own bucket


async def test_concurrent_calls_take_exactly_the_capacity(
    clients: list[Redis], namespace: str
) -> None:
    """300 calls at once from two processes on a bucket of 50: exactly 50 pass, though each
    process has more calls at once than its client's pool has connections (100)."""
    # A timeout no queue reaches on a busy machine: every call is decided in Redis.
    limiters = [limiter(client, namespace, redis_timeout=5.0) for client in clients]
    policy = RateLimitPolicy("burst", limit=50, window=HOUR)
    decisions = await acquire_all(limiters, "addr:10.0.0.1", policy, 300)
    assert sum(d.allowed for d in decisions) == 50
    assert {d.shared for d in decisions} == {True}
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))


async def test_a_call_whose_turn_does_not_come_is_decided_in_process(
    clients: list[Redis], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One round trip at a time, held: the next call waits its turn for the timeout, then is
    decided locally, without blaming Redis (no fallback, no warning, the guard untouched)."""
    caplog.set_level(logging.WARNING, logger="resilience_async.ratelimit")
    held = HeldGuard(guard(FakeClock()))
    limits = limiter(clients[0], namespace, redis_guard=held, redis_max_in_flight=1)
    policy = RateLimitPolicy("p", limit=10, window=HOUR)
    first = asyncio.create_task(limits.acquire("k", policy))
    await held.entered.wait()
    queued = await limits.acquire("k", policy)
    assert (queued.allowed, queued.shared, queued.remaining) == (True, False, 9)
    held.release.set()
    assert (await first).shared
    assert (await limits.acquire("k", policy)).remaining == 8  # Redis's count went on
    assert not limits.fallback
    assert held.inner.stats()["calls_failure"] == 0
    assert caplog.records == []


async def test_a_bucket_key_expires_when_the_bucket_would_be_full(
    clients: list[Redis], namespace: str
) -> None:
    """One token of four taken from a 4-per-2 s bucket: the key lives half a second."""
    client = clients[0]
    async with limiter(client, namespace) as limits:
        policy = RateLimitPolicy("short", limit=4, window=2)
        first = await limits.acquire("k", policy)
        ttl_one = await client.pttl(f"{namespace}:short:k")
        for _ in range(3):
            last = await limits.acquire("k", policy)
        ttl_all = await client.pttl(f"{namespace}:short:k")
    assert 0 < ttl_one <= 500
    assert first.reset_after <= 0.5
    assert 1500 < ttl_all <= 2000
    assert last.reset_after <= 2.0


async def test_an_acquire_is_one_round_trip(clients: list[Redis], namespace: str) -> None:
    """Entering loads the script: then 100 acquires, the first included, are 100 EVALSHA
    and nothing else sent (Redis counts the commands its scripts run too: a TIME, a GET and
    a SET each)."""
    client, observer = clients
    await observer.script_flush()
    await client.ping()  # connected: redis-py's handshake is not the limiter's
    async with limiter(client, namespace) as limits:
        before = await command_counts(observer)
        for _ in range(100):
            await limits.acquire("k", RateLimitPolicy("p", limit=1000, window=HOUR))
        after = await command_counts(observer)
    made = {name: after[name] - before.get(name, 0) for name in after} | {"info": 0}
    assert {name: n for name, n in made.items() if n} == {
        "evalsha": 100, "time": 100, "get": 100, "set": 100,
    }  # fmt: skip


async def test_a_flushed_script_is_sent_again_within_the_same_call(
    clients: list[Redis], namespace: str
) -> None:
    """After SCRIPT FLUSH (as after a restart) the call still decides in Redis: NOSCRIPT,
    then EVAL, which loads it again for the calls after."""
    client, observer = clients
    policy = RateLimitPolicy("p", limit=10, window=HOUR)
    async with limiter(client, namespace) as limits:
        await limits.acquire("k", policy)
        await observer.script_flush()
        before = await command_counts(observer)
        flushed = await limits.acquire("k", policy)
        again = await limits.acquire("k", policy)
        after = await command_counts(observer)
    assert (flushed.shared, flushed.remaining, again.shared, again.remaining) == (True, 8, True, 7)
    assert after["eval"] - before.get("eval", 0) == 1
    assert after["evalsha"] - before["evalsha"] == 2  # the refused one, and the next call


@pytest.mark.parametrize("garbage", ["not a number", "nan", "inf", "-inf", "1e400"])
async def test_garbage_in_a_bucket_is_a_full_bucket(
    clients: list[Redis], namespace: str, garbage: str
) -> None:
    """Whatever another program stored, the bucket reads as full and is overwritten."""
    client = clients[0]
    await client.set(f"{namespace}:p:k", garbage)
    decision = await limiter(client, namespace).acquire("k", RateLimitPolicy("p", 5, HOUR))
    assert (decision.allowed, decision.remaining, decision.shared) == (True, 4, True)
    assert int(await client.get(f"{namespace}:p:k")) > 0


async def test_a_key_of_another_type_is_a_full_bucket(clients: list[Redis], namespace: str) -> None:
    """A hash where the bucket should be: no WRONGTYPE error trips the guard."""
    client = clients[0]
    await client.hset(f"{namespace}:p:k", "field", "value")
    limits = limiter(client, namespace)
    decision = await limits.acquire("k", RateLimitPolicy("p", 5, HOUR))
    assert (decision.allowed, decision.remaining, decision.shared) == (True, 4, True)
    assert not limits.fallback


async def test_killed_redis_falls_back_fails_open_and_warns_once(
    healthy_stack: Stack, clients: list[Redis], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed: calls are decided in process without an error (a budget spent in Redis
    is whole again here), the fallback is counted and logged once, and once Redis is back
    (and the guard lets a probe through) the calls are shared again."""
    caplog.set_level(logging.INFO, logger="resilience_async.ratelimit")
    registry, clock = CollectorRegistry(), FakeClock()
    limits = limiter(clients[0], namespace, redis_guard=guard(clock))
    instrument(limits, instruments=Instruments(registry))
    policy = RateLimitPolicy("key", limit=3, window=HOUR)
    assert sum(d.allowed for d in await acquire_all([limits], "k", policy, 4)) == 3

    kill(healthy_stack.children["redis"])
    local = await acquire_all([limits], "k", policy, 5)  # at once: one trip, the rest refused
    clock.advance(1.0)  # the guard's probe fails too, with no second warning
    local += await acquire_all([limits], "k", policy, 5)
    assert sum(d.allowed for d in local) == 3  # this process's own bucket, full
    assert {d.shared for d in local} == {False}
    assert limits.fallback
    assert registry.get_sample_value("rate_limit_fallback", {"limiter": namespace}) == 1
    refused = {"limiter": namespace, "policy": "key", "decision": "refused", "store": "local"}
    assert registry.get_sample_value("rate_limit_decisions_total", refused) == 7
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "redis unavailable; rate limits decided in each process, with its full budget"
    ]

    healthy_stack.heal()  # restarted empty: no persistence
    clock.advance(1.0)
    back = await limits.acquire("k", policy)
    assert (back.shared, back.allowed, back.remaining) == (True, True, 2)
    assert not limits.fallback
    assert registry.get_sample_value("rate_limit_fallback", {"limiter": namespace}) == 0
    assert "redis available again; rate limits shared" in caplog.messages
    assert limits.stats()["local"] == 10


async def test_paused_redis_costs_one_timeout_then_nothing(
    healthy_stack: Stack, clients: list[Redis], namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis paused (SIGSTOP): of 200 calls one waits out the timeout, the rest skip Redis;
    none raises; once Redis resumes and the guard's period is over, calls are shared again."""
    caplog.set_level(logging.WARNING, logger="resilience_async.ratelimit")
    clock = FakeClock()
    breaker = guard(clock)
    policy = RateLimitPolicy("addr", limit=1000, window=HOUR)
    async with limiter(clients[0], namespace, redis_guard=breaker) as limits:
        assert (await limits.acquire("a", policy)).shared  # connected while Redis answers
        kill(healthy_stack.children["redis"], signal.SIGSTOP)
        async with asyncio.timeout(REDIS_TIMEOUT * 8):  # 200 timeouts would be 50 s
            decisions = [await limits.acquire("a", policy) for _ in range(100)]
            decisions += await acquire_all([limits], "a", policy, 100)
        assert {(d.allowed, d.shared) for d in decisions} == {(True, False)}
        stats = breaker.stats()
        assert (stats["calls_success"], stats["calls_failure"]) == (1, 1)  # one timeout
        assert stats["calls_rejected"] == 199
        assert caplog.text.count(FALLBACK_WARNING) == 1

        healthy_stack.children["redis"].resume()
        clock.advance(1.0)
        back = await limits.acquire("a", policy)
    # The shared budget as it was left, less the timed-out call's token if Redis ran it
    # after it woke up (its command had been sent): a timeout is no proof of nothing done.
    assert back.shared
    assert back.remaining in {997, 998}
    assert not limits.fallback
