"""ResilientClient against the real demo upstream, its faults switched on for real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from devstack.stack import Stack
from devstack.upstream import AsyncUpstreamControl
from resilience_async import (
    AiohttpTransport,
    Bulkhead,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreaker,
    CircuitOpenError,
    PoolExhaustedError,
    ResilientClient,
    RetryBudget,
    RetryPolicy,
    UpstreamStatusError,
    UpstreamUnavailableError,
    is_server_failure,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def upstream(healthy_stack: Stack) -> AsyncIterator[AsyncUpstreamControl]:
    async with AsyncUpstreamControl(healthy_stack.env["TIPS_UPSTREAM_CONTROL_URL"]) as control:
        await control.set_mode("normal")
        await control.reset_stats()
        yield control
        await control.set_mode("normal")  # release anything still hanging


def breaker(**options: object) -> CircuitBreaker:
    settings: dict[str, object] = {
        "failure_threshold": 3,
        "failure_rate_threshold": None,
        "reset_timeout": 30.0,
        "call_timeout": 0.5,
        "result_is_failure": is_server_failure,
        "default_hooks": False,
    }
    return CircuitBreaker(name="tips-test", **(settings | options))  # type: ignore[arg-type]


def client(stack: Stack, guard: CircuitBreaker | None, **options: object) -> ResilientClient:
    settings: dict[str, object] = {
        "timeout": 0.5,
        "retry": RetryPolicy(attempts=1),
    }
    return ResilientClient(
        "tips",
        stack.env["TIPS_UPSTREAM_URL"],
        breaker=guard,
        **(settings | options),  # type: ignore[arg-type]
    )


async def test_healthy_upstream_answers_json(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """A healthy upstream's tips come back decoded, through breaker and transport."""
    tips = client(healthy_stack, breaker())
    try:
        body = await tips.get_json("/tips")
    finally:
        await tips.aclose()
    assert len(body["tips"]) > 3


