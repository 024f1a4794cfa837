"""Database routing without a server: read order, read retries, write refusals, the guard.

Pools are built closed and never opened; the monitor's server states are set by hand, and
the per-server work (`_read_on`) is replaced by a fake that answers per server name.
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import aiobreaker
import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from resilience_async.breaker import BreakerStateChange, CircuitBreaker
from resilience_async.db import (
    Database,
    ReadResult,
    _NotCaughtUp,
    check_idle_connection,
    counts_against_database,
)
from resilience_async.errors import (
    CircuitOpenError,
    DatabaseUnavailableError,
    NoPrimaryError,
    PoolExhaustedError,
)
from resilience_async.lsn import InvalidLsnError, parse_lsn
from resilience_async.topology import Monitor, ServerState
from tests.fakes import FakeClock

CLOSED = aiobreaker.CircuitBreakerState.CLOSED
OPEN = aiobreaker.CircuitBreakerState.OPEN
HALF_OPEN = aiobreaker.CircuitBreakerState.HALF_OPEN

PRIMARY_URL = "postgresql://u@127.0.0.1:1/x"
REPLICA_URLS = ["postgresql://u@127.0.0.1:2/x", "postgresql://u@127.0.0.1:3/x"]
_names = itertools.count()


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


def names(order: list[Any]) -> list[str]:
    return [state.name for state, _ in order]


async def query(conn: Any) -> Any:  # never run: `_read_on` is replaced
    raise AssertionError("the query must not run in these tests")


class FakeServers:
    """Stands in for `Database._read_on`: answers (or raises) per server name, and records.

    `calls` holds `(server, needed)` for every server the read reached.
    """

    def __init__(self, outcomes: dict[str, Any]) -> None:
        self.outcomes = outcomes
        self.calls: list[tuple[str, int | None]] = []

    async def __call__(
        self, pool: Any, state: ServerState, got_query: Any, needed: int | None = None
    ) -> Any:
        assert pool.name == state.name  # every route pairs a state with its own pool
        assert got_query is query
        self.calls.append((state.name, needed))
        outcome = self.outcomes[state.name]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @property
    def servers(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def make_guard(clock: FakeClock) -> Callable[..., CircuitBreaker]:
    """A primary guard as the service builds one, on the fake clock, without default listeners."""

    def build(**settings: Any) -> CircuitBreaker:
        settings.setdefault("name", f"db-test-{next(_names)}")
        settings.setdefault("is_failure", counts_against_database)
        settings.setdefault("failure_threshold", 2)
        settings.setdefault("failure_rate_threshold", None)
        settings.setdefault("default_listeners", False)
        settings.setdefault("clock", clock)
        return CircuitBreaker(**settings)

    return build


@pytest.fixture
def make_db() -> Callable[..., Database]:
    def build(**settings: Any) -> Database:
        settings.setdefault("primary_url", PRIMARY_URL)
        settings.setdefault("replica_urls", REPLICA_URLS)
        return Database(**settings)

    return build


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    return make_db()


@pytest.fixture
def healthy(db: Database) -> Database:
    """Primary up, replica-1 fresher than replica-2 (no tie): replica-1, replica-2, primary."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=0.0)
    mark_up(db.monitor.replicas[1], lag=1.0)
    return db


