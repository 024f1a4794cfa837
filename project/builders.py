"""The library's primitives built from settings: what every process's root builds alike.

The web (`resources.py`), the worker (`worker.py`) and the relay (`relay.py`) share
parts: the primary behind its breaker, the tips upstream, the broker. They build them here,
so a setting means the same thing in every process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dramatiq
import httpx

from resilience_async import (
    Bulkhead,
    CircuitBreaker,
    Database,
    Hedge,
    LatencyRouting,
    RedisBreakerState,
    ResilientClient,
    RetryBudget,
    RetryPolicy,
    counts_against_database,
    is_server_failure,
)
from workers.broker import make_broker

TIPS = "tips-upstream"


def primary_breaker(settings: Any) -> CircuitBreaker:
    """Writes fail fast while the primary is gone: the database monitor opens this breaker as
    soon as it loses the primary, and closes it as soon as a writable one answers again."""
    return CircuitBreaker(
        name="database-primary",
        failure_threshold=settings.DATABASE_BREAKER_FAIL_MAX,
        failure_rate_threshold=None,
        reset_timeout=settings.DATABASE_BREAKER_RESET_TIMEOUT,
        is_failure=counts_against_database,
    )


def database(
    settings: Any,
    *,
    primary_guard: CircuitBreaker,
    max_size: int | None = None,
    query_timeout: float | None = None,
) -> Database:
    """The primary and replica pools, sized by the settings unless `max_size` is given."""
    return Database(
        primary_url=settings.DATABASE_URL,
        replica_urls=settings.DATABASE_REPLICA_URLS,
        min_size=settings.DATABASE_POOL_MIN_SIZE,
        max_size=max_size or settings.DATABASE_POOL_MAX_SIZE,
        timeout=settings.DATABASE_POOL_TIMEOUT,
        max_waiting=settings.DATABASE_POOL_MAX_WAITING,
        connect_timeout=settings.DATABASE_CONNECT_TIMEOUT,
        replica_timeout=settings.DATABASE_REPLICA_TIMEOUT,
        query_timeout=query_timeout or settings.DATABASE_QUERY_TIMEOUT,
        max_replica_lag=settings.DATABASE_MAX_REPLICA_LAG,
        monitor_interval=settings.DATABASE_MONITOR_INTERVAL,
        primary_guard=primary_guard,
        patroni_urls=settings.DATABASE_PATRONI_URLS,
        latency=latency_routing(settings),
        hedge=read_hedge(settings),
    )


def latency_routing(settings: Any) -> LatencyRouting | None:
    """Slow replicas ranked down and ejected (DATABASE_LATENCY_ROUTING)."""
    if not settings.DATABASE_LATENCY_ROUTING:
        return None
    return LatencyRouting(
        ratio=settings.DATABASE_OUTLIER_RATIO,
        floor=settings.DATABASE_OUTLIER_FLOOR,
        decay=settings.DATABASE_LATENCY_DECAY,
        ejection=settings.DATABASE_OUTLIER_EJECTION,
        max_ejection=settings.DATABASE_OUTLIER_MAX_EJECTION,
        primary_share=settings.DATABASE_PRIMARY_READ_SHARE,
    )


def read_hedge(settings: Any) -> Hedge[Any] | None:
    """Hedged reads (DATABASE_HEDGE): a late read also starts on the next eligible server."""
    if not settings.DATABASE_HEDGE:
        return None
    return Hedge(
        "database-reads",
        percentile=settings.DATABASE_HEDGE_PERCENTILE,
        min_delay=settings.DATABASE_HEDGE_MIN_DELAY,
        max_delay=settings.DATABASE_HEDGE_MAX_DELAY,
        budget=RetryBudget(ratio=settings.DATABASE_HEDGE_BUDGET),
        finish_losers=True,  # cancelling a query costs more than letting it end
    )


def tips_breaker(settings: Any, *, shared: RedisBreakerState | None = None) -> CircuitBreaker:
    """The tips upstream's breaker: consecutive failures, failure rate, slow calls, timeouts."""
    return CircuitBreaker(
        name=TIPS,
        failure_threshold=settings.BREAKER_FAIL_MAX,
        failure_rate_threshold=settings.BREAKER_FAILURE_RATE,
        window_size=settings.BREAKER_WINDOW,
        minimum_calls=min(settings.BREAKER_MIN_CALLS, settings.BREAKER_WINDOW),
        slow_call_duration=settings.BREAKER_SLOW_CALL or None,
        reset_timeout=settings.BREAKER_RESET_TIMEOUT,
        half_open_max_calls=settings.BREAKER_HALF_OPEN_MAX_CALLS,
        call_timeout=settings.UPSTREAM_TIMEOUT,
        result_is_failure=is_server_failure,
        shared=shared,
    )


def tips_hedge(settings: Any) -> Hedge[Any] | None:
    """The tips GETs' hedge (None with UPSTREAM_HEDGE off): a second attempt once the first
    is later than UPSTREAM_HEDGE_PERCENTILE of recent ones, within UPSTREAM_HEDGE_BUDGET."""
    if not settings.UPSTREAM_HEDGE:
        return None
    return Hedge(
        TIPS,
        percentile=settings.UPSTREAM_HEDGE_PERCENTILE,
        min_delay=settings.UPSTREAM_HEDGE_MIN_DELAY,
        max_delay=settings.UPSTREAM_HEDGE_MAX_DELAY,
        budget=RetryBudget(ratio=settings.UPSTREAM_HEDGE_BUDGET),
    )


def tips_client(
    settings: Any,
    *,
    breaker: CircuitBreaker,
    attempts: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    hedge: Hedge[Any] | None = None,
) -> ResilientClient:
    """The tips upstream's client: timeouts, a body limit, `breaker`, budgeted retries and a
    bulkhead; its GETs hedged by `hedge` (the web's `tips_hedge`; a job has no one waiting
    on its latency, and goes without).

    `attempts` overrides UPSTREAM_RETRY_ATTEMPTS (a job retried as a whole wants 1: retries
    inside retries multiply the load on a failing upstream). `transport` replaces the
    client's default (`AiohttpTransport`): `bench transport` measures this same client on
    httpx's own transport.
    """
    return ResilientClient(
        TIPS,
        settings.TIPS_UPSTREAM_URL,
        timeout=settings.UPSTREAM_TIMEOUT,
        connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
        pool_timeout=settings.UPSTREAM_POOL_TIMEOUT,
        breaker=breaker,
        retry=RetryPolicy(attempts=attempts or settings.UPSTREAM_RETRY_ATTEMPTS),
        budget=RetryBudget(ratio=settings.UPSTREAM_RETRY_BUDGET),
        max_connections=settings.UPSTREAM_MAX_CONNECTIONS,
        max_body=settings.UPSTREAM_MAX_BODY,
        bulkhead=Bulkhead(TIPS, max_concurrent=settings.UPSTREAM_MAX_CONCURRENCY),
        transport=transport,
        hedge=hedge,
    )


def broker(settings: Any, middleware: Sequence[dramatiq.Middleware] = ()) -> dramatiq.Broker:
    """The broker for BROKER_URL, with `middleware`; Redis's redelivery bounds from the settings."""
    return make_broker(
        settings.BROKER_URL,
        middleware=middleware,
        heartbeat_timeout=settings.JOBS_HEARTBEAT_TIMEOUT,
        maintenance_chance=settings.JOBS_MAINTENANCE_CHANCE,
    )