async def test_breaker_opens_after_errors_then_fails_fast(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """Three 503s open the breaker; further calls fail at once without reaching the upstream."""
    guard = breaker()
    tips = client(healthy_stack, guard)
    await upstream.set_mode("error", status=503)
    try:
        for _ in range(3):
            with pytest.raises(UpstreamStatusError):
                await tips.get_json("/tips")
        before = (await upstream.stats())["requests"]
        with pytest.raises(CircuitOpenError) as refused:
            await tips.get_json("/tips")
    finally:
        await tips.aclose()
    assert (await upstream.stats())["requests"] == before
    assert 0 < refused.value.retry_after <= 30


async def test_half_open_admits_only_the_configured_probes(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """Half-open under 50 concurrent callers: one probe reaches the upstream, 49 fail fast."""
    guard = breaker(reset_timeout=0.2, call_timeout=0.3)
    tips = client(healthy_stack, guard)
    try:
        await upstream.set_mode("refuse")
        for _ in range(3):
            with pytest.raises(UpstreamUnavailableError):
                await tips.get_json("/tips")
        await upstream.set_mode("hang")
        await upstream.reset_stats()
        await asyncio.sleep(guard.retry_after)  # the open period, read off the breaker
        outcomes = await asyncio.gather(
            *(tips.get_json("/tips") for _ in range(50)), return_exceptions=True
        )
        stats = await upstream.stats()
    finally:
        await tips.aclose()
    kinds = sorted(type(outcome).__name__ for outcome in outcomes)
    assert kinds == ["CallTimeoutError"] + ["CircuitOpenError"] * 49
    assert stats["max_in_flight"] == 1
    assert guard.current_state.name == "OPEN"  # the hung probe failed: open again


async def test_a_successful_probe_closes_the_breaker(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """After the open period a probe that succeeds closes the breaker; traffic flows again."""
    guard = breaker(reset_timeout=0.2)
    tips = client(healthy_stack, guard)
    try:
        await upstream.set_mode("error", status=500)
        for _ in range(3):
            with pytest.raises(UpstreamStatusError):
                await tips.get_json("/tips")
        await upstream.set_mode("normal")
        await asyncio.sleep(guard.retry_after)  # the open period, read off the breaker
        body = await tips.get_json("/tips")
    finally:
        await tips.aclose()
    assert body["tips"]
    assert guard.current_state.name == "CLOSED"


async def test_slow_upstream_is_cut_at_the_timeout_and_counts(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """An answer slower than the call timeout is abandoned and counted as a failure."""
    guard = breaker(call_timeout=0.2)
    tips = client(healthy_stack, guard, timeout=5.0)
    await upstream.set_mode("slow", delay_ms=2000)
    try:
        with pytest.raises(CallTimeoutError):
            await tips.get_json("/tips")
    finally:
        await tips.aclose()
    assert guard.fail_counter == 1


async def test_retry_budget_caps_upstream_attempts(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """During an outage, retries add at most the budget's share of requests, not 2x."""
    budget = RetryBudget(ratio=0.2, min_per_second=0)
    tips = client(
        healthy_stack, None, retry=RetryPolicy(attempts=3, base_delay=0.001), budget=budget
    )
    await upstream.set_mode("error", status=503)
    try:
        for _ in range(100):
            with pytest.raises(UpstreamStatusError):
                await tips.get_json("/tips")
    finally:
        await tips.aclose()
    attempts = (await upstream.stats())["requests"]
    assert 100 < attempts <= 120
    counted = tips.stats()
    assert (counted["requests"], counted["attempts"]) == (100, {"503": attempts})
    assert counted["retries"] == attempts - 100
    assert counted["retries_refused"] > 0


async def test_non_idempotent_requests_are_not_retried(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """A POST answered 503 is tried once, whatever the retry policy allows."""
    tips = client(healthy_stack, None, retry=RetryPolicy(attempts=3, base_delay=0.001))
    await upstream.set_mode("error", status=503)
    try:
        response = await tips.request("POST", "/tips")
    finally:
        await tips.aclose()
    assert response.status_code == 503
    assert (await upstream.stats())["requests"] == 1


async def test_our_pool_saturation_never_trips_the_breaker(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """Waiting for our own pooled connection fails fast and leaves the breaker closed."""
    guard = breaker(failure_threshold=1)
    tips = client(
        healthy_stack, guard, timeout=2.0, pool_timeout=0.05,
        transport=AiohttpTransport(max_connections=1),
    )  # fmt: skip
    await upstream.set_mode("slow", delay_ms=300)
    try:
        outcomes = await asyncio.gather(
            *(tips.get_json("/tips") for _ in range(10)), return_exceptions=True
        )
    finally:
        await tips.aclose()
    assert sum(isinstance(o, PoolExhaustedError) for o in outcomes) == 9
    assert guard.current_state.name == "CLOSED"
    assert tips.stats()["attempts"] == {"200": 1, "pool_timeout": 9}
    assert guard.stats()["calls_ignored"] == 9


async def test_full_bulkhead_fails_fast_and_never_trips_the_breaker(
    healthy_stack: Stack, upstream: AsyncUpstreamControl
) -> None:
    """Beyond the bulkhead's limit calls are refused at once; the breaker stays closed."""
    guard = breaker(failure_threshold=1)
    tips = client(healthy_stack, guard, bulkhead=Bulkhead("tips", max_concurrent=2))
    await upstream.set_mode("slow", delay_ms=200)
    try:
        outcomes = await asyncio.gather(
            *(tips.get_json("/tips") for _ in range(6)), return_exceptions=True
        )
    finally:
        await tips.aclose()
    assert sum(isinstance(o, BulkheadFullError) for o in outcomes) == 4
    assert guard.current_state.name == "CLOSED"
    assert (await upstream.stats())["requests"] == 2
    assert tips.bulkhead is not None
    assert tips.bulkhead.stats() == {
        "max_concurrent": 2, "in_flight": 0, "waiting": 0, "rejected": 4,
    }  # fmt: skip
