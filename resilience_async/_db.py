"""PostgreSQL access: a primary pool, one pool per streaming replica, and the routing between.

    async with Database(primary_url=..., replica_urls=[...], primary_guard=breaker) as db:
        written = await db.write(insert_order)  # on the primary; written.token
        read = await db.read(load_order, token=written.token)  # a replica that has the write

Reads go to the freshest usable replica (a background `Monitor` measures each one's replay
lag); a read carrying a consistency token (an LSN from an earlier write) goes to a replica
only once it has replayed past that LSN, else to the primary. A read that loses its
connection is retried once, on the next server. Writes go to the primary through a guard (a
circuit breaker): while the monitor cannot reach a writable primary they fail at once.

Pools open on the running loop (`async with`), never in the constructor, and keep reconnecting
in the background, so a database that is down at start-up or dies later makes requests
fail fast instead of the service refusing to start. `max_waiting` and `timeout` bound the
queue for a connection, so a sick database produces quick errors, not a pile-up.

Callers queue for a pool at a gate of our own (`Slots`, one slot per connection), not in
psycopg_pool's queue: a waiter there costs a lock, a condition and a task, and one that
gives up a slice of its wait rejoins at the back. At the gate a waiter is one future, keeps
its place for its whole timeout, and is woken at once when the monitor loses its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import select
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

import psycopg
from aiobreaker import CircuitBreakerState
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout, TooManyRequests

from resilience_async._breaker import CircuitBreaker
from resilience_async._deadline import firm_timeout
from resilience_async._errors import (
    CircuitOpenError,
    DatabaseUnavailableError,
    NoPrimaryError,
    PoolExhaustedError,
    ResilienceError,
    SaturatedError,
    WriteOutcomeUnknownError,
)
from resilience_async._hedge import Hedge
from resilience_async._hooks import Hooked
from resilience_async._lsn import parse_lsn
from resilience_async._outliers import LatencyRouting
from resilience_async._resource import AsyncResource
from resilience_async._slots import Slots
from resilience_async._topology import Monitor, ServerState

T = TypeVar("T")
# Past its query timeout, the seconds a query's server-side cancel may take before the
# connection is dropped instead (a server behind a black hole never answers the cancel).
CANCEL_GRACE = 0.5
MIN_CHECKOUT_WAIT = 0.01  # seconds: a slot taken at its deadline still gets a ready connection
Connection = psycopg.AsyncConnection[TupleRow]
Query = Callable[[Connection], Awaitable[T]]
Route = tuple[ServerState, AsyncConnectionPool[Connection]]
QueryKind = Literal["read", "write"]
QueryOutcome = Literal["ok", "failed"]

# After a commit, the insert position is at or past the end of the commit record: a server
# that has made this position visible has made the write visible.
_TOKEN_SQL = "SELECT pg_current_wal_insert_lsn()::text"  # noqa: S105 - SQL, not a secret
_VISIBLE_SQL = """
SELECT (CASE WHEN pg_is_in_recovery() THEN COALESCE(pg_last_wal_replay_lsn(), '0/0')
             ELSE pg_current_wal_insert_lsn() END)::text
