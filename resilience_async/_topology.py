"""Who can serve what: a background monitor of the primary and of every replica.

Each server is sampled every `interval` seconds on a connection of its own, never a pooled
one: a saturated pool must not make a healthy server look dead, and no request waits
behind a probe. A sample records whether the server answers, whether it is still a standby,
its replay lag and the WAL position it has made visible (its replay LSN as a standby, its
insert LSN once promoted). Routing and readiness read these states; nothing on a request's
path opens a connection to find out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from psycopg.rows import TupleRow

from resilience_async._lsn import parse_lsn
from resilience_async._resource import AsyncResource

# Named as it was before the module turned private: log configurations keep working.
logger = logging.getLogger("resilience_async.topology")

# The primary is reached through its (possibly multi-host, read-write) URL: the server
# that answers is the one writes would reach.
_PRIMARY_SQL = "SELECT pg_is_in_recovery(), pg_current_wal_insert_lsn()::text"

# A promoted replica reports its insert position: everything committed there is visible.
# Replay lag is zero when everything received has been replayed (an idle primary sends no
# WAL, so the last replay timestamp would otherwise age for ever).
_REPLICA_SQL = """
SELECT pg_is_in_recovery(),
       (CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_last_wal_replay_lsn(), '0/0')
             ELSE pg_current_wal_insert_lsn() END)::text,
       CASE WHEN NOT pg_is_in_recovery()
              OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8
"""


@dataclass(slots=True, eq=False)  # one object per server: compared by identity
class ServerState:
    """The last sample of one server.

    `up` is False until a first sample succeeds; `lsn` only ever grows between samples (a
    token check on a request may raise it before the next sample).
    """

    name: str
    up: bool = False
    sampled: bool = False
    in_recovery: bool = False
    lag: float = 0.0
    lsn: int = 0
    latency: float = 0.0
    error: str | None = "not sampled yet"

    def saw_lsn(self, lsn: int) -> None:
        """Record a visible position seen outside a sample (positions never go back)."""
        self.lsn = max(self.lsn, lsn)


class _Probe:
    """One server's dedicated connection, reconnected whenever a sample fails."""

    def __init__(self, state: ServerState, url: str, sql: str, connect_timeout: float) -> None:
        self.state = state
        self.url = url
        self.sql = sql
        self.connect_timeout = max(1, round(connect_timeout))  # libpq takes whole seconds
        self.conn: psycopg.AsyncConnection[TupleRow] | None = None

    async def sample(self, seconds: float) -> None:
        state = self.state
        started = time.perf_counter()
        try:
            async with asyncio.timeout(seconds):
                row = await self._ask()
        except (psycopg.Error, OSError, TimeoutError) as exc:
            await self.disconnect()
            was_up = state.up
            state.up = False
            state.error = _describe(exc, seconds)
            if was_up or not state.sampled:
                logger.warning("database %s is unreachable: %s", state.name, state.error)
        else:
            assert row is not None
            if not state.up:
                logger.info("database %s is reachable", state.name)
            state.up = True
            state.error = None
            state.in_recovery = bool(row[0])
            state.saw_lsn(parse_lsn(row[1]))
            state.lag = float(row[2]) if len(row) > 2 else 0.0
            state.latency = time.perf_counter() - started
        state.sampled = True

    async def _ask(self) -> TupleRow | None:
        """The sample's row. A failure on a connection kept from an earlier sample is asked
        again once on a new one: a dropped session (a restarted pooler, an administrator's
        pg_terminate_backend) is not a lost server, and must not open the primary's breaker."""
        kept = self.conn is not None and not self.conn.closed
        try:
            return await self._query()
        except (psycopg.Error, OSError):
            if not kept:
                raise
            await self.disconnect()
            return await self._query()

    async def _query(self) -> TupleRow | None:
        if self.conn is None or self.conn.closed:
            self.conn = await psycopg.AsyncConnection.connect(
                self.url,
                connect_timeout=self.connect_timeout,
                autocommit=True,
                application_name=f"resilience-monitor:{self.state.name}",
            )
        cursor = await self.conn.execute(self.sql)
        return await cursor.fetchone()

    async def disconnect(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:.2f} s"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


class Monitor(AsyncResource):
    """Samples the primary and the replicas concurrently, every `interval` seconds.

    `async with monitor:` starts sampling in the background on the running loop (the first
    round at once); `aclose()` stops it and closes the probes' connections.

    Args:
        primary_url: the primary's libpq URL (as the write pool uses it).
        replica_urls: one libpq URL per replica, named replica-1, replica-2...
        interval: seconds between the starts of two sampling rounds.
        timeout: seconds one sample may take, connecting included.
        connect_timeout: libpq's connect timeout (whole seconds, at least 1).
        on_change: called with a server's state after a round in which it came up or went down.
        on_sample: called with every server's state after every round.
    """

    def __init__(
        self,
        primary_url: str,
        replica_urls: list[str],
        *,
        interval: float = 0.5,
        timeout: float = 2.0,
        connect_timeout: float = 2.0,
        on_change: Callable[[ServerState], None] | None = None,
        on_sample: Callable[[ServerState], None] | None = None,
    ) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError(f"interval and timeout must be > 0, got {interval}, {timeout}")
        self.interval = interval
        self.timeout = timeout
        self.primary = ServerState("primary")
        self.replicas = [ServerState(f"replica-{i}") for i in range(1, len(replica_urls) + 1)]
        self._probes = [_Probe(self.primary, primary_url, _PRIMARY_SQL, connect_timeout)] + [
            _Probe(state, url, _REPLICA_SQL, connect_timeout)
            for state, url in zip(self.replicas, replica_urls, strict=True)
        ]
        self._on_change = on_change
        self._on_sample = on_sample
        self._first_round = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        """Start sampling in the background (the first round starts at once)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="database-monitor")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for probe in self._probes:
            await probe.disconnect()

    async def sample(self) -> None:
        """One round: every server sampled concurrently; then transitions reported."""
        were_up = [probe.state.up for probe in self._probes]
        await asyncio.gather(*(probe.sample(self.timeout) for probe in self._probes))
        self._first_round.set()
        for probe, was_up in zip(self._probes, were_up, strict=True):
            if self._on_sample is not None:
                self._on_sample(probe.state)
            if self._on_change is not None and probe.state.up != was_up:
                self._on_change(probe.state)

    async def first_round(self) -> None:
        """Return once every server has been sampled at least once."""
        await self._first_round.wait()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.sample()
            except Exception:  # a bug must not stop the monitor: routing would freeze
                logger.exception("database monitor round failed")
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - started)))
