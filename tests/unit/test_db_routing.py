"""Database routing without a server: the read route, read retries, write refusals.

Servers are stood in for at the seam `Database` offers, `pool_class`: each `FakePool` hands
out connections whose queries answer (or fail) as the test says. The monitor's server
states are set by hand. Everything else (routing, retries, the guard, psycopg's errors
translated into ours) is the real code.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiobreaker
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, PoolClosed, TooManyRequests

from resilience_async import (
    CircuitBreaker,
    CircuitOpenError,
    Database,
    DatabaseUnavailableError,
    InvalidLsnError,
    Monitor,
    NoPrimaryError,
    PoolExhaustedError,
    ReadResult,
    ServerState,
    WriteOutcomeUnknownError,
    counts_against_database,
    parse_lsn,
)
from resilience_async._db import check_idle_connection
from tests.fakes import FakeClock

CLOSED = aiobreaker.CircuitBreakerState.CLOSED
OPEN = aiobreaker.CircuitBreakerState.OPEN

PRIMARY_URL = "postgresql://u@127.0.0.1:1/x"
REPLICA_URLS = ["postgresql://u@127.0.0.1:2/x", "postgresql://u@127.0.0.1:3/x"]
_names = itertools.count()


# --- the seam: a pool per server, answering as the test says ------------------------------


class FakeCursor:
    def __init__(self, row: tuple[Any, ...]) -> None:
        self._row = row

    async def fetchone(self) -> tuple[Any, ...]:
        return self._row


class FakeConnection:
    """A server's connection: the only SQL the Database itself sends asks for a WAL position
    (the token check, and a write's token), answered with the server's `visible` one."""

    def __init__(self, pool: FakePool) -> None:
        self.pool = pool

    async def execute(self, sql: str, params: Any = None) -> FakeCursor:
        self.pool.positions_asked += 1
        return FakeCursor((self.pool.visible,))


class FakePool:
    """One server's pool, built by `Database` through `pool_class`.

    Attributes set by tests: `answer` (what a query on this server returns, or the exception
    it raises), `refuse` (an exception `getconn` raises instead), `visible` (the WAL position
    the server has made visible). Counted: `checkouts`, `queries`, `positions_asked`.
    """

    def __init__(self, conninfo: str, *, name: str, timeout: float, **options: Any) -> None:
        self.conninfo = conninfo
        self.name = name
        self.timeout = timeout
        self.closed = True
        self.answer: Any = name
        self.refuse: BaseException | None = None
        self.visible = "0/0"
        self.checkouts = self.queries = self.positions_asked = 0

    async def open(self, wait: bool = False) -> None:
        self.closed = False

    async def close(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - psycopg_pool's
        self.closed = True

    async def check(self) -> None: ...

    async def getconn(self, timeout: float | None = None) -> FakeConnection:  # noqa: ASYNC109
        self.checkouts += 1
        if self.closed:
            raise PoolClosed(f"the pool {self.name!r} is not open")
        if self.refuse is not None:
            raise self.refuse
        return FakeConnection(self)

    async def putconn(self, conn: FakeConnection) -> None: ...

    def get_stats(self) -> dict[str, int]:
        return {"requests_num": self.checkouts}


async def query(conn: FakeConnection) -> Any:
    """The query every test reads or writes: its server's `answer`, or its exception."""
    conn.pool.queries += 1
    answer = conn.pool.answer
    if isinstance(answer, BaseException):
        raise answer
    return answer


def pool(db: Database, name: str) -> FakePool:
    pools = {p.name: p for p in (db.primary, *db.replicas)}
    return pools[name]  # type: ignore[return-value]


def queried(db: Database) -> list[str]:
    """The servers whose connection ran the query, in the order the pools were built."""
    return [p.name for p in (db.replicas[0], db.replicas[1], db.primary) if p.queries]


def lost(server: str) -> psycopg.OperationalError:
    return psycopg.OperationalError(f"{server}: server closed the connection unexpectedly")


# --- helpers ----------------------------------------------------------------------------


def mark_up(state: ServerState, *, lag: float = 0.0, lsn: int = 0, replica: bool = True) -> None:
    """A state as a successful sample leaves it."""
    state.up = True
    state.sampled = True
    state.error = None
    state.in_recovery = replica
    state.lag = lag
    state.lsn = lsn


def mark_down(state: ServerState, error: str = "connection refused") -> None:
    """A state as a failed sample leaves it."""
    state.up = False
    state.sampled = True
    state.error = error


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def make_guard(clock: FakeClock) -> Callable[..., CircuitBreaker]:
    """A primary guard as the service builds one, on the fake clock, without default hooks."""

    def build(**settings: Any) -> CircuitBreaker:
        settings.setdefault("name", f"db-test-{next(_names)}")
        settings.setdefault("is_failure", counts_against_database)
        settings.setdefault("failure_threshold", 2)
        settings.setdefault("failure_rate_threshold", None)
        settings.setdefault("default_hooks", False)
        settings.setdefault("clock", clock)
        return CircuitBreaker(**settings)

    return build


@pytest.fixture
def make_db() -> Callable[..., Database]:
    def build(**settings: Any) -> Database:
        settings.setdefault("primary_url", PRIMARY_URL)
        settings.setdefault("replica_urls", REPLICA_URLS)
        settings.setdefault("pool_class", FakePool)
        return Database(**settings)

    return build


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db()


async def open_pools(db: Database) -> Database:
    """Open the pools, not the monitor: server states stay as the test sets them."""
    for each in (db.primary, *db.replicas):
        await each.open()
    return db


@pytest.fixture
async def healthy(db: Database) -> Database:
    """Primary up, replica-1 fresher than replica-2 (no tie): replica-1, replica-2, primary."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=0.0)
    mark_up(db.monitor.replicas[1], lag=1.0)
    return await open_pools(db)


# --- construction -----------------------------------------------------------------------


def test_pools_are_built_closed_and_named_after_their_servers(db: Database) -> None:
    """One closed pool per server, named like the monitor's states; nothing connects."""
    assert db.primary.closed
    assert all(pool.closed for pool in db.replicas)
    assert db.primary.name == db.monitor.primary.name == "primary"
    assert [pool.name for pool in db.replicas] == ["replica-1", "replica-2"]
    assert [state.name for state in db.monitor.replicas] == ["replica-1", "replica-2"]


def test_rejects_pool_sizes_out_of_order(make_db: Callable[..., Database]) -> None:
    with pytest.raises(ValueError, match="min_size"):
        make_db(min_size=3, max_size=2)


# --- read order -------------------------------------------------------------------------


def test_read_order_puts_the_freshest_replica_first_then_the_primary(db: Database) -> None:
    """Replicas by lag (lowest first), then the primary."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=2.0)
    mark_up(db.monitor.replicas[1], lag=0.5)
    assert db.read_route() == ["replica-2", "replica-1", "primary"]
    # Not within the tie margin: the freshest stays first call after call.
    assert db.read_route() == ["replica-2", "replica-1", "primary"]


def test_read_order_rotates_replicas_within_the_tie_margin(db: Database) -> None:
    """Replicas within 0.1 s of the freshest take turns at the head of successive orders."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=0.0)
    mark_up(db.monitor.replicas[1], lag=0.05)
    first = db.read_route()
    second = db.read_route()
    third = db.read_route()
    assert first[0] != second[0]
    assert {first[0], second[0]} == {"replica-1", "replica-2"}
    assert third[0] == first[0]
    for order in (first, second, third):
        assert sorted(order[:2]) == ["replica-1", "replica-2"]
        assert order[2] == "primary"


def test_read_order_rotation_applies_to_token_reads_too(db: Database) -> None:
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=0.1)
    mark_up(db.monitor.replicas[1], lag=0.0)
    heads = [db.read_route("0/10")[0] for _ in range(2)]
    assert sorted(heads) == ["replica-1", "replica-2"]


