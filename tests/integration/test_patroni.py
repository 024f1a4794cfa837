"""STACK_HA=patroni: the stack's record of a Patroni cluster, and the service's database
layer following Patroni's view of it through a switchover.

One cluster (etcd + two members) for the module (`patroni_stack`); the switchover test
comes last, as it moves the leader.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import psycopg
import pytest

from devstack.stack import Stack, patroni
from project.checks import lag_probe
from resilience_async import Database, ServerState, Status

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]
logger = logging.getLogger(__name__)
LEADER_HEALTH = "Patroni's leader: its reads go to the primary"


async def server_port(conn: psycopg.AsyncConnection) -> int:
    """The port of the server a query ran on: which member it reached."""
    cursor = await conn.execute("SELECT inet_server_port()")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


def members(stack: Stack) -> dict[str, dict]:
    return {
        n: info for n, info in stack.services.items() if "role" in info and "alias_of" not in info
    }


def database(stack: Stack) -> Database:
    return Database(
        primary_url=stack.env["DATABASE_URL"],
        replica_urls=stack.env["DATABASE_REPLICA_URLS"].split(","),
        patroni_urls=stack.env["DATABASE_PATRONI_URLS"].split(","),
        monitor_interval=0.2,
        connect_timeout=1,
        max_size=2,
    )


def test_the_state_file_names_the_leader_the_replica_and_etcd(patroni_stack: Stack) -> None:
    state = json.loads((patroni_stack.state.state_file).read_text())
    services = state["services"]
    roles = sorted(services[name]["role"] for name in members(patroni_stack))
    assert roles == ["leader", "replica"]
    assert services["etcd"]["url"].startswith("http://127.0.0.1:")
    leader = next(name for name in members(patroni_stack) if services[name]["role"] == "leader")
    assert services["primary"]["alias_of"] == leader
    assert services["primary"]["port"] == services[leader]["port"]
    assert services["replica"]["patroni_role"] == "sync_standby"
    with psycopg.connect(services["primary"]["url"], autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
    with psycopg.connect(services["replica"]["url"], autocommit=True) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)


async def test_reads_go_to_the_replica_patroni_lists_not_to_the_leader(
    patroni_stack: Stack,
) -> None:
    services = patroni_stack.services
    async with database(patroni_stack) as db:
        await db.monitor.first_round()
        leader_entry = replica_entries(db)[services["primary"]["port"]]
        assert leader_entry.role == "leader"
        assert leader_entry.excluded
        assert leader_entry.name not in db.read_route()
        health = lag_probe(db, db.monitor.replicas.index(leader_entry), max_lag=5.0)
        observed = await health()  # the leader's replica entry is no warning
        assert (observed.status, observed.output) == (Status.PASS, LEADER_HEALTH)
        read = await db.read(server_port)
        assert read.value == services["replica"]["port"]
        written = await db.write(server_port)
        assert written.value == services["primary"]["port"]


async def test_without_an_answer_from_patroni_the_samples_alone_decide(
    patroni_stack: Stack,
) -> None:
    env = patroni_stack.env
    silent = Database(primary_url=env["DATABASE_URL"],
                      replica_urls=env["DATABASE_REPLICA_URLS"].split(","),
                      patroni_urls=["http://127.0.0.1:1"], monitor_interval=0.2)  # fmt: skip
    async with silent as db:
        await db.monitor.first_round()
        assert db.monitor.view is None
        assert db.monitor.primary.up
        assert all(s.up and s.role is None and s.excluded is None for s in db.monitor.replicas)
        written = await db.write(server_port)
        assert written.value == patroni_stack.services["primary"]["port"]


async def test_after_a_switchover_writes_and_reads_follow_patroni_at_once(
    patroni_stack: Stack,
) -> None:
    api_urls = patroni_stack.env["DATABASE_PATRONI_URLS"].split(",")
    old = patroni.leader(api_urls)
    ports = {name: info["port"] for name, info in members(patroni_stack).items()}
    async with database(patroni_stack) as db:
        await db.monitor.first_round()
        entry = replica_entries(db)
        started = time.monotonic()
        switching = asyncio.create_task(asyncio.to_thread(patroni.switchover, api_urls))
        # The write pool follows the view: the new leader's host comes first, and the
        # monitor reaches it as the primary (no write has failed to find that out).
        while not (db.monitor.primary.up and _port(db.monitor.primary_url) != ports[old]):
            assert time.monotonic() - started < 30, db.monitor.primary
            await asyncio.sleep(0.02)
        followed = time.monotonic() - started
        new = await switching
        logger.info("switchover %s -> %s: the service followed after %.2f s", old, new, followed)
        assert _port(db.monitor.primary_url) == ports[new]
        assert db.primary.conninfo == db.monitor.primary_url
        written = await db.write(server_port)
        assert written.value == ports[new]
        assert "primary.write.failed" not in db.stats()["queries"]
        # The old leader takes no reads until it streams again (Patroni's word) and our own
        # sample finds it up and caught up; meanwhile, with no true replica, reads go to the
        # new leader through its replica pool first (not behind the write guard).
        promoted, old_entry = entry[ports[new]], entry[ports[old]]
        assert promoted.excluded
        while old_entry.excluded or not old_entry.up or old_entry.lag > db.max_replica_lag:
            route = db.read_route()
            assert old_entry.name not in route
            assert route[0] == promoted.name
            assert time.monotonic() - started < 40, old_entry
            await asyncio.sleep(0.02)
        assert promoted.name not in db.read_route()  # a true replica again: the leader none
        read = await db.read(server_port)
        assert read.value == ports[old]
    patroni.refresh_state(patroni_stack.state)  # as another process would
    state = json.loads(patroni_stack.state.state_file.read_text())
    assert state["services"]["primary"]["alias_of"] == new
    assert state["services"][new]["role"] == "leader"


def replica_entries(db: Database) -> dict[int, ServerState]:
    """The monitor's replica states, by the port of their URL."""
    pairs = zip(db.replica_urls, db.monitor.replicas, strict=True)
    return {_port(url): state for url, state in pairs}


def _port(url: str) -> int:
    """The first port of a libpq URL or conninfo string."""
    return int(psycopg.conninfo.conninfo_to_dict(url)["port"].split(",")[0])
