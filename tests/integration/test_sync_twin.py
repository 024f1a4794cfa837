"""The sync twin (the guide's way) serves the same orders and reports API, for the benchmark.

Served by gunicorn as the bench serves it; the flaws it keeps on purpose are shown too: a
broker that is down after the report row committed leaves a job nobody will run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from devstack.stack import Stack
from devstack.stack.child import Child
from devstack.stack.ports import free_port
from devstack.stack.waits import http_ok, wait_until
from tests.servers import ROOT

pytestmark = pytest.mark.integration


@contextmanager
def sync_twin(stack: Stack, log_dir: Path, **settings: str) -> Iterator[httpx.Client]:
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
            "--log-level", "warning", "loadtests.twin.wsgi:application"]  # fmt: skip
    env = {**os.environ, **stack.env, "LOG_FORMAT": "json", **settings}
    child = Child("sync-twin", argv, log_dir / f"sync-{port}.log", env=env, cwd=ROOT)
    child.start()
    try:
        wait_until(child, http_ok(f"http://127.0.0.1:{port}/health/live"), what="sync twin")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        child.stop(timeout=8)


def test_orders_are_created_listed_and_read_the_guides_way(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    with sync_twin(healthy_stack, tmp_path) as client:
        created = client.post("/api/orders", json={"item": "sync-twin tea", "quantity": 2})
        bad = client.post("/api/orders", json={"item": "", "quantity": 2})
        listed = client.get("/api/orders", params={"limit": 100})
        one = client.get(f"/api/orders/{created.json()['id']}")
        missing = client.get("/api/orders/999999999")

    assert created.status_code == 201
    assert created.json()["item"] == "sync-twin tea"
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "item")
    assert listed.status_code == 200
    # the guide's router reads from the replica: the new order may not be there yet
    assert one.status_code in (200, 404)
    assert missing.status_code == 404


def test_reports_go_straight_to_the_broker_and_are_lost_when_it_is_down(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    broker = redis.Redis.from_url(healthy_stack.env["BROKER_URL"])
    before = broker.hlen("dramatiq:reports.msgs")
    with sync_twin(healthy_stack, tmp_path) as client:
        queued = client.post("/api/reports", json={})
    with sync_twin(healthy_stack, tmp_path, BROKER_URL="redis://127.0.0.1:1/0") as client:
        lost = client.post("/api/reports", json={})
    after = broker.hlen("dramatiq:reports.msgs")
    broker.close()

    assert queued.status_code == 202
    assert after == before + 1
    assert lost.status_code == 503
    assert lost.json()["error"]["code"] == "broker_unavailable"
    report_id = lost.json()["error"]["message"].split()[1]
    with psycopg.connect(healthy_stack.services["primary"]["url"]) as conn:
        row = conn.execute("SELECT status FROM reports WHERE id = %s", (report_id,)).fetchone()
    assert row == ("queued",)  # committed, and no message will ever build it