"""
# Replicas within this many seconds of the freshest one take turns.
_LAG_TIE = 0.1


@dataclass(frozen=True, slots=True)
class ReadResult(Generic[T]):
    """What a read returned, and which server (`primary`, `replica-1`...) served it."""

    value: T
    server: str


@dataclass(frozen=True, slots=True)
class WriteResult(Generic[T]):
    """What a write returned, and its consistency token (the LSN after its commit)."""

    value: T
    token: str


class DatabaseHook(Protocol):
    """Told of every read and write (by server, kind and outcome) and of every monitor sample."""

    def record_query(self, server: str, kind: QueryKind, outcome: QueryOutcome, /) -> None: ...

    def record_sample(self, state: ServerState, /) -> None: ...


class _Idle:
    """Whether a late read is worth a hedge (`Hedge`'s `worth_it`): while nobody queues at
    its pool's gate. While others queue, this process keeps the server as busy as its pool
    allows, its answers are as late as the work it is given, and a hedge adds work where the
    time goes (measured: up to a fifth of the read route's throughput at saturation). A read
    late while the gate is free is late because of the server (or the connection to it)."""

    __slots__ = ("gate",)

    def __init__(self, gate: Slots) -> None:
        self.gate = gate

    def __call__(self) -> bool:
        return not self.gate.waiting


class _NotCaughtUp(Exception):
    """The replica has not replayed the read's token yet: try the next server."""


def describe_hosts(url: str) -> str:
    """`host:port[,host:port...]` of a libpq URL, for logs and health details (no password)."""
    params = conninfo_to_dict(url)
    hosts = str(params.get("host", "")).split(",")
    ports = str(params.get("port", "5432")).split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    return ",".join(f"{host}:{port}" for host, port in zip(hosts, ports, strict=False))


def counts_against_database(exc: BaseException) -> bool:
    """The primary guard's failure rule: the server was unreachable, not the input wrong."""
    return isinstance(exc, DatabaseUnavailableError)


async def check_idle_connection(conn: Connection) -> None:
    """Checkout check that costs a system call, not a round trip.

    An idle connection has nothing to read: if its socket is readable, the server closed it
    or sent something unasked (a termination notice), and the full round-trip check decides.
    A dead connection is never handed out; a healthy one costs one `poll()`.
    """
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    if poller.poll(0):
        await AsyncConnectionPool.check_connection(conn)


class Database(AsyncResource, Hooked[DatabaseHook]):
    """The primary pool, the replica pools and the monitor of one service process.

    Built closed: `async with database:` opens the pools and starts the monitor on the
    running loop, and `aclose()` (or leaving the block) closes them.

    Args:
        primary_url: libpq URL of the primary; several hosts with
            `target_session_attrs=read-write` let a promoted replica be found on reconnect.
        replica_urls: one libpq URL per streaming replica.
        min_size, max_size: connections per pool.
        timeout: seconds a caller waits for a pooled primary connection before an error.
        replica_timeout: seconds a read waits for a replica connection before trying the
            next server (short: the primary can take the read).
        max_waiting: callers allowed to queue for a connection; more fail at once.
        connect_timeout: seconds to establish one connection.
        query_timeout: seconds one read or write may take once it has its connection.
        max_replica_lag: seconds of replay lag beyond which a replica is skipped (it is still
            used, last, for reads without a token when nothing else answers).
        monitor_interval: seconds between two samples of every server.
        reconnect_timeout: seconds a pool keeps retrying a lost connection in the background
            before it frees the slot. Short by default: a slot kept in psycopg_pool's backoff
            (1 s, 2 s, 4 s...) cannot connect when the server (or a promoted replica) is back,
            while a freed slot is refilled at once, on demand or when the monitor sees the
            server come back.
        close_timeout: seconds `aclose()` waits for connections still in use.
        primary_guard: the breaker every primary call runs through (give it
            `is_failure=counts_against_database`); the monitor opens it as soon as it
            loses the primary and closes it as soon as it reaches a writable one again.
        hooks: told of every query and every monitor sample (see `DatabaseHook`).
        pool_class: the pool built for each server: `AsyncConnectionPool` or one that
            behaves like it (a subclass with a `configure` of its own, or a test's pool).
        patroni_urls: the members' Patroni REST API URLs (needs httpx): Patroni's view of
            the cluster then names the primary and the replicas that take reads, and the
            primary pool reconnects to a new leader as soon as Patroni lists it (see
            `Monitor`). Without them, a promoted server is found on reconnect.
        latency: latency-aware reads (`LatencyRouting`): each server's latency estimate
            ranks the replicas, and a replica much slower than its peers is ejected for a
            while (its reads go to the other replicas, then to the primary within its share
            of the primary's connections). None: replay lag alone decides, as before.
        hedge: hedged reads (`Hedge`): a read still unanswered after the hedge's delay is
            also started on the next eligible server (another replica, or the primary), and
            the first answer wins. None: no hedging.
    """

    def __init__(
        self,
        *,
        primary_url: str,
        replica_urls: list[str],
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 2.0,
        replica_timeout: float = 0.5,
        max_waiting: int = 100,
        connect_timeout: float = 2.0,
        query_timeout: float = 5.0,
        max_replica_lag: float = 5.0,
        monitor_interval: float = 0.5,
        reconnect_timeout: float = 0.0,
        close_timeout: float = 5.0,
        primary_guard: CircuitBreaker | None = None,
        hooks: Iterable[DatabaseHook] = (),
        pool_class: type[AsyncConnectionPool[Connection]] = AsyncConnectionPool,
        patroni_urls: Iterable[str] = (),
        latency: LatencyRouting | None = None,
        hedge: Hedge[Any] | None = None,
    ) -> None:
        if not 0 <= min_size <= max_size:
            raise ValueError(
                f"pool sizes need 0 <= min_size <= max_size, got {min_size}, {max_size}"
            )
        self.primary_url = primary_url
        self.replica_urls = list(replica_urls)
        self.max_replica_lag = max_replica_lag
        self._timeout = timeout
        self._replica_timeout = replica_timeout
        self._query_timeout = query_timeout
        self._close_timeout = close_timeout
        self._guard = primary_guard
        self.monitor = Monitor(
            primary_url,
            self.replica_urls,
            interval=monitor_interval,
            timeout=max(connect_timeout, 0.5),
            connect_timeout=connect_timeout,
            on_change=self._server_changed,
            on_sample=self._sampled,
            patroni_urls=list(patroni_urls),
            on_primary_url=self._primary_moved,
        )
        self._pool_options: dict[str, Any] = {
            "min_size": min_size,
            "max_size": max_size,
            "max_waiting": 0,  # unbounded there: the gates (below) bound the queue
            "reconnect_timeout": reconnect_timeout,
            "check": check_idle_connection,
            "open": False,
        }
        self._connect_timeout = max(1, round(connect_timeout))  # libpq takes whole seconds
        self._pool_class = pool_class
        self.primary = self._pool(primary_url, "primary", timeout)
        self.replicas = [
            self._pool(url, state.name, replica_timeout)
            for url, state in zip(self.replica_urls, self.monitor.replicas, strict=True)
        ]
        self._max_waiting = max_waiting
        self._gates = {pool.name: Slots(max_size) for pool in (self.primary, *self.replicas)}
        self._turn = itertools.count()
        self._refills: set[asyncio.Task[None]] = set()
        self._queries: dict[tuple[str, QueryKind, QueryOutcome], int] = {}
        self._hooks = tuple(hooks)
        self.latency = latency
        self.hedge = hedge
        self._primary_reads = 0  # reads running on the primary now
        self._primary_read_share = max_size
        if latency is not None:
            latency.track("primary", [state.name for state in self.monitor.replicas])
            self._primary_read_share = max(1, int(latency.primary_share * max_size))

    def _pool(self, url: str, name: str, timeout: float) -> AsyncConnectionPool[Connection]:
        kwargs = {
            "connect_timeout": self._connect_timeout,
            "autocommit": True,
            "application_name": f"resilience-pool:{name}",
        }
        return self._pool_class(url, name=name, timeout=timeout, kwargs=kwargs,
                                **self._pool_options)  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """Queries and servers as numbers: what a dashboard or a test reads.

        Keys: `queries` ("primary.read.ok" -> count, by server, kind and outcome),
        `servers` (name -> up, lag and latency in seconds, from the monitor's last sample;
        with `latency`, also its `estimate` in seconds, `ejected` (why, or None) and
        `ejections` so far), `pools` (name -> psycopg_pool's own `get_stats()`, with the
        gate's `gate_in_use` and `gate_waiting`: the callers holding a connection and those
        queued for one), `primary_reads` (reads running on the primary now) and, with a
        `hedge`, `hedge` (its `stats()`).
        """
        states = (self.monitor.primary, *self.monitor.replicas)
        servers: dict[str, dict[str, Any]] = {
            s.name: {"up": s.up, "lag": s.lag, "latency": s.latency} for s in states
        }
        if self.latency is not None:
            for name, routing in self.latency.stats().items():
                servers[name].update(routing)
        stats = {
            "queries": {".".join(key): count for key, count in sorted(self._queries.items())},
            "servers": servers,
            "pools": {pool.name: self._pool_stats(pool) for pool in (self.primary, *self.replicas)},
            "primary_reads": self._primary_reads,
        }
        if self.hedge is not None:
            stats["hedge"] = self.hedge.stats()
        return stats

    def _pool_stats(self, pool: AsyncConnectionPool[Connection]) -> dict[str, int]:
        gate = self._gates[pool.name]
        return {**pool.get_stats(), "gate_in_use": gate.taken, "gate_waiting": gate.waiting}

    def _record(self, server: str, kind: QueryKind, outcome: QueryOutcome) -> None:
        key = (server, kind, outcome)
        self._queries[key] = self._queries.get(key, 0) + 1
        for hook in self._hooks:
            hook.record_query(server, kind, outcome)

    def _sampled(self, state: ServerState) -> None:
        latency = self.latency
        if latency is not None:
            if state.up:  # what judges a server, and how an ejected one is watched
                latency.sample(state.name, state.latency)
            routing = latency.server(state.name)
            out = state is not self.monitor.primary and latency.ejected(state.name)
            state.estimate = routing.samples.value
            state.ejected = routing.reason if out else None
            state.ejections = routing.total_ejections
        for hook in self._hooks:
            hook.record_sample(state)

    # --- lifecycle ----------------------------------------------------------------------
    async def _open(self) -> None:
        """Start every pool's connection attempts and the monitor, without waiting for them."""
        for pool in (self.primary, *self.replicas):
            await pool.open(wait=False)
        await self.monitor._open()  # the monitor is ours: opened and closed with us

    async def aclose(self) -> None:
        """Stop the monitor; close every pool, waiting at most `close_timeout` for those in use."""
        await self.monitor.aclose()
        if self.hedge is not None:
            await self.hedge.aclose()  # its losers give their connections back first
        for refill in list(self._refills):
            refill.cancel()
        pools = (self.primary, *self.replicas)
        await asyncio.gather(*(pool.close(self._close_timeout) for pool in pools))

    def _server_changed(self, state: ServerState) -> None:
        """A server came up or went down: move the primary's guard, refill a revived pool."""
        if state is self.monitor.primary:
            self._primary_changed(state.up)
        pool = self.primary if state is self.monitor.primary else self._replica_pool(state)
        if not state.up:
            primary = pool is self.primary
            self._gates[pool.name].fail_waiters(
                lambda: _unavailable(state, primary, str(state.error))
            )
        else:
            refill = asyncio.create_task(pool.check(), name=f"refill-{pool.name}")
            self._refills.add(refill)
            refill.add_done_callback(self._refills.discard)

    def _primary_moved(self, url: str) -> None:
        """Patroni named a new leader: new primary connections go there first, and those to
        the old one are closed (in use: when given back), without waiting for an error."""
        self.primary.conninfo = url
        drain = asyncio.create_task(self.primary.drain(), name="drain-primary")
        self._refills.add(drain)
        drain.add_done_callback(self._refills.discard)

    def _replica_pool(self, state: ServerState) -> AsyncConnectionPool[Connection]:
        return self.replicas[self.monitor.replicas.index(state)]

    def _primary_changed(self, up: bool) -> None:
        """The monitor's verdict moves the guard at once: no request has to find out by waiting."""
        guard = self._guard
        if guard is None:
            return
        if up and guard.current_state is not CircuitBreakerState.CLOSED:
            guard.close("the monitor reached a writable primary")
        elif not up and guard.current_state is not CircuitBreakerState.OPEN:
            guard.open("the monitor lost the primary")

    # --- reads --------------------------------------------------------------------------
    async def read(self, query: Query[T], *, token: str | None = None) -> ReadResult[T]:
        """Run `query` on the best server that can serve it; retried once if it fails.

        With a `hedge`, a read still unanswered after the hedge's delay is also started on
        the next eligible server, and the first answer wins.

        Raises:
            InvalidLsnError: `token` is not an LSN.
            DatabaseUnavailableError: no server could serve it (also a `CircuitOpenError`
                when only the primary could, and its guard is open).
            PoolExhaustedError: every server that could serve it was saturated.
        """
        needed = None if token is None else parse_lsn(token)
        route, eligible = self._route(needed)
        failures: list[Exception] = []
        index = 0
        while index < len(route) and len(failures) < 2:
            state, pool = route[index]
            tried = [route[index]]  # the servers this step tried: one, or two with a hedge
            try:
                if index == 0 and eligible >= 2 and self.hedge is not None:
                    value, state = await self.hedge.run(
                        functools.partial(self._answered, state, pool, query, needed),
                        functools.partial(self._answered_next, route[1], tried, query, needed),
                        worth_it=_Idle(self._gates[pool.name]),
                    )
                else:
                    value = await self._attempt(state, pool, query, needed)
            except _NotCaughtUp:
                continue
            except (DatabaseUnavailableError, SaturatedError, CircuitOpenError) as exc:
                failures.extend([exc] * len(tried))  # a hedge fails when both attempts did
                continue
            finally:
                index += len(tried)
            return ReadResult(value, state.name)
        if failures:
            raise failures[-1]
        raise DatabaseUnavailableError("servers", "no server can serve this read")

    async def _answered(self, state: ServerState, pool: AsyncConnectionPool[Connection],
                        query: Query[T], needed: int | None) -> tuple[T, ServerState]:  # fmt: skip
        return await self._attempt(state, pool, query, needed), state

    async def _answered_next(self, entry: Route, tried: list[Route], query: Query[T],
                             needed: int | None) -> tuple[T, ServerState]:  # fmt: skip
        tried.append(entry)
        return await self._answered(*entry, query, needed)

    async def _attempt(self, state: ServerState, pool: AsyncConnectionPool[Connection],
                       query: Query[T], needed: int | None) -> T:  # fmt: skip
        """One server's try at a read, counted by outcome."""
        value: T
        try:
            if pool is self.primary:
                self._primary_reads += 1
                try:
                    value = await self._on_primary(self._read_on, pool, state, query)
                finally:
                    self._primary_reads -= 1
            else:
                value = await self._read_on(pool, state, query, needed)
        except (DatabaseUnavailableError, SaturatedError, CircuitOpenError):
            self._record(state.name, "read", "failed")
            raise
        self._record(state.name, "read", "ok")
        return value

    def read_route(self, token: str | None = None) -> list[str]:
        """The servers a read with `token` would try now, in order (the first that can serve
        it does; a read that fails is retried once, on the next)."""
        route, _ = self._route(None if token is None else parse_lsn(token))
        return [state.name for state, _ in route]

    def _route(self, needed: int | None) -> tuple[list[Route], int]:
        """The servers to try in order, and how many of the first are eligible (a hedge may
        go to the second of those): usable replicas (freshest first; among the freshest,
        the least loaded by latency, else in turn), then the primary, then the rest.

        A lagging replica comes after the primary: only a token-less read that the primary
        could not serve ends up there. A primary the monitor cannot reach is left out.

        A replica ejected as slow (`latency`) comes after the primary while the primary's
        reads hold less than its share of connections, and before it past that share: a
        slow replica still serves, rather than every read moving onto the primary.

        With Patroni, a replica server it now lists as the leader (a promotion) takes no
        reads while a true replica can, but serves them before the primary's pool when none
        can: it is reached, and its reads do not wait for the write guard to close again.
        """
        usable: list[Route] = []
        lagging: list[Route] = []
        promoted: list[Route] = []
        ejected: list[Route] = []
        latency = self.latency
        for state, pool in zip(self.monitor.replicas, self.replicas, strict=True):
            if not state.up:
                continue
            if state.excluded:
                if state.role == "leader":
                    promoted.append((state, pool))
                continue
            if state.lag > self.max_replica_lag:
                lagging.append((state, pool))
            elif latency is not None and latency.ejected(state.name):
                ejected.append((state, pool))
            else:
                usable.append((state, pool))
        order = self._by_preference(usable) if usable else promoted
        eligible = len(order)
        primary = self.monitor.primary
        if primary.up or not primary.sampled:
            if ejected and not usable and self._primary_reads >= self._primary_read_share:
                order += ejected  # the primary's share is spent: the slow replica serves
                ejected = []
            else:
                eligible += 1
            order.append((primary, self.primary))
        order += ejected
        if needed is None:
            order += sorted(lagging, key=lambda entry: entry[0].lag)
        return order, eligible

    def _by_preference(self, usable: list[Route]) -> list[Route]:
        """The freshest replicas first, taking turns; with `latency`, the least loaded of
        them first (latency estimate times the reads in flight there, plus one)."""
        usable.sort(key=lambda entry: entry[0].lag)
        ties = [entry for entry in usable if entry[0].lag <= usable[0][0].lag + _LAG_TIE]
        start = next(self._turn) % len(ties)
        ties = ties[start:] + ties[:start]
        latency = self.latency
        if latency is not None and len(ties) > 1:
            gates = self._gates
            ties.sort(key=lambda entry: latency.estimate(entry[0].name)
                      * (gates[entry[1].name].taken + 1))  # fmt: skip
        return ties + usable[len(ties) :]

    async def _read_on(
        self,
        pool: AsyncConnectionPool[Connection],
        state: ServerState,
        query: Query[T],
        needed: int | None = None,
    ) -> T:
        async with self._connection(pool, state) as conn:
            latency = self.latency
            started = time.perf_counter() if latency is not None else 0.0
            try:
                if needed is not None and state.lsn < needed:
                    cursor = await conn.execute(_VISIBLE_SQL)
                    row = await cursor.fetchone()
                    assert row is not None
                    state.saw_lsn(parse_lsn(row[0]))
                    if state.lsn < needed:
                        raise _NotCaughtUp
                value = await query(conn)
            except asyncio.CancelledError:
                # Overtaken by a hedge, or its caller gone: it took at least this long.
                if latency is not None:
                    latency.observe(state.name, time.perf_counter() - started)
                raise
            if latency is not None:
                latency.observe(state.name, time.perf_counter() - started)
            return value

    # --- writes -------------------------------------------------------------------------
    async def write(self, query: Query[T]) -> WriteResult[T]:
        """Run `query` on the primary and return its result with a consistency token.

        `query` gets an autocommit connection: a single statement commits on its own; use
        `conn.transaction()` inside it for several. A write is never retried here: the caller
        decides (an idempotency key makes a retry safe).

        Raises:
            CircuitOpenError: the primary guard is open (no primary, or failing).
            NoPrimaryError: no writable primary can be reached.
            WriteOutcomeUnknownError: the connection broke or timed out after the write was
                sent: it may or may not have committed.
            PoolExhaustedError: every primary connection was busy for `timeout` seconds.
        """
        try:
            written = await self._on_primary(
                self._write_on, self.primary, self.monitor.primary, query
            )
        except ResilienceError:
            self._record("primary", "write", "failed")
            raise
        self._record("primary", "write", "ok")
        return written

    async def _write_on(
        self, pool: AsyncConnectionPool[Connection], state: ServerState, query: Query[T]
    ) -> WriteResult[T]:
        if state.sampled and not state.up:
            raise NoPrimaryError(state.error or "unreachable")
        async with self._connection(pool, state, outcome_unknown=True) as conn:
            value = await query(conn)
            cursor = await conn.execute(_TOKEN_SQL)
            row = await cursor.fetchone()
        assert row is not None
        return WriteResult(value, row[0])  # pg_lsn's own X/Y text

    async def _on_primary(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        if self._guard is None:
            return await fn(*args)
        return await self._guard.call_async(fn, *args)

    # --- connections --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _connection(
        self,
        pool: AsyncConnectionPool[Connection],
        state: ServerState,
        *,
        outcome_unknown: bool = False,
    ) -> AsyncIterator[Connection]:
        """A pooled connection, with psycopg's failures translated to ours.

        A failure to get the connection means nothing was sent. A failure once it was held
        means a write's outcome is unknown (`outcome_unknown`), or a read may be retried.
        """
        gate = self._gates[pool.name]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pool.timeout
        await self._enter(gate, pool, state)
        try:
            conn = await self._checkout(pool, state, deadline)
        except BaseException:
            gate.give_back()
            raise
        try:
            async with firm_timeout(self._query_timeout, CANCEL_GRACE):
                yield conn
        except (psycopg.OperationalError, TimeoutError) as exc:
            detail = _describe(exc, self._query_timeout)
            if outcome_unknown:
                raise WriteOutcomeUnknownError(state.name, detail) from exc
            raise DatabaseUnavailableError(state.name, detail) from exc
        finally:
            try:
                await pool.putconn(conn)
            finally:
                gate.give_back()

    async def _enter(self, gate: Slots, pool: AsyncConnectionPool[Connection],
                     state: ServerState) -> None:  # fmt: skip
        """A slot at the pool's gate: at once, or after queueing (at most `max_waiting`
        callers, each at most the pool's timeout, unless the monitor loses the server)."""
        if gate.try_take():
            return
        if self._max_waiting and gate.waiting >= self._max_waiting:
            raise PoolExhaustedError(state.name, pool.timeout)
        if state.sampled and not state.up:
            raise _unavailable(state, pool is self.primary, str(state.error))
        if not await gate.take(pool.timeout):
            raise PoolExhaustedError(state.name, pool.timeout)

    async def _checkout(self, pool: AsyncConnectionPool[Connection], state: ServerState,
                        deadline: float) -> Connection:  # fmt: skip
        """A connection by `deadline`, waited for in slices of one monitor interval (with a
        slot at the gate the pool rarely makes anyone wait: only while it grows or
        reconnects), so that a dead server is noticed at the monitor's next sample."""
        primary = pool is self.primary
        loop = asyncio.get_running_loop()
        while True:
            # Never 0: psycopg times out at once then, even with a connection ready.
            wait = max(min(deadline - loop.time(), self.monitor.interval), MIN_CHECKOUT_WAIT)
            try:
                return await pool.getconn(wait)
            except TooManyRequests as exc:
                raise PoolExhaustedError(state.name, pool.timeout) from exc
            except PoolTimeout as exc:
                if not state.up:
                    raise _unavailable(state, primary, str(state.error)) from exc
                if loop.time() >= deadline:  # the server answers: our pool is just busy
                    raise PoolExhaustedError(state.name, pool.timeout) from exc
            except PoolClosed as exc:
                raise _unavailable(state, primary, "pool closed") from exc


def _unavailable(state: ServerState, primary: bool, detail: str) -> DatabaseUnavailableError:
    return NoPrimaryError(detail) if primary else DatabaseUnavailableError(state.name, detail)


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError) and not isinstance(exc, psycopg.Error):
        return f"no answer within {timeout:.2f} s"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
