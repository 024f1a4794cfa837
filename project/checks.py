"""The service's readiness checks: one per dependency, over what the composition root built.

Probes never open connections of their own where a primitive already watches the
dependency: the database entries read the monitor's last sample, the upstream entry its
breaker. Only Redis and the broker are pinged (a short, bounded call).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from redis.asyncio import Redis

from resilience_async import (
    Check,
    CircuitBreaker,
    Database,
    DatabaseUnavailableError,
    Observation,
    Probe,
    Status,
    describe_hosts,
    threshold,
)


def database_checks(database: Database, *, max_lag: float) -> list[Check]:
    """The primary's reachability and each replica's replay lag: the required group."""
    checks = [
        Check("primary", "responseTime", primary_probe(database), "datastore",
              describe_hosts(database.primary_url), group="database"),
    ]  # fmt: skip
    for index, url in enumerate(database.replica_urls):
        checks.append(
            Check(f"replica-{index + 1}", "replicationLag", lag_probe(database, index, max_lag),
                  "datastore", describe_hosts(url), group="database")
        )  # fmt: skip
    return checks


def primary_probe(database: Database) -> Probe:
    """The database monitor's last sample of the primary."""

    async def probe() -> Observation:
        monitor = database.monitor
        await monitor.first_round()
        if not monitor.primary.up:
            raise DatabaseUnavailableError("primary", str(monitor.primary.error))
        return Observation(round(monitor.primary.latency * 1000, 2), "ms")

    return probe


def lag_probe(database: Database, index: int, max_lag: float) -> Probe:
    """The database monitor's last sample of replica `index`: warns past `max_lag`."""

    async def probe() -> Observation:
        monitor = database.monitor
        await monitor.first_round()
        state = monitor.replicas[index]
        if not state.up:
            raise DatabaseUnavailableError(state.name, str(state.error))
        if state.role == "leader":  # listed among the replicas, as every Patroni member is
            return Observation(0.0, "s", output="Patroni's leader: its reads go to the primary")
        if state.excluded:
            return Observation(0.0, "s", Status.WARN, state.excluded)
        if state.ejected:  # up and caught up, but slow: its reads go elsewhere for now
            return Observation(round(state.estimate, 3), "s", Status.WARN, state.ejected)
        if not state.in_recovery:
            return Observation(0.0, "s", Status.WARN, "not in recovery (promoted?)")
        return threshold(state.lag, unit="s", warn_above=max_lag, what="replay lag")

    return probe


def redis_probe(redis: Redis) -> Probe:
    async def probe() -> Observation:
        await redis.ping()
        return Observation()

    return probe


def broker_probe(broker_url: str, broker_redis: Redis | None) -> Probe:
    """Jobs are accepted while the broker is down (the outbox holds them): warn only."""

    async def probe() -> Observation:
        if broker_redis is not None:
            await broker_redis.ping()
        else:
            parsed = urlsplit(broker_url)
            _, writer = await asyncio.open_connection(parsed.hostname, parsed.port or 5672)
            writer.close()
        return Observation()

    return probe


def breaker_probe(breaker: CircuitBreaker) -> Probe:
    """The breaker's view: no request is sent (readiness must not hammer the upstream)."""

    async def probe() -> Observation:
        snapshot = breaker.snapshot()
        state = snapshot.state.name.lower().replace("_", "-")
        if state == "closed":
            return Observation(round(snapshot.failure_rate, 3), "failure rate")
        output = f"circuit {state}, retry in {snapshot.retry_after:.1f} s"
        return Observation(round(snapshot.failure_rate, 3), "failure rate", Status.WARN, output)

    return probe


def host_of(url: str) -> str:
    """`host:port` of a redis:// or amqp:// URL, for health details (no password)."""
    parsed = urlsplit(url)
    default = 5672 if parsed.scheme.startswith("amqp") else 6379
    return f"{parsed.hostname}:{parsed.port or default}"
