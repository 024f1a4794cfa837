"""The composition root: every pool, client and check of a process, built once from settings.

The library never reads settings; this module does, and hands each primitive what it needs.
`project/asgi.py` builds one `Resources`, installs it, and the lifespan opens and closes it.
"""

from __future__ import annotations

from typing import Any

import httpx
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from resilience_async.db import Database, describe_hosts
from resilience_async.health import Check, Observation, Readiness, threshold
from resilience_async.lifecycle import Lifecycle


class Resources:
    """Long-lived clients of one server process, and the readiness checks over them."""

    def __init__(self, settings: Any) -> None:
        self.lifecycle = Lifecycle()
        self.database = Database(
            primary_url=settings.DATABASE_URL,
            replica_urls=settings.DATABASE_REPLICA_URLS,
            min_size=settings.DATABASE_POOL_MIN_SIZE,
            max_size=settings.DATABASE_POOL_MAX_SIZE,
            timeout=settings.DATABASE_POOL_TIMEOUT,
            max_waiting=settings.DATABASE_POOL_MAX_WAITING,
            connect_timeout=settings.DATABASE_CONNECT_TIMEOUT,
        )
        # One immediate retry on a dropped connection only (a pooled socket that died with a
        # Redis restart); never on a timeout, which would double the cost of a hung Redis.
        self.redis = Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=settings.REDIS_TIMEOUT,
            socket_connect_timeout=settings.REDIS_TIMEOUT,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self.upstream_url = settings.TIPS_UPSTREAM_URL.rstrip("/")
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(settings.UPSTREAM_TIMEOUT))
        self.readiness = Readiness(
            self._checks(max_lag=settings.DATABASE_MAX_REPLICA_LAG, redis_url=settings.REDIS_URL),
            lifecycle=self.lifecycle,
            timeout=settings.HEALTH_CHECK_TIMEOUT,
            cache_ttl=settings.HEALTH_CACHE_TTL,
            service=settings.SERVICE_NAME,
        )

    async def open(self) -> None:
        await self.database.open()

    async def close(self) -> None:
        await self.http.aclose()
        await self.redis.aclose()
        await self.database.close()

    def _checks(self, *, max_lag: float, redis_url: str) -> list[Check]:
        db = self.database
        checks = [
            Check(
                "primary",
                "responseTime",
                self._probe_primary,
                "datastore",
                describe_hosts(db.primary_url),
                group="database",
            ),
        ]
        for index, url in enumerate(db.replica_urls):
            checks.append(
                Check(
                    f"replica-{index + 1}",
                    "replicationLag",
                    self._lag_probe(index, max_lag),
                    "datastore",
                    describe_hosts(url),
                    group="database",
                )
            )
        checks.append(
            Check("redis", "responseTime", self._probe_redis, "datastore", _redis_host(redis_url))
        )
        checks.append(
            Check("upstream", "responseTime", self._probe_upstream, "component", self.upstream_url)
        )
        return checks

    async def _probe_primary(self) -> Observation:
        return Observation(round(await self.database.ping_primary() * 1000, 2), "ms")

    def _lag_probe(self, index: int, max_lag: float) -> Any:
        async def probe() -> Observation:
            lag = await self.database.replica_lag(index)
            return threshold(lag, unit="s", warn_above=max_lag, what="replay lag")

        return probe

    async def _probe_redis(self) -> Observation:
        await self.redis.ping()
        return Observation()

    async def _probe_upstream(self) -> Observation:
        response = await self.http.get(f"{self.upstream_url}/health")
        if response.status_code >= 500:
            raise RuntimeError(f"upstream answered {response.status_code}")
        return Observation()


_installed: Resources | None = None


def install(resources: Resources) -> None:
    global _installed  # noqa: PLW0603 - one composition root per process, set at start-up
    _installed = resources


def current() -> Resources | None:
    """The process's resources, or None before `project/asgi.py` has built them."""
    return _installed


def _redis_host(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.host}:{parsed.port or 6379}"