def test_lagging_replica_comes_after_the_primary_for_token_less_reads(db: Database) -> None:
    """Lag above max_replica_lag: last resort for a read without a token, after the primary."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=db.max_replica_lag + 5)
    mark_up(db.monitor.replicas[1], lag=0.0)
    assert db.read_route() == ["replica-2", "primary", "replica-1"]


def test_lagging_replica_is_left_out_of_token_reads(db: Database) -> None:
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=db.max_replica_lag + 5)
    mark_up(db.monitor.replicas[1], lag=0.0)
    assert db.read_route("0/3044D18") == ["replica-2", "primary"]


def test_lagging_replicas_come_least_lagging_first(db: Database) -> None:
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=db.max_replica_lag + 20)
    mark_up(db.monitor.replicas[1], lag=db.max_replica_lag + 10)
    assert db.read_route() == ["primary", "replica-2", "replica-1"]
    assert db.read_route("0/1") == ["primary"]


def test_replica_at_exactly_the_lag_limit_is_still_usable(
    make_db: Callable[..., Database],
) -> None:
    db = make_db(max_replica_lag=2.0)
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=2.0)
    mark_up(db.monitor.replicas[1], lag=2.5)
    assert db.read_route() == ["replica-1", "primary", "replica-2"]


def test_replica_that_is_down_is_left_out(db: Database) -> None:
    mark_up(db.monitor.primary, replica=False)
    mark_down(db.monitor.replicas[0])
    mark_up(db.monitor.replicas[1], lag=0.0)
    assert db.read_route() == ["replica-2", "primary"]
    assert db.read_route("0/1") == ["replica-2", "primary"]


def test_replica_not_yet_sampled_is_left_out(db: Database) -> None:
    """A replica starts as not up: it serves nothing until a sample reaches it."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[1], lag=0.0)
    assert not db.monitor.replicas[0].sampled
    assert db.read_route() == ["replica-2", "primary"]


