"""Who can serve what: a background monitor of the primary and of every replica.

Each server is sampled every `interval` seconds on a connection of its own, never a pooled
one: a saturated pool must not make a healthy server look dead, and no request waits
behind a probe. A sample records whether the server answers, whether it is still a standby,
its replay lag and the WAL position it has made visible (its replay LSN as a standby, its
insert LSN once promoted). Routing and readiness read these states; nothing on a request's
path opens a connection to find out.

Given Patroni's REST API (`patroni_urls`), each round also reads Patroni's view of the
cluster, which then has the last word: a replica Patroni does not list as a running replica
takes no reads (`excluded`), no listed leader means no primary, and the primary's URL is
re-ordered so its first host is Patroni's leader (the write pool is told, and reconnects
there without waiting for a connection to fail). Servers are matched to members by the
address they are dialled at or the one they report (`inet_server_addr/port`), so a proxy in
between does not hide them. When no member answers, the samples alone decide, as without.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from resilience_async._lsn import parse_lsn
from resilience_async._resource import AsyncResource

if TYPE_CHECKING:
    from resilience_async._patroni import Address, ClusterView, PatroniMember, PatroniSource

# Named as it was before the module turned private: log configurations keep working.
logger = logging.getLogger("resilience_async.topology")

# The primary is reached through its (possibly multi-host, read-write) URL: the server
# that answers is the one writes would reach.
# Every sample also asks where the server listens, which names it to Patroni.
_WHERE = "host(inet_server_addr()), inet_server_port()"
_PRIMARY_SQL = f"SELECT pg_is_in_recovery(), pg_current_wal_insert_lsn()::text, 0::float8, {_WHERE}"

# A promoted replica reports its insert position: everything committed there is visible.
# Replay lag is zero when everything received has been replayed (an idle primary sends no
# WAL, so the last replay timestamp would otherwise age for ever).
_REPLICA_SQL = (
    """
SELECT pg_is_in_recovery(),
       (CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_last_wal_replay_lsn(), '0/0')
             ELSE pg_current_wal_insert_lsn() END)::text,
       CASE WHEN NOT pg_is_in_recovery()
              OR pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8,
       """
    + _WHERE
)


@dataclass(slots=True, eq=False)  # one object per server: compared by identity
class ServerState:
    """The last sample of one server.

    `up` is False until a first sample succeeds; `lsn` only ever grows between samples (a
    token check on a request may raise it before the next sample). With Patroni: `role` is
    what it lists the server as (None when unlisted or without Patroni), and `excluded` why
    reads must not go there (None when they may). With a `Database`'s latency routing, it
    also sets `estimate` (its latency estimate, seconds), `ejected` (why the server takes no
    reads now, or None) and `ejections` (how many times so far), after every sample.
    """

    name: str
    up: bool = False
    sampled: bool = False
    in_recovery: bool = False
    lag: float = 0.0
    lsn: int = 0
    latency: float = 0.0
    error: str | None = "not sampled yet"
    role: str | None = None
    excluded: str | None = None
    estimate: float = 0.0
    ejected: str | None = None
    ejections: int = 0

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
        self.dialled: Address | None = None  # the host the last sample's connection reached
        self.server: Address | None = None  # where that server says it listens

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
            state.lag = float(row[2])
            state.latency = time.perf_counter() - started
            self.server = (row[3], row[4]) if row[3] is not None else None
            self.dialled = _dialled(self.conn)
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


def _exclusion(member: PatroniMember | None) -> str | None:
    """Why Patroni's view keeps reads off a server; None when it is a running replica."""
    if member is None:
        return "not a member Patroni lists"
    return None if member.readable else member.describe()


def _dialled(conn: psycopg.AsyncConnection[TupleRow] | None) -> Address | None:
    """The host and port a (possibly multi-host) connection actually reached."""
    if conn is None or not conn.info.port:
        return None
    return conn.info.host, int(conn.info.port)


def _hosts(url: str) -> list[Address]:
    """The `host:port` pairs of a libpq URL, in order (one port may serve every host)."""
    params = conninfo_to_dict(url)
    hosts = str(params.get("host", "")).split(",")
    ports = str(params.get("port", "5432")).split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    return [(host, int(port)) for host, port in zip(hosts, ports, strict=False) if port]


