"""Breakers of two processes share their open periods through the stack's real Redis.

Each "process" is a breaker with its own Redis client, as two workers would have. Faults are
made for real: Redis killed (SIGKILL) or paused (SIGSTOP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiobreaker import CircuitBreakerState
from redis.asyncio import Redis

from devstack.stack import Stack
from resilience_async import CircuitBreaker, CircuitOpenError, RedisBreakerState
from tests.helpers import kill

pytestmark = pytest.mark.integration

OPEN = CircuitBreakerState.OPEN
CLOSED = CircuitBreakerState.CLOSED
POLL_INTERVAL = 0.1
REDIS_TIMEOUT = 1.0  # per command; calls must never come anywhere near it
UNREACHABLE = "shared breaker state unavailable; keeping local state"


class Boom(Exception):
    pass


async def ok() -> str:
    return "ok"


async def boom() -> None:
    raise Boom


async def eventually(condition: Callable[[], Any], within: float = 5.0) -> None:
    """Poll `condition` until it holds; what it waits on is another task talking to Redis."""
    async with asyncio.timeout(within):
        while not await _holds(condition):  # noqa: ASYNC110 - no event to await: Redis state
            await asyncio.sleep(POLL_INTERVAL / 4)


async def _holds(condition: Callable[[], Any]) -> bool:
    result = condition()
    return bool(await result) if asyncio.iscoroutine(result) else bool(result)


@pytest.fixture
async def clients(healthy_stack: Stack) -> AsyncIterator[list[Redis]]:
    """Two clients of the stack's Redis, one per simulated process, without socket timeouts."""
    url = healthy_stack.env["REDIS_URL"]
    pair = [Redis.from_url(url), Redis.from_url(url)]
    try:
        yield pair
    finally:
        healthy_stack.children["redis"].resume()
        for client in pair:
            await client.aclose()


@contextlib.asynccontextmanager
async def twins(clients: list[Redis], **settings: Any) -> AsyncIterator[list[CircuitBreaker]]:
    """The same breaker in two simulated processes, started (sharing) and closed afterwards."""
    name = f"shared-{uuid.uuid4().hex[:8]}"
    breakers = [
        CircuitBreaker(
            name=name,
            shared=RedisBreakerState(client, poll_interval=POLL_INTERVAL, timeout=REDIS_TIMEOUT),
            default_hooks=False,
            **settings,
        )
        for client in clients
    ]
    async with breakers[0], breakers[1]:
        yield breakers


async def calls_keep_working(one: CircuitBreaker, other: CircuitBreaker, calls: int) -> None:
    """`one` trips on its own failures and refuses; `other` keeps serving: all locally."""
    for _ in range(3):
        with pytest.raises(Boom):
            await one.call_async(boom)
    assert one.current_state is OPEN
    for _ in range(calls):
        with pytest.raises(CircuitOpenError):
            await one.call_async(ok)
        assert await other.call_async(ok) == "ok"


async def test_opening_one_opens_the_other(clients: list[Redis]) -> None:
    """A breaker tripped in one process opens its twin in the other within a poll or two."""
    async with twins(clients, failure_threshold=3, reset_timeout=30) as (one, other):
        for _ in range(3):
            with pytest.raises(Boom):
                await one.call_async(boom)
        await eventually(lambda: other.current_state is OPEN, within=10 * POLL_INTERVAL)
        assert 25 < other.retry_after <= 30
        with pytest.raises(CircuitOpenError):
            await other.call_async(ok)
        assert await clients[0].pttl(f"resilience:breaker:{one.name}") > 25_000


async def test_closing_one_clears_the_shared_key(clients: list[Redis]) -> None:
    """Closing the breaker that opened deletes the key, and its twin probes at once."""
    async with twins(clients, reset_timeout=30) as (one, other):
        key = f"resilience:breaker:{one.name}"
        one.open()
        await eventually(lambda: other.current_state is OPEN)
        one.close()
        await eventually(lambda: _missing(clients[1], key))
        await eventually(lambda: other.retry_after == 0)
        assert await other.call_async(ok) == "ok"
        assert other.current_state is CLOSED


async def _missing(client: Redis, key: str) -> bool:
    return not await client.exists(key)


async def test_killed_redis_leaves_local_breakers_working(
    healthy_stack: Stack, clients: list[Redis], caplog: pytest.LogCaptureFixture
) -> None:
    """Redis killed: both breakers work locally, log once, and share again once it is back."""
    caplog.set_level(logging.WARNING, logger="resilience_async.breaker")
    async with twins(clients, failure_threshold=3, reset_timeout=30) as (one, other):
        kill(healthy_stack.children["redis"])
        async with asyncio.timeout(REDIS_TIMEOUT / 2):
            await calls_keep_working(one, other, calls=500)
        assert other.current_state is CLOSED
        await eventually(lambda: caplog.text.count(UNREACHABLE) == 2)
        healthy_stack.heal()  # on this thread: the stack's children die with the thread
        await eventually(lambda: other.current_state is OPEN)
    assert caplog.text.count(UNREACHABLE) == 2  # once per breaker, however long it lasted


async def test_paused_redis_never_holds_a_call_up(
    healthy_stack: Stack, clients: list[Redis], caplog: pytest.LogCaptureFixture
) -> None:
    """Redis paused (SIGSTOP): a thousand calls, a trip included, finish within a timeout's half."""
    caplog.set_level(logging.WARNING, logger="resilience_async.breaker")
    async with twins(clients, failure_threshold=3, reset_timeout=30) as (one, other):
        kill(healthy_stack.children["redis"], signal.SIGSTOP)
        async with asyncio.timeout(REDIS_TIMEOUT / 2):
            await calls_keep_working(one, other, calls=500)
        await eventually(lambda: UNREACHABLE in caplog.text)  # it was unreachable, really
        assert other.current_state is CLOSED
        healthy_stack.children["redis"].resume()
        await eventually(lambda: other.current_state is OPEN)
