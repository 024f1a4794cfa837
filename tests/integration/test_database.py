"""`resilience_async.Database` against the real primary and replica of the stack.

Each test proves where a query ran by asking the connection that ran it
(`pg_is_in_recovery()`), and makes every fault for real: replay paused, replica killed,
backend terminated mid-query.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from devstack.stack import Stack
from resilience_async import (
    CircuitBreaker,
    Connection,
    Database,
    NoPrimaryError,
    WriteOutcomeUnknownError,
    counts_against_database,
    parse_lsn,
)
from tests.helpers import kill, replay_paused

pytestmark = pytest.mark.integration

_markers = itertools.count()


def marker(name: str) -> str:
    return f"test-database-{name}-{next(_markers)}"


def primary_guard(**options: Any) -> CircuitBreaker:
    """A primary guard as the service builds one (3 failures, unreachable servers only)."""
    settings: dict[str, Any] = {"name": "test-primary", "failure_threshold": 3,
                                "failure_rate_threshold": None, "reset_timeout": 1.0,
                                "is_failure": counts_against_database,
                                "default_hooks": False}  # fmt: skip
    return CircuitBreaker(**(settings | options))


@pytest.fixture
async def db(healthy_stack: Stack) -> AsyncIterator[Database]:
    breaker = primary_guard()
    database = Database(
        primary_url=healthy_stack.env["DATABASE_URL"],
        replica_urls=healthy_stack.env["DATABASE_REPLICA_URLS"].split(","),
        monitor_interval=0.1,
        primary_guard=breaker,
    )
    async with database:
        await usable_replica(database)
        yield database


async def usable_replica(database: Database) -> None:
    """Wait until the monitor sees the replica up and within the lag limit: one an earlier
    test killed has been restarted, but reports a large lag until it streams again."""
    await database.monitor.first_round()
    replica = database.monitor.replicas[0]
    for _ in range(1000):  # bounded: a restarted replica streams again within seconds
        if replica.up and replica.lag <= database.max_replica_lag:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"replica-1 not usable: up={replica.up}, lag={replica.lag}")


async def in_recovery(conn: Connection) -> bool:
    cursor = await conn.execute("SELECT pg_is_in_recovery()")
    row = await cursor.fetchone()
    assert row is not None
    return bool(row[0])


def insert(item: str):
    async def query(conn: Connection) -> int:
        cursor = await conn.execute(
            "INSERT INTO orders (item, quantity) VALUES (%s, 1) RETURNING id", (item,)
        )
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    return query


def find(item: str):
    async def query(conn: Connection) -> tuple[bool, int]:
        """(served by a standby, rows with `item`)."""
        cursor = await conn.execute(
            "SELECT pg_is_in_recovery(), count(*) FROM orders WHERE item = %s", (item,)
        )
        row = await cursor.fetchone()
        assert row is not None
        return bool(row[0]), int(row[1])

    return query


async def test_reads_run_on_the_replica_and_writes_on_the_primary(db: Database) -> None:
    read = await db.read(in_recovery)
    written = await db.write(in_recovery)
    assert (read.server, read.value) == ("replica-1", True)
    assert written.value is False
    assert parse_lsn(written.token) > 0


async def test_a_token_reads_the_write_even_while_the_replica_replays_nothing(
    db: Database, healthy_stack: Stack
) -> None:
    """Replay paused: with the write's token the read sees it (the primary serves it);
    without, the replica serves a read that cannot see it yet."""
    item = marker("token")
    with replay_paused(healthy_stack):
        written = await db.write(insert(item))
        with_token = await db.read(find(item), token=written.token)
        without = await db.read(find(item))
    assert with_token.value == (False, 1)
    assert with_token.server == "primary"
    assert without.value == (True, 0)
    assert without.server == "replica-1"


async def test_a_token_is_served_by_the_replica_once_it_has_replayed_it(db: Database) -> None:
    """Read-your-writes does not pin reads to the primary: a caught-up replica serves them."""
    item = marker("caught-up")
    written = await db.write(insert(item))
    for _ in range(200):  # bounded: replay of one insert takes milliseconds
        read = await db.read(find(item), token=written.token)
        if read.server == "replica-1":
            break
        await asyncio.sleep(0.01)
    assert read.server == "replica-1"
    assert read.value == (True, 1)


async def test_a_killed_replica_sends_reads_to_the_primary_without_errors(
    db: Database, healthy_stack: Stack
) -> None:
    """SIGKILL of the replica's postmaster: no read fails, not even while its orphaned
    backends linger or the monitor has yet to notice; then the primary serves them all."""
    assert (await db.read(in_recovery)).server == "replica-1"
    kill(healthy_stack.children["replica"])
    during = [await db.read(in_recovery) for _ in range(20)]  # none of these may raise
    for _ in range(300):  # bounded: the monitor samples every 0.1 s
        if not db.monitor.replicas[0].up:
            break
        await asyncio.sleep(0.01)
    after = [await db.read(in_recovery) for _ in range(20)]
    assert len(during) == 20
    assert {(read.server, read.value) for read in after} == {("primary", False)}


async def test_a_read_whose_backend_is_terminated_is_retried_once(
    db: Database, healthy_stack: Stack
) -> None:
    attempts: list[bool] = []

    async def slow_then_fast(conn: Connection) -> bool:
        attempts.append(await in_recovery(conn))
        if len(attempts) == 1:
            await conn.execute("SELECT pg_sleep(30)")
        return attempts[-1]

    read = asyncio.create_task(db.read(slow_then_fast))
    await terminate_sleeping_backend(healthy_stack, "replica")
    result = await read
    assert len(attempts) == 2
    assert result.value is attempts[1]


async def test_a_write_whose_backend_is_terminated_surfaces_with_nothing_committed(
    db: Database, healthy_stack: Stack
) -> None:
    item = marker("terminated")

    async def insert_then_stall(conn: Connection) -> None:
        async with conn.transaction():
            await insert(item)(conn)
            await conn.execute("SELECT pg_sleep(30)")

    write = asyncio.create_task(db.write(insert_then_stall))
    await terminate_sleeping_backend(healthy_stack, "primary")
    with pytest.raises(WriteOutcomeUnknownError) as raised:
        await write
    assert raised.value.server == "primary"
    assert "terminat" in str(raised.value)
    read = await db.read(find(item), token=(await db.write(in_recovery)).token)
    assert read.value[1] == 0  # the transaction died with its backend


async def terminate_sleeping_backend(stack: Stack, server: str) -> None:
    """Wait for a pool connection of `server` to run pg_sleep, then terminate its backend."""
    await sleeping_backend(stack, server, "pg_terminate_backend(pid)")


async def wait_for_sleeping_backend(stack: Stack, server: str) -> None:
    await sleeping_backend(stack, server, "pid")


async def sleeping_backend(stack: Stack, server: str, select: str) -> None:
    """Select `select` for the pooled backends of `server` running pg_sleep, once some are."""
    url = stack.services[server]["url"]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        for _ in range(500):  # bounded: the query starts within milliseconds
            cursor = await admin.execute(
                f"SELECT {select} FROM pg_stat_activity "
                "WHERE application_name LIKE 'resilience-pool:%%' AND query LIKE '%%pg_sleep%%' "
                "AND state = 'active'"
            )
            if await cursor.fetchall():
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"no pooled backend on {server} ran pg_sleep")


async def test_a_write_queued_for_a_connection_learns_of_a_dead_primary_from_the_monitor(
    healthy_stack: Stack,
) -> None:
    """One connection, held by a stalled write; a second write queues for it (pool timeout:
    10 minutes). The primary dies: the queued write fails as soon as the monitor has seen
    it, with NoPrimaryError, instead of waiting out the pool's timeout."""
    database = Database(
        primary_url=healthy_stack.env["DATABASE_URL"],
        replica_urls=[],
        max_size=1,
        timeout=600,
        monitor_interval=0.1,
    )
    async with database:
        await database.monitor.first_round()
        holder = asyncio.create_task(
            database.write(lambda conn: conn.execute("SELECT pg_sleep(30)"))
        )
        await wait_for_sleeping_backend(healthy_stack, "primary")
        queued = asyncio.create_task(database.write(in_recovery))
        kill(healthy_stack.children["primary"])
        with pytest.raises(WriteOutcomeUnknownError):
            await holder
        with pytest.raises(NoPrimaryError):
            await queued


