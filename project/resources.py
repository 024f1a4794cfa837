"""The composition root: every pool, client and check of a process, built once from settings.

The library never reads settings; this module does, and hands each primitive what it needs.
`project/asgi.py` builds one `Resources`, installs it, and the lifespan opens and closes it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from resilience_async.breaker import CircuitBreaker, RedisBreakerState
from resilience_async.cache import FallbackCache
from resilience_async.db import Database, counts_against_database, describe_hosts
from resilience_async.errors import DatabaseUnavailableError
from resilience_async.health import Check, Observation, Readiness, Status, threshold
from resilience_async.http import ResilientClient, is_server_failure
from resilience_async.lifecycle import Lifecycle
from resilience_async.limits import Bulkhead
from resilience_async.metrics import OUTBOX_BACKLOG
from resilience_async.retry import RetryBudget, RetryPolicy

TIPS = "tips-upstream"


class Resources:
    """Long-lived clients of one server process, and the readiness checks over them."""

    def __init__(self, settings: Any) -> None:
        self.lifecycle = Lifecycle()
        # Writes fail fast while the primary is gone: the monitor opens this breaker as soon
        # as it loses the primary, and closes it as soon as a writable one answers again.
        self.primary_breaker = CircuitBreaker(
            name="database-primary",
            failure_threshold=settings.DATABASE_BREAKER_FAIL_MAX,
            failure_rate_threshold=None,
            reset_timeout=settings.DATABASE_BREAKER_RESET_TIMEOUT,
            is_failure=counts_against_database,
        )
        self.database = Database(
            primary_url=settings.DATABASE_URL,
            replica_urls=settings.DATABASE_REPLICA_URLS,
            min_size=settings.DATABASE_POOL_MIN_SIZE,
            max_size=settings.DATABASE_POOL_MAX_SIZE,
            timeout=settings.DATABASE_POOL_TIMEOUT,
            max_waiting=settings.DATABASE_POOL_MAX_WAITING,
            connect_timeout=settings.DATABASE_CONNECT_TIMEOUT,
            replica_timeout=settings.DATABASE_REPLICA_TIMEOUT,
            query_timeout=settings.DATABASE_QUERY_TIMEOUT,
            max_replica_lag=settings.DATABASE_MAX_REPLICA_LAG,
            monitor_interval=settings.DATABASE_MONITOR_INTERVAL,
            primary_guard=self.primary_breaker,
        )
        # One immediate retry on a dropped connection only (a pooled socket that died with a
        # Redis restart); never on a timeout, which would double the cost of a hung Redis.
        self.redis = Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_TIMEOUT,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.tips_breaker = _upstream_breaker(settings, self.redis)
        self.tips_client = ResilientClient(
            TIPS,
            settings.TIPS_UPSTREAM_URL,
            timeout=settings.UPSTREAM_TIMEOUT,
            connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
            pool_timeout=settings.UPSTREAM_POOL_TIMEOUT,
            breaker=self.tips_breaker,
            retry=RetryPolicy(attempts=settings.UPSTREAM_RETRY_ATTEMPTS),
            budget=RetryBudget(ratio=settings.UPSTREAM_RETRY_BUDGET),
            max_connections=settings.UPSTREAM_MAX_CONNECTIONS,
            bulkhead=Bulkhead(TIPS, max_concurrent=settings.UPSTREAM_MAX_CONCURRENCY),
        )
        # Redis has its own breaker: a dead or hung Redis costs one short timeout per
        # breaker period, then the cache runs on its local tier alone.
        self.redis_breaker = CircuitBreaker(
            name="redis",
            failure_threshold=2,
            failure_rate_threshold=None,
            reset_timeout=5.0,
            call_timeout=settings.REDIS_TIMEOUT,
        )
        self.tips_cache = FallbackCache(
            redis=self.redis,
            namespace="tips",
            redis_timeout=settings.REDIS_TIMEOUT,
            redis_guard=self.redis_breaker,
            single_flight=settings.CACHE_SINGLE_FLIGHT,
        )
        self.idempotency_key_ttl = settings.IDEMPOTENCY_KEY_TTL
        self.broker_url = settings.BROKER_URL
        self.broker_redis = (
            Redis.from_url(settings.BROKER_URL, socket_timeout=settings.REDIS_TIMEOUT,
                           socket_connect_timeout=settings.REDIS_TIMEOUT)
            if urlsplit(settings.BROKER_URL).scheme.startswith("redis")
            else None
        )  # fmt: skip
        self.outbox_warn_age = settings.OUTBOX_WARN_AGE
        self.cache_ttl = settings.CACHE_TTL
        self.cache_stale_ttl = settings.CACHE_STALE_TTL
        self.readiness = Readiness(
            self._checks(max_lag=settings.DATABASE_MAX_REPLICA_LAG, redis_url=settings.REDIS_URL),
            lifecycle=self.lifecycle,
            timeout=settings.HEALTH_CHECK_TIMEOUT,
            cache_ttl=settings.HEALTH_CACHE_TTL,
            service=settings.SERVICE_NAME,
        )

    async def open(self) -> None:
        await self.database.open()
        await self.tips_breaker.start()

    async def close(self) -> None:
        await self.tips_cache.aclose()
        await self.tips_breaker.aclose()
        await self.tips_client.aclose()
        await self.redis.aclose()
        if self.broker_redis is not None:
            await self.broker_redis.aclose()
        await self.database.close()

    def _checks(self, *, max_lag: float, redis_url: str) -> list[Check]:
        db = self.database
        checks = [
            Check("primary", "responseTime", self._probe_primary, "datastore",
                  describe_hosts(db.primary_url), group="database"),
        ]  # fmt: skip
        for index, url in enumerate(db.replica_urls):
            checks.append(
                Check(f"replica-{index + 1}", "replicationLag", self._lag_probe(index, max_lag),
                      "datastore", describe_hosts(url), group="database")
            )  # fmt: skip
        checks.append(
            Check("redis", "responseTime", self._probe_redis, "datastore", _redis_host(redis_url))
        )
        checks.append(Check("upstream", "circuitBreaker", self._probe_upstream, "component", TIPS))
        checks.append(Check("broker", "responseTime", self._probe_broker, "component",
                            _redis_host(self.broker_url)))  # fmt: skip
        checks.append(Check("outbox", "backlog", self._probe_outbox, "component", "outbox"))
        return checks

    async def _probe_primary(self) -> Observation:
        """The database monitor's last sample: probes open no connection of their own."""
        monitor = self.database.monitor
        await monitor.first_round()
        if not monitor.primary.up:
            raise DatabaseUnavailableError("primary", str(monitor.primary.error))
        return Observation(round(monitor.primary.latency * 1000, 2), "ms")

    def _lag_probe(self, index: int, max_lag: float) -> Any:
        async def probe() -> Observation:
            monitor = self.database.monitor
            await monitor.first_round()
            state = monitor.replicas[index]
            if not state.up:
                raise DatabaseUnavailableError(state.name, str(state.error))
            if not state.in_recovery:
                return Observation(0.0, "s", Status.WARN, "not in recovery (promoted?)")
            return threshold(state.lag, unit="s", warn_above=max_lag, what="replay lag")

        return probe

    async def _probe_redis(self) -> Observation:
        await self.redis.ping()
        return Observation()

    async def _probe_broker(self) -> Observation:
        """Jobs are accepted while the broker is down (the outbox holds them): warn only."""
        if self.broker_redis is not None:
            await self.broker_redis.ping()
        else:
            parsed = urlsplit(self.broker_url)
            _, writer = await asyncio.open_connection(parsed.hostname, parsed.port or 5672)
            writer.close()
        return Observation()

    async def _probe_outbox(self) -> Observation:
        """Messages committed but not yet published, and how long the oldest has waited."""
        read = await self.database.read(_outbox_backlog)
        backlog, oldest = read.value
        OUTBOX_BACKLOG.set(backlog)
        if oldest > self.outbox_warn_age:
            output = f"{backlog} message(s) unpublished, the oldest for {oldest:.0f} s"
            return Observation(backlog, "messages", Status.WARN, output)
        return Observation(backlog, "messages")

    async def _probe_upstream(self) -> Observation:
        """The breaker's view: no request is sent (readiness must not hammer the upstream)."""
        snapshot = self.tips_breaker.snapshot()
        state = snapshot.state.name.lower().replace("_", "-")
        status = Status.PASS if state == "closed" else Status.WARN
        output = (
            None
            if status is Status.PASS
            else f"circuit {state}, retry in {snapshot.retry_after:.1f} s"
        )
        return Observation(round(snapshot.failure_rate, 3), "failure rate", status, output)


def _upstream_breaker(settings: Any, redis: Redis) -> CircuitBreaker:
    shared = (
        RedisBreakerState(redis, timeout=settings.REDIS_TIMEOUT)
        if settings.BREAKER_SHARED
        else None
    )
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


_installed: Resources | None = None


def install(resources: Resources) -> None:
    global _installed  # noqa: PLW0603 - one composition root per process, set at start-up
    _installed = resources


def current() -> Resources | None:
    """The process's resources, or None before `project/asgi.py` has built them."""
    return _installed


def require() -> Resources:
    """The process's resources; a service function called before start-up is a bug."""
    if _installed is None:
        raise RuntimeError("resources are not built: serve project.asgi:application")
    return _installed


async def _outbox_backlog(conn: Any) -> tuple[int, float]:
    cursor = await conn.execute(
        "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 "
        "FROM outbox WHERE sent_at IS NULL"
    )
    row = await cursor.fetchone()
    return int(row[0]), float(row[1])


def _redis_host(url: str) -> str:
    """`host:port` of a redis:// or amqp:// URL, for health details (no password)."""
    parsed = urlsplit(url)
    default = 5672 if parsed.scheme.startswith("amqp") else 6379
    return f"{parsed.hostname}:{parsed.port or default}"
