"""The web process's composition root: every pool, client, service and check, built once.

The library and the app never read settings; this module does, and hands each part what it
needs. `for_process()` builds the one `Resources` of a process: `project/asgi.py` opens and
closes it with the server's lifespan, `project/urls.py` routes to its `api`.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.apidocs import ApiDocs
from app.keys import ApiKeys
from app.limits import CallerLimits
from app.orders import OrderService
from app.reports import ReportService
from app.tips import TipsService
from app.views import Api
from project import builders, checks
from resilience_async import (
    Check,
    CircuitBreaker,
    FallbackCache,
    Lifecycle,
    RateLimiter,
    Readiness,
    RedisBreakerState,
)
from workers.outbox import BacklogProbe


class Resources:
    """Long-lived clients of one server process, the services over them, and readiness."""

    def __init__(self, settings: Any) -> None:
        self.lifecycle = Lifecycle()
        self.primary_breaker = builders.primary_breaker(settings)
        self.database = builders.database(settings, primary_guard=self.primary_breaker)
        # One immediate retry on a dropped connection only (a pooled socket that died with a
        # Redis restart); never on a timeout, which would double the cost of a hung Redis.
        self.redis = Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_TIMEOUT,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.breaker_state = (
            RedisBreakerState(self.redis, timeout=settings.REDIS_TIMEOUT)
            if settings.BREAKER_SHARED
            else None
        )
        self.tips_breaker = builders.tips_breaker(settings, shared=self.breaker_state)
        # Closed with the client: its `aclose()` waits for the hedge's losers first.
        self.tips_hedge = builders.tips_hedge(settings)
        self.tips_client = builders.tips_client(settings, breaker=self.tips_breaker,
                                                hedge=self.tips_hedge)  # fmt: skip
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
        # Shared token buckets (one Redis round trip per decision); in process while Redis
        # is slow or down, failing open.
        self.rate_limiter = RateLimiter(
            redis=self.redis, namespace="api", redis_timeout=settings.RATE_LIMIT_REDIS_TIMEOUT
        )
        self.broker_url = settings.BROKER_URL
        self.broker_redis = (
            Redis.from_url(settings.BROKER_URL, socket_timeout=settings.REDIS_TIMEOUT,
                           socket_connect_timeout=settings.REDIS_TIMEOUT)
            if urlsplit(settings.BROKER_URL).scheme.startswith("redis")
            else None
        )  # fmt: skip
        self.api = Api(
            tips=TipsService(client=self.tips_client, cache=self.tips_cache,
                             breaker=self.tips_breaker, ttl=settings.CACHE_TTL,
                             stale_ttl=settings.CACHE_STALE_TTL,
                             stale_budget=settings.CACHE_STALE_BUDGET),
            orders=OrderService(database=self.database, key_ttl=settings.IDEMPOTENCY_KEY_TTL),
            reports=ReportService(database=self.database, key_ttl=settings.IDEMPOTENCY_KEY_TTL),
            keys=ApiKeys(database=self.database, cache_ttl=settings.API_KEY_CACHE_TTL),
            limits=CallerLimits(self.rate_limiter, per_key=settings.RATE_LIMIT_KEY,
                                per_address=settings.RATE_LIMIT_ADDRESS),
            reads_need_key=settings.API_READS_NEED_KEY,
        )  # fmt: skip
        self.docs = ApiDocs()
        self.readiness = Readiness(
            self._checks(settings),
            lifecycle=self.lifecycle,
            timeout=settings.HEALTH_CHECK_TIMEOUT,
            cache_ttl=settings.HEALTH_CACHE_TTL,
            service=settings.SERVICE_NAME,
        )
        if settings.METRICS_ENABLED:
            self._instrument()
        self._opened = contextlib.AsyncExitStack()

    async def open(self) -> None:
        """Open every resource on the running loop (lifespan start-up), each after those it
        uses: `close()` closes them in the reverse order. A failure closes what opened."""
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(self.primary_breaker)
            await stack.enter_async_context(self.database)
            if self.broker_redis is not None:
                stack.push_async_callback(self.broker_redis.aclose)
            stack.push_async_callback(self.redis.aclose)
            if self.breaker_state is not None:
                await stack.enter_async_context(self.breaker_state)
            await stack.enter_async_context(self.tips_client)
            await stack.enter_async_context(self.tips_breaker)
            await stack.enter_async_context(self.redis_breaker)
            await stack.enter_async_context(self.tips_cache)
            await stack.enter_async_context(self.rate_limiter)
            self._opened = stack.pop_all()

    async def close(self) -> None:
        """Close what `open()` opened, the last opened first (lifespan shutdown)."""
        opened, self._opened = self._opened, contextlib.AsyncExitStack()
        await opened.aclose()

    def _checks(self, settings: Any) -> list[Check]:
        on_backlog = None
        if settings.METRICS_ENABLED:
            from project.metrics import OUTBOX_BACKLOG  # noqa: PLC0415 - only with metrics

            on_backlog = OUTBOX_BACKLOG.set
        outbox = BacklogProbe(self.database, warn_age=settings.OUTBOX_WARN_AGE,
                              on_backlog=on_backlog)  # fmt: skip
        redis_host = checks.host_of(settings.REDIS_URL)
        broker_probe = checks.broker_probe(self.broker_url, self.broker_redis)
        return [
            *checks.database_checks(self.database, max_lag=settings.DATABASE_MAX_REPLICA_LAG),
            Check("redis", "responseTime", checks.redis_probe(self.redis), "datastore", redis_host),
            Check("upstream", "circuitBreaker", checks.breaker_probe(self.tips_breaker),
                  "component", builders.TIPS),
            Check("broker", "responseTime", broker_probe, "component",
                  checks.host_of(self.broker_url)),
            Check("outbox", "backlog", outbox, "component", "outbox"),
        ]  # fmt: skip

    def _instrument(self) -> None:
        from resilience_async.prometheus import instrument  # noqa: PLC0415 - optional

        client = self.tips_client
        instrument(self.primary_breaker, self.database, self.tips_breaker, client,
                   self.redis_breaker, self.tips_cache, self.rate_limiter)  # fmt: skip
        if client.bulkhead is not None:
            instrument(client.bulkhead)
        for hedge in (self.tips_hedge, self.database.hedge):
            if hedge is not None:
                instrument(hedge)


@functools.cache
def for_process() -> Resources:
    """The process's one `Resources`, built from Django's settings on first use.

    Building opens nothing (pools and clients open at lifespan start-up), so importing the
    URLconf (`manage.py check`, say) costs no connection.
    """
    return Resources(django_settings)
