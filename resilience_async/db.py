"""PostgreSQL access: a primary pool and one pool per streaming replica.

Pools open on the running loop (`open()`), never in the constructor, and keep reconnecting
in the background, so a database that is down at start-up or dies later makes requests fail
fast instead of the service refusing to start. `max_waiting` and `timeout` bound the queue
for a connection, so a sick database produces quick errors, not a pile-up.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

# Replay lag is zero when everything received has been replayed (an idle primary sends no
# WAL, so the last replay timestamp would otherwise age forever).
_REPLICA_STATE_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8
"""


class NotAStandbyError(Exception):
    """A server listed as a replica is not in recovery (it was promoted, or misconfigured)."""


def describe_hosts(url: str) -> str:
    """`host:port[,host:port...]` of a libpq URL, for logs and health details (no password)."""
    params = conninfo_to_dict(url)
    hosts = str(params.get("host", "")).split(",")
    ports = str(params.get("port", "5432")).split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    return ",".join(f"{host}:{port}" for host, port in zip(hosts, ports, strict=False))


class Database:
    """The primary pool and the replica pools of one service process.

    Args:
        primary_url: libpq URL of the primary; several hosts with
            `target_session_attrs=read-write` let a promoted replica be found on reconnect.
        replica_urls: one libpq URL per streaming replica.
        min_size, max_size: connections per pool.
        timeout: seconds a caller waits for a pooled connection before an error.
        max_waiting: callers allowed to queue for a connection; more fail at once.
        connect_timeout: seconds to establish one connection.
        close_timeout: seconds `close()` waits for connections still in use.
    """

    def __init__(
        self,
        *,
        primary_url: str,
        replica_urls: list[str],
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 2.0,
        max_waiting: int = 100,
        connect_timeout: float = 2.0,
        close_timeout: float = 5.0,
    ) -> None:
        if not 0 <= min_size <= max_size:
            raise ValueError(
                f"pool sizes need 0 <= min_size <= max_size, got {min_size}, {max_size}"
            )
        self.primary_url = primary_url
        self.replica_urls = list(replica_urls)
        self._connect_timeout = connect_timeout
        self._close_timeout = close_timeout
        options = {
            "min_size": min_size,
            "max_size": max_size,
            "timeout": timeout,
            "max_waiting": max_waiting,
            "kwargs": {"connect_timeout": max(1, round(connect_timeout)), "autocommit": True},
            "check": AsyncConnectionPool.check_connection,
            "open": False,
        }
        self.primary = AsyncConnectionPool(primary_url, name="primary", **options)  # type: ignore[arg-type]
        self.replicas = [
            AsyncConnectionPool(url, name=f"replica-{i}", **options)  # type: ignore[arg-type]
            for i, url in enumerate(self.replica_urls, start=1)
        ]

    async def open(self) -> None:
        """Start every pool's connection attempts without waiting for them to succeed."""
        for pool in (self.primary, *self.replicas):
            await pool.open(wait=False)

    async def close(self) -> None:
        """Close every pool, waiting at most `close_timeout` for connections in use."""
        pools = (self.primary, *self.replicas)
        await asyncio.gather(*(pool.close(self._close_timeout) for pool in pools))

    async def ping_primary(self) -> float:
        """Round-trip seconds of a fresh connection to the writable primary.

        A fresh connection, not a pooled one: the probe must report the server, not whether
        this process's pool happens to be saturated.
        """
        started = time.perf_counter()
        async with await self._connect(self.primary_url) as conn:
            await conn.execute("SELECT 1")
        return time.perf_counter() - started

    async def replica_lag(self, index: int) -> float:
        """Seconds replica `index` (0-based) is behind in replay; raises if not a standby."""
        async with await self._connect(self.replica_urls[index]) as conn:
            cursor = await conn.execute(_REPLICA_STATE_SQL)
            row = await cursor.fetchone()
        assert row is not None
        in_recovery, lag = row
        if not in_recovery:
            raise NotAStandbyError(f"replica-{index + 1} is not in recovery (promoted?)")
        return float(lag)

    async def _connect(self, url: str) -> psycopg.AsyncConnection[TupleRow]:
        return await psycopg.AsyncConnection.connect(
            url, connect_timeout=max(1, round(self._connect_timeout)), autocommit=True
        )