def _with_first(url: str, first: int) -> str:
    """`url` with its `first`-th host (and port) moved to the front."""
    params = conninfo_to_dict(url)
    hosts = _hosts(url)
    order = [hosts[first], *hosts[:first], *hosts[first + 1 :]]
    params["host"] = ",".join(host for host, _ in order)
    params["port"] = ",".join(str(port) for _, port in order)
    return make_conninfo("", **params)


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
        patroni_urls: the members' Patroni REST API URLs: Patroni's view then decides who
            is the primary and which replicas take reads (module docstring).
        on_primary_url: called with the primary's URL re-ordered to put Patroni's new
            leader first (the write pool's conninfo follows it).
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
        patroni_urls: Sequence[str] = (),
        on_primary_url: Callable[[str], None] | None = None,
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
        self._on_primary_url = on_primary_url
        self.primary_url = primary_url
        self.patroni: PatroniSource | None = None
        if patroni_urls:
            from resilience_async._patroni import PatroniSource  # noqa: PLC0415 - needs httpx

            self.patroni = PatroniSource(patroni_urls, timeout=min(timeout, 1.0))
        self.view: ClusterView | None = None
        self._identities: dict[Address, Address] = {}  # dialled -> as the server reports it
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
        if self.patroni is not None:
            await self.patroni.aclose()

    async def sample(self) -> None:
        """One round: every server sampled concurrently (and Patroni asked, beside them);
        then Patroni's view applied, and transitions reported."""
        were_up = [probe.state.up for probe in self._probes]
        asking = None if self.patroni is None else asyncio.ensure_future(self._ask_patroni())
        try:
            await asyncio.gather(*(probe.sample(self.timeout) for probe in self._probes))
        finally:
            view = None if asking is None else await asking
        if self.patroni is not None:
            await self._follow(view)
        self._first_round.set()
        for probe, was_up in zip(self._probes, were_up, strict=True):
            if self._on_sample is not None:
                self._on_sample(probe.state)
            if self._on_change is not None and probe.state.up != was_up:
                self._on_change(probe.state)

    # --- Patroni ----------------------------------------------------------------------
    async def _ask_patroni(self) -> ClusterView | None:
        """Patroni's view, or None: no member answered within the sample's timeout."""
        assert self.patroni is not None
        try:
            async with asyncio.timeout(self.timeout):
                return await self.patroni.fetch()
        except TimeoutError:
            self.patroni.error = f"no answer within {self.timeout:.2f} s"
            return None

    async def _follow(self, view: ClusterView | None) -> None:
        """Apply Patroni's view to the states this round's samples left."""
        if view is None:
            if self.view is not None:
                assert self.patroni is not None
                logger.warning("no Patroni REST API answers (%s): samples alone decide",
                               self.patroni.error)  # fmt: skip
            self.view = None
            for state in (self.primary, *self.replicas):
                state.role = state.excluded = None
            return
        self.view = view
        for probe in self._probes:
            if probe.dialled is not None and probe.server is not None:
                self._identities[probe.dialled] = probe.server
        for probe in self._probes[1:]:
            member = self._member(probe.dialled or _hosts(probe.url)[0], probe.server)
            probe.state.role = None if member is None else member.role
            probe.state.excluded = _exclusion(member)
        leader = view.leader
        primary, probe = self.primary, self._probes[0]
        primary.role = None if leader is None else leader.role
        if leader is None:
            self._not_primary("Patroni lists no running leader")
            return
        reached = self._member(probe.dialled, probe.server) if primary.up else None
        if await self._lead_with(leader):
            await probe.disconnect()
            await probe.sample(self.timeout)
            reached = self._member(probe.dialled, probe.server) if primary.up else None
        if reached is not None and reached is not leader:
            await probe.disconnect()  # the next round reconnects, the leader's host first
            self._not_primary(f"reached {reached.name}, but Patroni's leader is {leader.name}")

    def _member(self, dialled: Address | None, server: Address | None) -> PatroniMember | None:
        if self.view is None:
            return None
        known = self._identities.get(dialled) if dialled is not None else None
        return self.view.find((dialled, server, known))

    async def _lead_with(self, leader: PatroniMember) -> bool:
        """Put the leader's host first in the primary's URL; True if that changed it."""
        hosts = _hosts(self.primary_url)
        index = next((i for i, host in enumerate(hosts) if self._member(host, None) is leader),
                     None)  # fmt: skip
        if not index:  # already first, or not one of the URL's hosts
            return False
        self.primary_url = _with_first(self.primary_url, index)
        self._probes[0].url = self.primary_url
        logger.info("Patroni's leader is %s: the primary's URL now starts with %s:%s",
                    leader.name, *hosts[index])  # fmt: skip
        if self._on_primary_url is not None:
            self._on_primary_url(self.primary_url)
        return True

    def _not_primary(self, why: str) -> None:
        if self.primary.up:
            logger.warning("database primary: %s", why)
        self.primary.up = False
        self.primary.error = why

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