def test_primary_sampled_down_is_left_out(db: Database) -> None:
    mark_down(db.monitor.primary)
    mark_up(db.monitor.replicas[0], lag=0.0)
    mark_up(db.monitor.replicas[1], lag=db.max_replica_lag + 1)
    assert db.read_route() == ["replica-1", "replica-2"]
    assert db.read_route("0/1") == ["replica-1"]


def test_primary_not_yet_sampled_is_kept(db: Database) -> None:
    """Before the first sample the primary is given the benefit of the doubt."""
    assert not db.monitor.primary.sampled
    assert db.read_route() == ["primary"]
    mark_up(db.monitor.replicas[0], lag=0.0)
    assert db.read_route("0/1") == ["replica-1", "primary"]


def test_nothing_usable_gives_an_empty_order(db: Database) -> None:
    mark_down(db.monitor.primary)
    mark_down(db.monitor.replicas[0])
    mark_down(db.monitor.replicas[1])
    assert db.read_route() == []


def test_replicas_outside_the_tie_group_come_freshest_first(
    make_db: Callable[..., Database],
) -> None:
    """With three replicas the ones after the tie group should still be ordered by lag."""
    db = make_db(replica_urls=[*REPLICA_URLS, "postgresql://u@127.0.0.1:4/x"])
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=3.0)
    mark_up(db.monitor.replicas[1], lag=1.0)
    mark_up(db.monitor.replicas[2], lag=0.0)
    assert db.read_route() == ["replica-3", "replica-2", "replica-1", "primary"]


# --- read -------------------------------------------------------------------------------


async def test_read_is_served_by_the_first_server(healthy: Database) -> None:
    assert await healthy.read(query) == ReadResult("replica-1", "replica-1")
    assert queried(healthy) == ["replica-1"]