def fake_servers(
    db: Database, monkeypatch: pytest.MonkeyPatch, outcomes: dict[str, Any]
) -> FakeServers:
    fake = FakeServers(outcomes)
    monkeypatch.setattr(db, "_read_on", fake)
    return fake


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
    """Replicas by lag (lowest first), then the primary; each route uses its server's pool."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=2.0)
    mark_up(db.monitor.replicas[1], lag=0.5)
    order = db._read_order(None)
    assert names(order) == ["replica-2", "replica-1", "primary"]
    assert [pool for _, pool in order] == [db.replicas[1], db.replicas[0], db.primary]
    # Not within the tie margin: the freshest stays first call after call.
    assert names(db._read_order(None)) == ["replica-2", "replica-1", "primary"]


def test_read_order_rotates_replicas_within_the_tie_margin(db: Database) -> None:
    """Replicas within 0.1 s of the freshest take turns at the head of successive orders."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=0.0)
    mark_up(db.monitor.replicas[1], lag=0.05)
    first = names(db._read_order(None))
    second = names(db._read_order(None))
    third = names(db._read_order(None))
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
    heads = [names(db._read_order(parse_lsn("0/10")))[0] for _ in range(2)]
    assert sorted(heads) == ["replica-1", "replica-2"]


def test_lagging_replica_comes_after_the_primary_for_token_less_reads(db: Database) -> None:
    """Lag above max_replica_lag: last resort for a read without a token, after the primary."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=db.max_replica_lag + 5)
    mark_up(db.monitor.replicas[1], lag=0.0)
    assert names(db._read_order(None)) == ["replica-2", "primary", "replica-1"]


def test_lagging_replica_is_left_out_of_token_reads(db: Database) -> None:
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=db.max_replica_lag + 5)
    mark_up(db.monitor.replicas[1], lag=0.0)
    assert names(db._read_order(parse_lsn("0/3044D18"))) == ["replica-2", "primary"]


def test_lagging_replicas_come_least_lagging_first(db: Database) -> None:
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=db.max_replica_lag + 20)
    mark_up(db.monitor.replicas[1], lag=db.max_replica_lag + 10)
    assert names(db._read_order(None)) == ["primary", "replica-2", "replica-1"]
    assert names(db._read_order(parse_lsn("0/1"))) == ["primary"]


def test_replica_at_exactly_the_lag_limit_is_still_usable(
    make_db: Callable[..., Database],
) -> None:
    db = make_db(max_replica_lag=2.0)
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=2.0)
    mark_up(db.monitor.replicas[1], lag=2.5)
    assert names(db._read_order(None)) == ["replica-1", "primary", "replica-2"]


def test_replica_that_is_down_is_left_out(db: Database) -> None:
    mark_up(db.monitor.primary, replica=False)
    mark_down(db.monitor.replicas[0])
    mark_up(db.monitor.replicas[1], lag=0.0)
    assert names(db._read_order(None)) == ["replica-2", "primary"]
    assert names(db._read_order(parse_lsn("0/1"))) == ["replica-2", "primary"]


def test_replica_not_yet_sampled_is_left_out(db: Database) -> None:
    """A replica starts as not up: it serves nothing until a sample reaches it."""
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[1], lag=0.0)
    assert not db.monitor.replicas[0].sampled
    assert names(db._read_order(None)) == ["replica-2", "primary"]


def test_primary_sampled_down_is_left_out(db: Database) -> None:
    mark_down(db.monitor.primary)
    mark_up(db.monitor.replicas[0], lag=0.0)
    mark_up(db.monitor.replicas[1], lag=db.max_replica_lag + 1)
    assert names(db._read_order(None)) == ["replica-1", "replica-2"]
    assert names(db._read_order(parse_lsn("0/1"))) == ["replica-1"]


def test_primary_not_yet_sampled_is_kept(db: Database) -> None:
    """Before the first sample the primary is given the benefit of the doubt."""
    assert not db.monitor.primary.sampled
    assert names(db._read_order(None)) == ["primary"]
    mark_up(db.monitor.replicas[0], lag=0.0)
    assert names(db._read_order(parse_lsn("0/1"))) == ["replica-1", "primary"]


def test_nothing_usable_gives_an_empty_order(db: Database) -> None:
    mark_down(db.monitor.primary)
    mark_down(db.monitor.replicas[0])
    mark_down(db.monitor.replicas[1])
    assert db._read_order(None) == []


def test_replicas_outside_the_tie_group_come_freshest_first(
    make_db: Callable[..., Database],
) -> None:
    """With three replicas the ones after the tie group should still be ordered by lag."""
    db = make_db(replica_urls=[*REPLICA_URLS, "postgresql://u@127.0.0.1:4/x"])
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=3.0)
    mark_up(db.monitor.replicas[1], lag=1.0)
    mark_up(db.monitor.replicas[2], lag=0.0)
    assert names(db._read_order(None)) == ["replica-3", "replica-2", "replica-1", "primary"]


# --- read -------------------------------------------------------------------------------


async def test_read_is_served_by_the_first_server(
    healthy: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_servers(healthy, monkeypatch, {"replica-1": "r1", "replica-2": "r2"})
    assert await healthy.read(query) == ReadResult("r1", "replica-1")
    assert fake.calls == [("replica-1", None)]


async def test_read_failing_on_the_first_server_is_retried_on_the_next(
    healthy: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_servers(
        healthy,
        monkeypatch,
        {"replica-1": DatabaseUnavailableError("replica-1", "connection lost"), "replica-2": 42},
    )
    result = await healthy.read(query)
    assert result == ReadResult(42, "replica-2")
    assert fake.servers == ["replica-1", "replica-2"]


async def test_read_saturated_first_server_is_retried_on_the_next(
    healthy: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_servers(
        healthy,
        monkeypatch,
        {"replica-1": PoolExhaustedError("replica-1", 0.5), "replica-2": "r2"},
    )
    assert await healthy.read(query) == ReadResult("r2", "replica-2")
    assert fake.servers == ["replica-1", "replica-2"]


async def test_read_stops_after_two_failures_and_raises_the_last(
    healthy: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = DatabaseUnavailableError("replica-1", "connection lost")
    last = DatabaseUnavailableError("replica-2", "connection refused")
    fake = fake_servers(
        healthy, monkeypatch, {"replica-1": first, "replica-2": last, "primary": "p"}
    )
    with pytest.raises(DatabaseUnavailableError) as caught:
        await healthy.read(query)
    assert caught.value is last
    assert fake.servers == ["replica-1", "replica-2"]  # the primary was never tried


async def test_read_not_caught_up_skips_without_counting_as_a_failure(
    healthy: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind the token: next server, no failure counted, so one failure later is retried."""
    fake = fake_servers(
        healthy,
        monkeypatch,
        {
            "replica-1": _NotCaughtUp(),
            "replica-2": DatabaseUnavailableError("replica-2", "connection lost"),
            "primary": "p",
        },
    )
    result = await healthy.read(query, token="0/3044D18")
    assert result == ReadResult("p", "primary")
    # Replicas get the token's position to check; the primary has every write already.
    assert fake.calls == [
        ("replica-1", 0x3044D18),
        ("replica-2", 0x3044D18),
        ("primary", None),
    ]


