"""The optional Prometheus hook set: each primitive's events land in its instruments, exactly.

Every test builds its own `Instruments` in a registry of its own, so counts start at zero.
"""

from __future__ import annotations

import httpx
import pytest
from prometheus_client import CollectorRegistry

from resilience_async import (
    Bulkhead,
    BulkheadFullError,
    CircuitBreaker,
    CircuitOpenError,
    FallbackCache,
    RateLimiter,
    RateLimitPolicy,
    ResilientClient,
    RetryPolicy,
    ServerState,
    UpstreamStatusError,
)
from resilience_async.prometheus import (
    DatabaseExport,
    Instruments,
    RateLimitExport,
    instrument,
    render,
)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def instruments(registry: CollectorRegistry) -> Instruments:
    return Instruments(registry)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_a_breaker_exports_state_transitions_and_outcomes(
    registry: CollectorRegistry, instruments: Instruments
) -> None:
    """State gauge 0 then 2, one transition to open, each call under its outcome."""
    breaker = CircuitBreaker(name="pay", failure_threshold=1, default_hooks=False)
    instrument(breaker, instruments=instruments)
    assert sample(registry, "circuit_breaker_state", breaker="pay") == 0

    async def boom() -> None:
        raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        await breaker.call_async(boom)
    with pytest.raises(CircuitOpenError):
        await breaker.call_async(boom)
    assert sample(registry, "circuit_breaker_state", breaker="pay") == 2
    assert sample(registry, "circuit_breaker_transitions_total", breaker="pay", state="open") == 1
    counts = {
        outcome: sample(registry, "circuit_breaker_calls_total", breaker="pay", outcome=outcome)
        for outcome in ("success", "failure", "slow", "rejected", "ignored")
    }
    assert counts == {"success": 0, "failure": 1, "slow": 0, "rejected": 1, "ignored": 0}


async def test_a_client_exports_attempts_and_retry_decisions(
    registry: CollectorRegistry, instruments: Instruments
) -> None:
    """Three 503 attempts for one request: two retries made, then the answer."""
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    client = ResilientClient("up", "http://upstream.invalid", transport=transport,
                             retry=RetryPolicy(attempts=3, base_delay=0))  # fmt: skip
    instrument(client, instruments=instruments)
    with pytest.raises(UpstreamStatusError):
        await client.get_json("/tips")
    await client.aclose()
    assert sample(registry, "upstream_requests_total", upstream="up", outcome="503") == 3
    assert sample(registry, "upstream_retries_total", upstream="up", decision="retried") == 2
    assert client.stats() == {
        "requests": 1, "attempts": {"503": 3}, "retries": 2, "retries_refused": 0,
        "unusable": {},
    }  # fmt: skip
    # The client's own reasons for an unusable answer are exported from the start, at 0.
    for reason in ("too_large", "bad_encoding", "malformed_json"):
        labels = {"upstream": "up", "reason": reason}
        assert sample(registry, "upstream_unusable_responses_total", **labels) == 0


async def test_a_bulkhead_exports_its_rejections(
    registry: CollectorRegistry, instruments: Instruments
) -> None:
    bulkhead = Bulkhead("db", max_concurrent=1)
    instrument(bulkhead, instruments=instruments)
    async with bulkhead:
        for _ in range(2):
            with pytest.raises(BulkheadFullError):
                async with bulkhead:
                    pass
    assert sample(registry, "bulkhead_rejections_total", bulkhead="db") == 2


async def test_a_cache_exports_each_value_served_by_source(
    registry: CollectorRegistry, instruments: Instruments
) -> None:
    cache = FallbackCache(redis=None, namespace="tips")
    instrument(cache, instruments=instruments)

    async def load() -> str:
        return "value"

    await cache.get("k", load, ttl=60, stale_ttl=60)
    await cache.get("k", load, ttl=60, stale_ttl=60)
    await cache.aclose()
    served = {
        source: sample(registry, "fallback_cache_results_total", namespace="tips", source=source)
        for source in ("live", "cache", "stale", "fallback")
    }
    assert served == {"live": 1, "cache": 1, "stale": 0, "fallback": 0}


async def test_a_rate_limiter_exports_decisions_by_policy_and_store(
    registry: CollectorRegistry, instruments: Instruments
) -> None:
    """Three calls on a bucket of two: two allowed and one refused, all decided locally."""
    limiter = RateLimiter(redis=None, namespace="api")
    instrument(limiter, instruments=instruments)
    for _ in range(3):
        await limiter.acquire("addr:127.0.0.1", RateLimitPolicy("addr", limit=2, window=60))
    decisions = "rate_limit_decisions_total"
    assert sample(registry, decisions, limiter="api", policy="addr", decision="allowed",
                  store="local") == 2  # fmt: skip
    assert sample(registry, decisions, limiter="api", policy="addr", decision="refused",
                  store="local") == 1  # fmt: skip
    assert sample(registry, "rate_limit_fallback", limiter="api") == 0


def test_a_rate_limit_hook_exports_the_fallback_state(
    registry: CollectorRegistry, instruments: Instruments
) -> None:
    hook = RateLimitExport(instruments, "api")
    hook.record_decision("key", True, True)
    hook.record_fallback(True)
    assert sample(registry, "rate_limit_fallback", limiter="api") == 1
    hook.record_fallback(False)
    assert sample(registry, "rate_limit_fallback", limiter="api") == 0
    decisions = "rate_limit_decisions_total"
    assert sample(registry, decisions, limiter="api", policy="key", decision="allowed",
                  store="shared") == 1  # fmt: skip


def test_a_database_hook_exports_queries_and_samples(
    registry: CollectorRegistry, instruments: Instruments
) -> None:
    """Queries by server, kind and outcome; each sample's reachability and replica lag."""
    hook = DatabaseExport(instruments)
    hook.record_query("replica-1", "read", "ok")
    hook.record_query("replica-1", "read", "ok")
    hook.record_query("primary", "write", "failed")
    hook.record_sample(ServerState("replica-1", up=True, in_recovery=True, lag=0.25))
    hook.record_sample(ServerState("primary", up=False))
    queries = "database_queries_total"
    assert sample(registry, queries, server="replica-1", kind="read", outcome="ok") == 2
    assert sample(registry, queries, server="primary", kind="write", outcome="failed") == 1
    assert sample(registry, "database_up", server="replica-1") == 1
    assert sample(registry, "database_up", server="primary") == 0
    assert sample(registry, "database_replica_lag_seconds", server="replica-1") == 0.25


def test_something_without_a_hook_is_refused(instruments: Instruments) -> None:
    with pytest.raises(TypeError, match="no Prometheus hook for object"):
        instrument(object(), instruments=instruments)


def test_render_shows_the_registry_in_the_text_format(
    registry: CollectorRegistry, instruments: Instruments
) -> None:
    instruments.bulkhead_rejections.labels("x").inc()
    text = render(None, registry).decode()
    assert 'bulkhead_rejections_total{bulkhead="x"} 1.0' in text
    assert "_created" not in text  # a timestamp per series nobody graphs