async def test_read_whose_connection_breaks_is_retried_on_the_next_server(
    healthy: Database,
) -> None:
    """psycopg's OperationalError is the server's failure: translated, then the next server."""
    pool(healthy, "replica-1").answer = lost("replica-1")
    assert await healthy.read(query) == ReadResult("replica-2", "replica-2")
    assert queried(healthy) == ["replica-1", "replica-2"]


async def test_read_finding_the_first_pool_saturated_is_retried_on_the_next(
    healthy: Database,
) -> None:
    pool(healthy, "replica-1").refuse = TooManyRequests("too many requests waiting")
    assert await healthy.read(query) == ReadResult("replica-2", "replica-2")
    assert queried(healthy) == ["replica-2"]


async def test_read_stops_after_two_failures_and_raises_the_last(healthy: Database) -> None:
    pool(healthy, "replica-1").answer = lost("replica-1")
    pool(healthy, "replica-2").answer = lost("replica-2")
    with pytest.raises(DatabaseUnavailableError) as caught:
        await healthy.read(query)
    assert caught.value.server == "replica-2"
    assert "replica-2: server closed the connection" in caught.value.detail
    assert queried(healthy) == ["replica-1", "replica-2"]  # the primary was never tried


async def test_read_behind_the_token_skips_without_counting_as_a_failure(
    healthy: Database,
) -> None:
    """A replica that has not replayed the token is skipped, not failed: one failure later,
    the read is still retried (here on the primary, which has every write)."""
    pool(healthy, "replica-1").visible = "0/3044D17"  # one byte short of the token
    pool(healthy, "replica-2").visible = "0/3044D18"
    pool(healthy, "replica-2").answer = lost("replica-2")
    result = await healthy.read(query, token="0/3044D18")
    assert result == ReadResult("primary", "primary")
    assert queried(healthy) == ["replica-2", "primary"]
    assert [p.positions_asked for p in (*healthy.replicas, healthy.primary)] == [1, 1, 0]


async def test_a_replica_that_has_replayed_the_token_serves_it(healthy: Database) -> None:
    pool(healthy, "replica-1").visible = "0/3044D18"
    assert await healthy.read(query, token="0/3044D18") == ReadResult("replica-1", "replica-1")


async def test_a_replica_known_to_be_past_the_token_is_not_asked_again(
    healthy: Database,
) -> None:
    """The monitor's last sample already shows the position: no extra round trip."""
    healthy.monitor.replicas[0].saw_lsn(parse_lsn("0/3044D18"))
    assert await healthy.read(query, token="0/3044D18") == ReadResult("replica-1", "replica-1")
    assert pool(healthy, "replica-1").positions_asked == 0


async def test_read_behind_the_token_everywhere_and_no_primary_is_unavailable(
    db: Database,
) -> None:
    mark_down(db.monitor.primary)
    mark_up(db.monitor.replicas[0], lag=0.0)
    mark_up(db.monitor.replicas[1], lag=0.0)
    await open_pools(db)
    with pytest.raises(DatabaseUnavailableError) as caught:
        await db.read(query, token="0/10")
    assert type(caught.value) is DatabaseUnavailableError
    assert caught.value.detail == "no server can serve this read"
    assert [p.positions_asked for p in db.replicas] == [1, 1]
    assert queried(db) == []


async def test_read_with_no_server_at_all_is_unavailable(db: Database) -> None:
    mark_down(db.monitor.primary)  # the replicas were never sampled: not up either
    with pytest.raises(DatabaseUnavailableError) as caught:
        await db.read(query)
    assert type(caught.value) is DatabaseUnavailableError
    assert caught.value.server == "servers"
    assert caught.value.detail == "no server can serve this read"
    assert [p.checkouts for p in (db.primary, *db.replicas)] == [0, 0, 0]


@pytest.mark.parametrize("token", ["", "not-an-lsn", "0/", "1/2/3", "G/0"])
async def test_read_with_an_invalid_token_raises_before_anything_runs(
    healthy: Database, token: str
) -> None:
    with pytest.raises(InvalidLsnError):
        await healthy.read(query, token=token)
    assert [p.checkouts for p in (healthy.primary, *healthy.replicas)] == [0, 0, 0]
    # No route was taken either: replicas tied on lag still start with the first one.
    mark_up(healthy.monitor.replicas[1], lag=0.0)
    assert healthy.read_route()[0] == "replica-1"