async def test_read_not_caught_up_anywhere_and_no_primary_is_unavailable(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark_down(db.monitor.primary)
    mark_up(db.monitor.replicas[0], lag=0.0)
    mark_up(db.monitor.replicas[1], lag=0.0)
    fake = fake_servers(db, monkeypatch, {"replica-1": _NotCaughtUp(), "replica-2": _NotCaughtUp()})
    with pytest.raises(DatabaseUnavailableError) as caught:
        await db.read(query, token="0/10")
    assert type(caught.value) is DatabaseUnavailableError
    assert caught.value.detail == "no server can serve this read"
    assert sorted(fake.servers) == ["replica-1", "replica-2"]


async def test_read_with_no_server_at_all_is_unavailable(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark_down(db.monitor.primary)  # the replicas were never sampled: not up either
    fake = fake_servers(db, monkeypatch, {})
    with pytest.raises(DatabaseUnavailableError) as caught:
        await db.read(query)
    assert type(caught.value) is DatabaseUnavailableError
    assert caught.value.server == "servers"
    assert caught.value.detail == "no server can serve this read"
    assert fake.calls == []


@pytest.mark.parametrize("token", ["", "not-an-lsn", "0/", "1/2/3", "G/0"])
async def test_read_with_an_invalid_token_raises_before_anything_runs(
    healthy: Database, monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    fake = fake_servers(healthy, monkeypatch, {"replica-1": "r1", "replica-2": "r2", "primary": 1})
    turn_before = healthy._turn
    with pytest.raises(InvalidLsnError):
        await healthy.read(query, token=token)
    assert fake.calls == []
    assert next(turn_before) == 0  # no read order was even computed


async def test_read_error_that_is_not_about_the_server_is_not_retried(
    healthy: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query's own error (bad input, a bug) goes to the caller from the first server."""
    fake = fake_servers(healthy, monkeypatch, {"replica-1": ValueError("bad"), "replica-2": "r2"})
    with pytest.raises(ValueError, match="bad"):
        await healthy.read(query)
    assert fake.servers == ["replica-1"]


async def test_read_refused_by_the_open_primary_guard_falls_through_to_the_next_server(
    make_db: Callable[..., Database],
    make_guard: Callable[..., CircuitBreaker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The primary's open guard counts as one failure; the lagging replica after it serves."""
    guard = make_guard()
    db = make_db(primary_guard=guard)
    mark_up(db.monitor.primary, replica=False)
    mark_up(db.monitor.replicas[0], lag=db.max_replica_lag + 10)
    mark_down(db.monitor.replicas[1])
    assert names(db._read_order(None)) == ["primary", "replica-1"]
    guard.open()
    fake = fake_servers(db, monkeypatch, {"primary": "p", "replica-1": "stale but served"})
    result = await db.read(query)
    assert result == ReadResult("stale but served", "replica-1")
    assert fake.servers == ["replica-1"]  # the guard refused: the primary's work never ran
    assert guard.current_state is OPEN


async def test_read_only_the_primary_could_serve_and_its_guard_is_open(
    make_db: Callable[..., Database],
    make_guard: Callable[..., CircuitBreaker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guard = make_guard()
    db = make_db(primary_guard=guard)
    mark_up(db.monitor.primary, replica=False)
    guard.open()
    fake = fake_servers(db, monkeypatch, {"primary": "p"})
    with pytest.raises(CircuitOpenError):
        await db.read(query)
    assert fake.calls == []


async def test_read_on_the_primary_goes_through_the_guard(
    make_db: Callable[..., Database],
    make_guard: Callable[..., CircuitBreaker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Primary reads count in its guard: two unavailable reads open it."""
    guard = make_guard(failure_threshold=2)
    db = make_db(primary_guard=guard)
    mark_up(db.monitor.primary, replica=False)
    fake_servers(db, monkeypatch, {"primary": DatabaseUnavailableError("primary", "lost")})
    for _ in range(2):
        with pytest.raises(DatabaseUnavailableError):
            await db.read(query)
    assert guard.current_state is OPEN


# --- write ------------------------------------------------------------------------------


def watch_pools(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every attempt to take a connection from any pool of `db`."""
    touched: list[str] = []

    def refuse(name: str) -> Callable[..., Any]:
        async def getconn(*args: Any) -> Any:
            touched.append(name)
            raise AssertionError("the pool must not be touched")

        return getconn

    for pool in (db.primary, *db.replicas):
        monkeypatch.setattr(pool, "getconn", refuse(pool.name))
    return touched


@pytest.fixture
def getconn_calls(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return watch_pools(db, monkeypatch)


async def test_write_with_the_primary_sampled_down_raises_no_primary(
    db: Database, getconn_calls: list[str]
) -> None:
    mark_down(db.monitor.primary, error="x")
    with pytest.raises(NoPrimaryError) as caught:
        await db.write(query)
    assert caught.value.server == "primary"
    assert caught.value.detail == "x"
    assert getconn_calls == []


async def test_write_to_a_primary_not_yet_sampled_tries_the_pool(db: Database) -> None:
    """Not sampled yet: the write is attempted; the closed pool answers NoPrimaryError."""
    with pytest.raises(NoPrimaryError) as caught:
        await db.write(query)
    assert caught.value.detail == "pool closed"


async def test_writes_refused_for_want_of_a_primary_open_the_guard(
    make_db: Callable[..., Database],
    make_guard: Callable[..., CircuitBreaker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    guard = make_guard(failure_threshold=2)
    db = make_db(primary_guard=guard)
    touched = watch_pools(db, monkeypatch)
    mark_down(db.monitor.primary, error="x")
    for _ in range(2):
        with pytest.raises(NoPrimaryError):
            await db.write(query)
    assert guard.current_state is OPEN
    with pytest.raises(CircuitOpenError) as caught:
        await db.write(query)
    assert caught.value.breaker == guard.name
    assert caught.value.retry_after > 0
    assert touched == []


def test_counts_against_database_only_counts_unreachable_servers() -> None:
    assert counts_against_database(DatabaseUnavailableError("replica-1", "lost"))
    assert counts_against_database(NoPrimaryError("x"))
    assert not counts_against_database(PoolExhaustedError("primary", 2.0))
    assert not counts_against_database(ValueError("bad input"))
    assert not counts_against_database(psycopg.errors.UniqueViolation("duplicate"))


# --- the monitor moves the guard --------------------------------------------------------


@pytest.fixture
def transitions() -> list[BreakerStateChange]:
    return []


@pytest.fixture
def guarded_db(
    make_db: Callable[..., Database],
    make_guard: Callable[..., CircuitBreaker],
    transitions: list[BreakerStateChange],
) -> Database:
    return make_db(primary_guard=make_guard(listeners=[transitions.append]))


def test_primary_changed_opens_and_closes_the_guard(
    guarded_db: Database, transitions: list[BreakerStateChange]
) -> None:
    guard = guarded_db._guard
    assert guard is not None
    guarded_db._primary_changed(False)
    assert guard.current_state is OPEN
    guarded_db._primary_changed(True)
    assert guard.current_state is CLOSED
    assert [(event.old, event.new) for event in transitions] == [(CLOSED, OPEN), (OPEN, CLOSED)]


def test_primary_changed_to_the_state_already_held_does_not_transition(
    guarded_db: Database, transitions: list[BreakerStateChange], clock: FakeClock
) -> None:
    """No repeat transition: an open guard keeps its open period, a closed one its window."""
    guard = guarded_db._guard
    assert guard is not None
    guarded_db._primary_changed(True)  # already closed
    assert transitions == []
    guarded_db._primary_changed(False)
    clock.advance(10)
    retry_after = guard.retry_after
    guarded_db._primary_changed(False)  # already open: the reset timer is not pushed back
    assert guard.retry_after == retry_after
    assert [(event.old, event.new) for event in transitions] == [(CLOSED, OPEN)]
    guarded_db._primary_changed(True)
    guarded_db._primary_changed(True)
    assert [(event.old, event.new) for event in transitions] == [
        (CLOSED, OPEN),
        (OPEN, CLOSED),
    ]


@pytest.mark.parametrize(("up", "expected"), [(True, CLOSED), (False, OPEN)])
def test_primary_changed_moves_a_half_open_guard(
    guarded_db: Database, transitions: list[BreakerStateChange], up: bool, expected: Any
) -> None:
    guard = guarded_db._guard
    assert guard is not None
    guard.half_open()
    guarded_db._primary_changed(up)
    assert guard.current_state is expected
    assert transitions[-1].old is HALF_OPEN
    assert transitions[-1].new is expected


def test_primary_changed_without_a_guard_does_nothing(db: Database) -> None:
    db._primary_changed(False)
    db._primary_changed(True)


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