async def test_a_replica_lagging_past_the_limit_is_skipped_for_the_primary(
    healthy_stack: Stack,
) -> None:
    """Replay paused while writes go on: once its measured lag passes the maximum, reads
    go to the primary (and come back to the replica when it has caught up)."""
    database = Database(
        primary_url=healthy_stack.env["DATABASE_URL"],
        replica_urls=healthy_stack.env["DATABASE_REPLICA_URLS"].split(","),
        monitor_interval=0.1,
        max_replica_lag=0.5,
    )
    async with database:
        await usable_replica(database)
        assert (await database.read(in_recovery)).server == "replica-1"
        with replay_paused(healthy_stack):
            await database.write(insert(marker("lag")))  # WAL the replica receives, not replays
            for _ in range(300):  # bounded: the lag passes 0.5 s within a second
                if database.monitor.replicas[0].lag > 0.5:
                    break
                await asyncio.sleep(0.01)
            lagging = await database.read(in_recovery)
        for _ in range(300):
            if database.monitor.replicas[0].lag <= 0.5:
                break
            await asyncio.sleep(0.01)
        caught_up = await database.read(in_recovery)

    assert (lagging.server, lagging.value) == ("primary", False)
    assert (caught_up.server, caught_up.value) == ("replica-1", True)


async def test_the_monitor_moves_the_primary_guard_once_per_change(
    healthy_stack: Stack,
) -> None:
    """Primary killed: the guard opens at the monitor's next sample, and stays put (its open
    period is not pushed back) while the primary stays dead; back: the guard closes."""
    moves: list[tuple[str, str]] = []
    guard = primary_guard(
        reset_timeout=60.0,
        hooks=[lambda event: moves.append((event.old.name, event.new.name))],
    )
    database = Database(
        primary_url=healthy_stack.env["DATABASE_URL"],
        replica_urls=[],
        monitor_interval=0.1,
        primary_guard=guard,
    )
    async with database:
        await database.monitor.first_round()
        kill(healthy_stack.children["primary"])
        await until(lambda: guard.current_state.name == "OPEN")
        retry_after = guard.retry_after
        await database.monitor.sample()  # still dead: no second transition
        await database.monitor.sample()
        still = (guard.current_state.name, guard.retry_after <= retry_after)
        healthy_stack.heal()
        await until(lambda: guard.current_state.name == "CLOSED")

    assert still == ("OPEN", True)
    assert moves == [("CLOSED", "OPEN"), ("OPEN", "CLOSED")]


async def test_a_killed_monitor_session_is_not_a_lost_primary(healthy_stack: Stack) -> None:
    """An administrator's pg_terminate_backend on the monitor's own session (the guide's
    "kill a random database connection"): the next sample asks again on a new session, the
    primary stays up and its guard stays closed."""
    moves: list[str] = []
    guard = primary_guard(hooks=[lambda event: moves.append(event.new.name)])
    database = Database(
        primary_url=healthy_stack.env["DATABASE_URL"],
        replica_urls=[],
        monitor_interval=60.0,  # only the samples this test asks for
        primary_guard=guard,
    )
    async with database:
        await database.monitor.first_round()
        with psycopg.connect(healthy_stack.env["DATABASE_URL"], autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = 'resilience-monitor:primary'"
            ).fetchone()
        await database.monitor.sample()
        primary = database.monitor.primary

    assert killed == (1,)
    assert (primary.up, primary.error) == (True, None)
    assert moves == []


async def until(condition: Callable[[], bool], attempts: int = 1500) -> None:
    """Wait for `condition`, checking every 10 ms (bounded: 15 s at most)."""
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")