async def test_read_error_that_is_not_about_the_server_is_not_retried(
    healthy: Database,
) -> None:
    """A query's own error (bad input, a bug) goes to the caller from the first server."""
    pool(healthy, "replica-1").answer = ValueError("bad")
    with pytest.raises(ValueError, match="bad"):
        await healthy.read(query)
    assert queried(healthy) == ["replica-1"]


async def test_read_refused_by_the_open_primary_guard_falls_through_to_the_next_server(
    make_db: Callable[..., Database], make_guard: Callable[..., CircuitBreaker]
) -> None:
    """The primary's open guard counts as one failure; the lagging replica after it serves."""
    guard = make_guard()
    db = await open_pools(make_db(primary_guard=guard))
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=db.max_replica_lag + 10)
    mark_down(db.monitor.replicas[1])
    guard.open()
    assert db.read_route() == ["primary", "replica-1"]
    assert await db.read(query) == ReadResult("replica-1", "replica-1")
    assert db.primary.checkouts == 0  # the guard refused: the primary was never asked
    assert guard.current_state is OPEN


async def test_read_only_the_primary_could_serve_and_its_guard_is_open(
    make_db: Callable[..., Database], make_guard: Callable[..., CircuitBreaker]
) -> None:
    guard = make_guard()
    db = await open_pools(make_db(primary_guard=guard))
    mark_up(db.monitor.primary, replica=False)
    guard.open()
    with pytest.raises(CircuitOpenError):
        await db.read(query)
    assert db.primary.checkouts == 0


async def test_read_on_the_primary_goes_through_the_guard(
    make_db: Callable[..., Database], make_guard: Callable[..., CircuitBreaker]
) -> None:
    """Primary reads count in its guard: two unavailable reads open it."""
    guard = make_guard(failure_threshold=2)
    db = await open_pools(make_db(primary_guard=guard))
    mark_up(db.monitor.primary, replica=False)
    db.primary.answer = lost("primary")  # type: ignore[attr-defined]
    for _ in range(2):
        with pytest.raises(DatabaseUnavailableError):
            await db.read(query)
    assert guard.current_state is OPEN


async def test_reads_and_writes_are_counted_by_server_and_outcome(healthy: Database) -> None:
    pool(healthy, "replica-1").answer = lost("replica-1")
    await healthy.read(query)
    await healthy.write(query)
    assert healthy.stats()["queries"] == {
        "primary.write.ok": 1, "replica-1.read.failed": 1, "replica-2.read.ok": 1,
    }  # fmt: skip


# --- write ------------------------------------------------------------------------------


async def test_a_write_returns_its_value_and_the_position_after_it(healthy: Database) -> None:
    healthy.primary.visible = "0/3044D18"  # type: ignore[attr-defined]
    written = await healthy.write(query)
    assert (written.value, written.token) == ("primary", "0/3044D18")


async def test_a_write_whose_connection_breaks_has_an_unknown_outcome(healthy: Database) -> None:
    """Sent, then lost: it may have committed. Not retried (the caller decides)."""
    healthy.primary.answer = lost("primary")  # type: ignore[attr-defined]
    with pytest.raises(WriteOutcomeUnknownError) as caught:
        await healthy.write(query)
    assert caught.value.server == "primary"
    assert healthy.primary.queries == 1  # type: ignore[attr-defined]


async def test_write_with_the_primary_sampled_down_raises_no_primary(db: Database) -> None:
    mark_down(db.monitor.primary, error="x")
    with pytest.raises(NoPrimaryError) as caught:
        await db.write(query)
    assert caught.value.server == "primary"
    assert caught.value.detail == "x"
    assert db.primary.checkouts == 0  # type: ignore[attr-defined]


