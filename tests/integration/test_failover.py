"""Failover through the running service: primary killed, replica promoted, synchronous standby.

Each test gets a PostgreSQL primary + replica of its own (these faults can't be healed by
restarting a process), with the session's Redis and upstream, and a real uvicorn server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.stack import Stack
from tests.helpers import assert_problem, kill, wait_for
from tests.servers import WebServer, migrate, run_web

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]

_items = itertools.count()
FAST = {"DATABASE_MONITOR_INTERVAL": "0.1", "DATABASE_QUERY_TIMEOUT": "2"}


@contextmanager
def own_database(
    session: Stack, tmp_path: Path, *, synchronous_commit: str = "local"
) -> Iterator[Stack]:
    """A fresh primary + streaming replica, migrated; Redis and upstream are the session's."""
    external = {name: session.env[name] for name in ("REDIS_URL", "TIPS_UPSTREAM_URL")}
    stack = Stack(
        state_dir=tmp_path / "state", external=external, synchronous_commit=synchronous_commit
    )
    stack.start()
    try:
        migrate(stack.env)
        yield stack
    finally:
        stack.stop()


def order(web: WebServer) -> httpx.Response:
    return web.client.post("/api/orders", json={"item": f"failover-{next(_items)}", "quantity": 1})


def read(web: WebServer, order_id: int, token: str | None = None) -> httpx.Response:
    headers = {"X-Consistency-Token": token} if token else {}
    return web.client.get(f"/api/orders/{order_id}", headers=headers)


def test_primary_killed_reads_go_on_and_writes_fail_fast_with_retry_after(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    with own_database(healthy_stack, tmp_path) as db, run_web(db, tmp_path, **FAST) as web:
        created = order(web)
        assert created.status_code == 201
        order_id = created.json()["id"]
        wait_for(lambda: read(web, order_id).headers.get("X-Database-Server") == "replica-1")

        kill(db.children["primary"])
        wait_for(lambda: order(web).status_code == 503)
        refused = [order(web) for _ in range(5)]
        reads = [read(web, order_id) for _ in range(20)]
        ready = web.get("/health/ready")

    for response in refused:
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        problem = assert_problem(response.json(), 503)
        assert problem["code"] == "dependency_unavailable"
        # refused by the breaker or the monitor's verdict: no request waits on a dead primary;
        # the caller learns which dependency, never its address or the driver's message
        assert problem["detail"] in {
            "database-primary is unavailable (circuit open)",
            "the primary database is unreachable",
        }
        assert "127.0.0.1" not in response.text
        assert "port" not in response.text
    assert any("database-primary is unavailable (circuit open)" in r.text for r in refused)
    assert [r.status_code for r in reads] == [200] * 20
    assert {r.headers["X-Database-Server"] for r in reads} == {"replica-1"}
    assert ready.status_code == 200
    assert ready.json()["status"] == "warn"
    assert ready.json()["checks"]["primary:responseTime"][0]["status"] == "fail"


def test_promoted_replica_takes_writes_without_a_restart_and_reads_never_fail(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    with own_database(healthy_stack, tmp_path) as db, run_web(db, tmp_path, **FAST) as web:
        first = order(web).json()
        kill(db.children["primary"])
        wait_for(lambda: order(web).status_code == 503)
        server_pid = web.child.pid

        db.promote("replica")
        read_errors = []

        def write_accepted() -> httpx.Response | None:
            response = order(web)
            check = read(web, first["id"])
            if check.status_code != 200:
                read_errors.append(check)
            return response if response.status_code == 201 else None

        resumed = wait_for(write_accepted, timeout=10, interval=0.02)
        again = read(web, resumed.json()["id"], token=resumed.headers["X-Consistency-Token"])
        assert web.child.alive()
        assert web.child.pid == server_pid

    assert read_errors == []
    assert again.status_code == 200
    assert again.json()["item"] == resumed.json()["item"]


def test_synchronous_standby_makes_every_acknowledged_write_visible_on_the_replica(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """remote_apply: a 201 means the replica has applied the order, so a token-less read
    on the replica finds it at once. The price: with the standby gone, commits stall; the
    service answers 503 write_outcome_unknown after DATABASE_QUERY_TIMEOUT, and the order
    is committed on the primary though not replicated (why the idempotency key matters)."""
    with (
        own_database(healthy_stack, tmp_path, synchronous_commit="remote_apply") as db,
        run_web(db, tmp_path, **FAST) as web,
    ):
        wait_for(lambda: read(web, 1).headers.get("X-Database-Server") == "replica-1")
        created = [order(web) for _ in range(10)]
        found = [read(web, response.json()["id"]) for response in created]

        kill(db.children["replica"])
        stalled = web.client.post(
            "/api/orders",
            json={"item": "stalled", "quantity": 1},
            headers={"Idempotency-Key": "s1"},
        )
        with psycopg.connect(db.services["primary"]["url"]) as primary:
            row = primary.execute("SELECT count(*) FROM orders WHERE item = 'stalled'").fetchone()

    assert [r.status_code for r in created] == [201] * 10
    assert [(r.status_code, r.headers["X-Database-Server"]) for r in found] == [
        (200, "replica-1")
    ] * 10
    assert stalled.status_code == 503
    assert stalled.json()["code"] == "write_outcome_unknown"
    assert row == (1,)
