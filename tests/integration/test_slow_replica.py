"""Latency-aware reads against the stack's real primary and a replica made slow for real.

The replica is reached through the fault proxy (Toxiproxy's API), whose latency toxic
delays every answer of the replica, pooled connections and the monitor's included: a sick
host, not replication lag. Each test says where reads ran by the server that served them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from devstack.faults.toxiproxy import ToxiproxyClient
from devstack.stack import Stack, fault_proxy
from devstack.stack.child import tail
from devstack.stack.ports import free_port
from project.checks import lag_probe
from resilience_async import Connection, Database, Hedge, LatencyRouting, RetryBudget, Status
from resilience_async.prometheus import Instruments, instrument
from tests.integration.test_database import usable_replica

pytestmark = pytest.mark.integration

SLOW = {"latency": 300, "jitter": 0}  # milliseconds on every answer of the replica


@dataclass(frozen=True)
class Proxied:
    api: str  # the fault proxy's API URL
    replica_url: str  # the replica's libpq URL through it


@pytest.fixture(scope="module")
def proxy(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    """The fault proxy in front of the replica, started as the stack starts its own."""
    log = tmp_path_factory.mktemp("slow-replica") / "toxiproxy.log"
    port = free_port()
    routes = [fault_proxy.Route("replica", stack.services["replica"]["port"], free_port())]
    child = fault_proxy.proxy_child(log, port, routes)
    try:
        api = fault_proxy.start(child, port, routes)
        replica_url = fault_proxy.rewrite(stack.env, routes)["DATABASE_REPLICA_URLS"]
        yield Proxied(api, replica_url.split(",")[0])
    finally:
        child.stop(timeout=5)
    assert child.returncode() == 0, tail(log)


@pytest.fixture
def toxics(proxy: Proxied) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(proxy.api) as client:
        client.reset()
        yield client
        client.reset()


async def open_database(stack: Stack, replica_url: str, *, max_size: int = 10,
                        primary_share: float = 0.5) -> Database:  # fmt: skip
    database = Database(
        primary_url=stack.env["DATABASE_URL"],
        replica_urls=[replica_url],
        max_size=max_size,
        monitor_interval=0.1,
        latency=LatencyRouting(
            ejection=0.5, max_ejection=1.0, decay=0.2, primary_share=primary_share
        ),
        hedge=Hedge(
            "test-reads",
            min_delay=0.02,
            max_delay=0.05,
            budget=RetryBudget(ratio=1.0, min_per_second=100),
            finish_losers=True,
        ),
    )
    await database.__aenter__()
    await usable_replica(database)
    return database


@pytest.fixture
async def db(healthy_stack: Stack, proxy: Proxied,
             toxics: ToxiproxyClient) -> AsyncIterator[Database]:  # fmt: skip
    database = await open_database(healthy_stack, proxy.replica_url)
    try:
        yield database
    finally:
        await database.aclose()


async def one(conn: Connection) -> int:
    cursor = await conn.execute("SELECT 1")
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def ejected(database: Database) -> str:
    """Sample the servers until replica-1 is ejected (two slow samples in a row; each round
    waits for the slow replica's answer); the reason."""
    replica = database.monitor.replicas[0]
    for _ in range(10):
        if replica.ejected:
            return replica.ejected
        await database.monitor.sample()
    raise AssertionError(f"replica-1 never ejected: {database.stats()['servers']}")


async def test_healthy_reads_go_to_the_replica(db: Database) -> None:
    served = {(await db.read(one)).server for _ in range(20)}
    assert served == {"replica-1"}
    assert db.stats()["servers"]["replica-1"]["ejected"] is None


async def test_a_slow_replica_is_overtaken_then_ejected_and_its_reads_go_to_the_primary(
    db: Database, toxics: ToxiproxyClient
) -> None:
    toxics.add_toxic("replica", "latency", attributes=SLOW)
    first = await db.read(one)
    assert first.server == "primary"  # the hedge, sent after 50 ms, answered first
    assert db.hedge is not None
    assert db.hedge.stats()["won"] >= 1
    reason = await ejected(db)
    assert reason.startswith("slow: ")
    served = [(await db.read(one)).server for _ in range(20)]
    assert served == ["primary"] * 20
    stats = db.stats()
    assert stats["servers"]["replica-1"]["ejections"] >= 1
    assert stats["servers"]["replica-1"]["estimate"] >= 0.3
    await db.hedge.aclose()  # every overtaken read has given its connection back
    assert (
        stats["pools"]["replica-1"]["gate_in_use"] == 0
        or db.stats()["pools"]["replica-1"]["gate_in_use"] == 0
    )


async def test_a_recovered_replica_is_probed_back_and_takes_reads_again(
    db: Database, toxics: ToxiproxyClient
) -> None:
    name = toxics.add_toxic("replica", "latency", attributes=SLOW)
    await db.read(one)
    await ejected(db)
    toxics.remove_toxic("replica", name)
    for _ in range(100):  # the monitor's samples pull its estimate down; its time runs out
        if (await db.read(one)).server == "replica-1":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"replica-1 never came back: {db.stats()['servers']}")
    assert db.stats()["servers"]["replica-1"]["ejected"] is None


async def test_past_the_primarys_share_reads_go_to_the_slow_replica(
    healthy_stack: Stack, proxy: Proxied, toxics: ToxiproxyClient
) -> None:
    database = await open_database(healthy_stack, proxy.replica_url, max_size=2,
                                   primary_share=0.5)  # fmt: skip
    try:
        toxics.add_toxic("replica", "latency", attributes=SLOW)
        await database.read(one)
        await ejected(database)
        holding = asyncio.Event()
        release = asyncio.Event()

        async def hold(conn: Connection) -> None:
            holding.set()
            await release.wait()

        held = asyncio.ensure_future(database.read(hold))  # the primary's one read share
        await holding.wait()
        assert database.stats()["primary_reads"] == 1
        assert database.read_route()[0] == "replica-1"
        assert (await database.read(one)).server == "replica-1"  # slow, but served
        release.set()
        assert (await held).server == "primary"
        assert database.read_route()[0] == "primary"
    finally:
        await database.aclose()


async def test_without_latency_routing_a_slow_replica_keeps_its_reads(
    healthy_stack: Stack, proxy: Proxied, toxics: ToxiproxyClient
) -> None:
    database = Database(
        primary_url=healthy_stack.env["DATABASE_URL"],
        replica_urls=[proxy.replica_url],
        monitor_interval=0.1,
    )
    async with database:
        await usable_replica(database)
        toxics.add_toxic("replica", "latency", attributes=SLOW)
        served = [(await database.read(one)).server for _ in range(3)]
        assert served == ["replica-1"] * 3  # what main did: replay lag is zero, so it stays


async def test_an_ejection_shows_in_readiness_and_metrics(
    db: Database, toxics: ToxiproxyClient
) -> None:
    registry = CollectorRegistry()
    instrument(db, instruments=Instruments(registry))
    toxics.add_toxic("replica", "latency", attributes=SLOW)
    await db.read(one)
    reason = await ejected(db)
    observation = await lag_probe(db, 0, max_lag=5.0)()
    assert observation.status is Status.WARN
    assert observation.output == reason
    await db.monitor.sample()  # one more round: its samples are told to the hooks
    labels = {"server": "replica-1"}
    assert registry.get_sample_value("database_ejected", labels) == 1
    assert registry.get_sample_value("database_ejections_total", labels) >= 1
    assert registry.get_sample_value("database_latency_estimate_seconds", labels) >= 0.3