async def test_write_to_a_primary_not_yet_sampled_tries_the_pool(db: Database) -> None:
    """Not sampled yet: the write is attempted; the closed pool answers NoPrimaryError."""
    with pytest.raises(NoPrimaryError) as caught:
        await db.write(query)
    assert caught.value.detail == "pool closed"


async def test_writes_refused_for_want_of_a_primary_open_the_guard(
    make_db: Callable[..., Database], make_guard: Callable[..., CircuitBreaker]
) -> None:
    guard = make_guard(failure_threshold=2)
    db = make_db(primary_guard=guard)
    mark_down(db.monitor.primary, error="x")
    for _ in range(2):
        with pytest.raises(NoPrimaryError):
            await db.write(query)
    assert guard.current_state is OPEN
    with pytest.raises(CircuitOpenError) as caught:
        await db.write(query)
    assert caught.value.breaker == guard.name
    assert caught.value.retry_after > 0
    assert db.primary.checkouts == 0  # type: ignore[attr-defined]


# --- the gate: callers queue for a pool's connections at our own FIFO -------------------


async def held(db: Database, release: asyncio.Event, order: list[str], name: str) -> Any:
    """A write that holds its connection until `release`, noting when it got it."""

    async def hold(conn: Any) -> str:
        order.append(name)
        await release.wait()
        return name

    return (await db.write(hold)).value


async def one_connection(make_db: Callable[..., Database], **settings: Any) -> Database:
    """A database whose primary (up) has one connection."""
    db = make_db(max_size=1, **settings)
    mark_up(db.monitor.primary, replica=False)
    return await open_pools(db)


async def queued(db: Database, count: int = 1) -> None:
    """Wait (bounded) until `count` callers queue at the primary's gate."""
    for _ in range(1000):
        if db.stats()["pools"]["primary"]["gate_waiting"] >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} callers never queued")


async def test_callers_past_the_pool_size_queue_in_order_and_past_max_waiting_are_refused(
    make_db: Callable[..., Database],
) -> None:
    """One connection, two waiters allowed: the third caller is refused at once (nothing was
    sent), and the two queued get the connection in the order they came."""
    db = await one_connection(make_db, max_waiting=2, timeout=60.0)
    release, order = asyncio.Event(), []
    first = asyncio.create_task(held(db, release, order, "first"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(held(db, release, order, name)) for name in ("a", "b")]
    await queued(db, 2)

    with pytest.raises(PoolExhaustedError):
        await db.write(lambda conn: asyncio.sleep(0))
    release.set()
    await asyncio.gather(first, *waiting)

    assert order == ["first", "a", "b"]
    assert pool(db, "primary").checkouts == 3  # the refused caller never reached the pool
    assert db.stats()["pools"]["primary"]["gate_in_use"] == 0


async def test_a_caller_queued_past_the_pool_timeout_is_refused_as_saturated(
    make_db: Callable[..., Database],
) -> None:
    db = await one_connection(make_db, timeout=0.05)
    release, order = asyncio.Event(), []
    holder = asyncio.create_task(held(db, release, order, "holder"))
    await asyncio.sleep(0)

    with pytest.raises(PoolExhaustedError):
        await db.write(lambda conn: asyncio.sleep(0))
    release.set()
    await holder
    assert db.stats()["pools"]["primary"]["gate_waiting"] == 0


async def test_callers_queued_for_a_server_the_monitor_loses_are_told_at_once(
    make_db: Callable[..., Database],
) -> None:
    """The monitor's verdict wakes every caller queued for the lost server (a pool timeout
    of a minute is not waited out); the holder keeps its connection."""
    db = await one_connection(make_db, timeout=60.0)
    release, order = asyncio.Event(), []
    holder = asyncio.create_task(held(db, release, order, "holder"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(held(db, release, order, n)) for n in ("a", "b")]
    await queued(db, 2)

    mark_down(db.monitor.primary, "connection refused")
    db._server_changed(db.monitor.primary)  # what the monitor calls after such a sample
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    release.set()

    assert [type(outcome) for outcome in outcomes] == [NoPrimaryError, NoPrimaryError]
    assert all("connection refused" in str(outcome) for outcome in outcomes)
    assert outcomes[0] is not outcomes[1]  # each caller its own exception
    assert await holder == "holder"


def test_counts_against_database_only_counts_unreachable_servers() -> None:
    assert counts_against_database(DatabaseUnavailableError("replica-1", "lost"))
    assert counts_against_database(NoPrimaryError("x"))
    assert not counts_against_database(PoolExhaustedError("primary", 2.0))
    assert not counts_against_database(ValueError("bad input"))
    assert not counts_against_database(psycopg.errors.UniqueViolation("duplicate"))


# --- checkout check ---------------------------------------------------------------------


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the pool's round-trip check by one that records the connection it was given."""
    calls: list[Any] = []

    async def check_connection(conn: Any) -> None:
        calls.append(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(check_connection))
    return calls


def fake_connection(sock: socket.socket) -> Any:
    return SimpleNamespace(pgconn=SimpleNamespace(socket=sock.fileno()))


async def test_idle_connection_with_nothing_to_read_skips_the_full_check(
    full_checks: list[Any],
) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        await check_idle_connection(fake_connection(ours))
    assert full_checks == []


async def test_idle_connection_with_unasked_bytes_gets_the_full_check(
    full_checks: list[Any],
) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(b"E")  # a termination notice, say
        conn = fake_connection(ours)
        await check_idle_connection(conn)
    assert full_checks == [conn]


async def test_idle_connection_closed_by_the_server_gets_the_full_check(
    full_checks: list[Any],
) -> None:
    ours, theirs = socket.socketpair()
    with ours:
        theirs.close()
        conn = fake_connection(ours)
        await check_idle_connection(conn)
    assert full_checks == [conn]


async def test_idle_connection_failing_the_full_check_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The full check's error reaches the pool, which then discards the connection."""

    async def check_connection(conn: Any) -> None:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(check_connection))
    ours, theirs = socket.socketpair()
    with ours:
        theirs.close()
        with pytest.raises(psycopg.OperationalError):
            await check_idle_connection(fake_connection(ours))


# --- topology ---------------------------------------------------------------------------


def test_saw_lsn_never_moves_backwards() -> None:
    state = ServerState("replica-1")
    assert state.lsn == 0
    state.saw_lsn(100)
    assert state.lsn == 100
    state.saw_lsn(50)
    assert state.lsn == 100
    state.saw_lsn(100)
    assert state.lsn == 100
    state.saw_lsn(parse_lsn("1/0"))
    assert state.lsn == 1 << 32


def test_server_state_starts_down_and_unsampled() -> None:
    state = ServerState("primary")
    assert (state.up, state.sampled, state.lsn) == (False, False, 0)
    assert state.error == "not sampled yet"


@pytest.mark.parametrize("interval", [0, -1, -0.5])
def test_monitor_rejects_a_non_positive_interval(interval: float) -> None:
    with pytest.raises(ValueError, match="interval"):
        Monitor(PRIMARY_URL, REPLICA_URLS, interval=interval)


@pytest.mark.parametrize("timeout", [0, -1])
def test_monitor_rejects_a_non_positive_timeout(timeout: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        Monitor(PRIMARY_URL, REPLICA_URLS, timeout=timeout)


def test_database_passes_its_monitor_interval_on(make_db: Callable[..., Database]) -> None:
    with pytest.raises(ValueError, match="interval"):
        make_db(monitor_interval=0)


def test_monitor_names_its_servers() -> None:
    monitor = Monitor(PRIMARY_URL, REPLICA_URLS, interval=1.0)
    assert monitor.primary.name == "primary"
    assert [state.name for state in monitor.replicas] == ["replica-1", "replica-2"]
