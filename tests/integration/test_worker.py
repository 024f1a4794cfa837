"""The worker's actor in process: Dramatiq's `StubBroker` and `Worker`, the real database.

A `WorkerRoot` built on a `StubBroker` is the worker process without a broker server: the
same middleware (AsyncIO, time limit, retries, failure records) and the same job on the
library's `Database`, against the session's primary and replica, as Dramatiq's own tests
run actors. The queries the job runs are checked on the real PostgreSQL too.
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import dramatiq
import psycopg
import pytest
from dramatiq.asyncio import async_to_sync
from dramatiq.brokers.stub import StubBroker
from psycopg.types.json import Jsonb

from app.schemas import parse_report_params
from devstack.stack import Stack
from devstack.upstream import UpstreamControl
from project.worker import WorkerRoot
from tests.helpers import project_settings, replay_paused
from workers.failures import REASONS
from workers.reports import aggregate, like_prefix

pytestmark = pytest.mark.integration


@contextmanager
def worker(stack: Stack, **settings: Any) -> Iterator[WorkerRoot]:
    """A WorkerRoot on a StubBroker, its Dramatiq worker running (2 threads) until the end."""
    env = stack.env
    root = WorkerRoot(
        project_settings(
            DATABASE_URL=env["DATABASE_URL"],
            DATABASE_REPLICA_URLS=env["DATABASE_REPLICA_URLS"].split(","),
            TIPS_UPSTREAM_URL=env["TIPS_UPSTREAM_URL"],
            REPORT_WORK_SECONDS=0.0,
            WORKER_THREADS=2,
            JOBS_MIN_BACKOFF=0.01,
            JOBS_MAX_BACKOFF=0.05,
            **settings,
        ),
        broker=StubBroker(middleware=[]),
    )
    running = dramatiq.Worker(root.broker, worker_threads=2, worker_timeout=50)
    running.start()
    try:
        yield root
    finally:
        running.stop()


def run(root: WorkerRoot, report_id: str) -> None:
    """Send the report's message and wait until it, and any retry of it, is processed."""
    root.actors.build_report.send(report_id=report_id)
    root.broker.join("reports", fail_fast=False)


@pytest.fixture
def primary(healthy_stack: Stack) -> Iterator[psycopg.Connection]:
    with psycopg.connect(healthy_stack.env["DATABASE_URL"], autocommit=True) as conn:
        yield conn


def queued_report(primary: psycopg.Connection, params: dict[str, Any]) -> str:
    report_id = str(uuid.uuid4())
    primary.execute("INSERT INTO reports (id, params) VALUES (%s, %s)", (report_id, Jsonb(params)))
    return report_id


def state(primary: psycopg.Connection, report_id: str) -> tuple[str, int, Any, str]:
    """(status, attempts, result, error) of the report, on the primary."""
    row = primary.execute(
        "SELECT status, attempts, result, error FROM reports WHERE id = %s", (report_id,)
    ).fetchone()
    assert row is not None
    return row[0], row[1], row[2], row[3]


def orders(primary: psycopg.Connection, items: list[str], quantity: int = 2) -> None:
    for item in items:
        primary.execute("INSERT INTO orders (item, quantity) VALUES (%s, %s)", (item, quantity))


# --- the actor, end to end in process -------------------------------------------------------


def test_a_report_is_built_once_however_often_its_message_arrives(
    healthy_stack: Stack, primary: psycopg.Connection
) -> None:
    mark = f"worker-once-{uuid.uuid4().hex}"
    orders(primary, [f"{mark}-a", f"{mark}-b", f"{mark}-a"])
    report_id = queued_report(primary, {"item_prefix": mark})
    with worker(healthy_stack) as root:
        run(root, report_id)
        first = state(primary, report_id)
        run(root, report_id)  # a second delivery: finds it done, does nothing
    status, attempts, result, error = state(primary, report_id)
    assert (status, attempts, error) == ("done", 1, "")
    assert (result["orders"], result["quantity"]) == (3, 6)
    assert result["top_items"] == [{"item": f"{mark}-a", "quantity": 4},
                                   {"item": f"{mark}-b", "quantity": 2}]  # fmt: skip
    assert state(primary, report_id) == first


def test_the_report_sees_every_order_committed_before_it_while_the_replica_lags(
    healthy_stack: Stack, primary: psycopg.Connection
) -> None:
    """The claim's consistency token routes the aggregation: with replay paused, the
    replica lacks the new orders, so the primary answers and the report counts them all."""
    mark = f"worker-fresh-{uuid.uuid4().hex}"
    with worker(healthy_stack) as root, replay_paused(healthy_stack):
        orders(primary, [f"{mark}-{n}" for n in range(5)])
        report_id = queued_report(primary, {"item_prefix": mark})
        run(root, report_id)
    status, _, result, _ = state(primary, report_id)
    assert (status, result["orders"]) == ("done", 5)


def test_bad_parameters_fail_the_report_at_once_with_the_reason(
    healthy_stack: Stack, primary: psycopg.Connection
) -> None:
    """A `since` PostgreSQL refuses (one stored before the API checked it, say) is not worth
    another attempt: failed after one, with a stable reason, never PostgreSQL's own text."""
    report_id = queued_report(primary, {"since": "not a date"})
    with worker(healthy_stack, JOBS_MAX_RETRIES=3) as root:
        run(root, report_id)
    status, attempts, result, error = state(primary, report_id)
    assert (status, attempts, result) == ("failed", 1, None)
    assert error == f"failed after 1 attempt: invalid_parameters ({REASONS['invalid_parameters']})"


def test_a_failing_upstream_is_retried_then_the_report_is_failed(
    healthy_stack: Stack, primary: psycopg.Connection
) -> None:
    report_id = queued_report(primary, {"include_tips": True})
    with UpstreamControl(healthy_stack.env["TIPS_UPSTREAM_CONTROL_URL"]) as control:
        control.set_mode("error", status=503)
        try:
            with worker(healthy_stack, JOBS_MAX_RETRIES=2) as root:
                run(root, report_id)
        finally:
            control.set_mode("normal")
    status, attempts, _, error = state(primary, report_id)
    assert (status, attempts) == ("failed", 3)  # the first run and two retries
    assert error == f"failed after 3 attempts: upstream_failed ({REASONS['upstream_failed']})"


def test_an_open_primary_breaker_delays_the_job_until_it_lets_calls_through(
    healthy_stack: Stack, primary: psycopg.Connection
) -> None:
    """The claim meets the open breaker: Retry after its open period, then the job runs."""
    report_id = queued_report(primary, {})
    with worker(healthy_stack, DATABASE_BREAKER_RESET_TIMEOUT=0.5) as root:
        breaker = root.primary_breaker

        async def open_breaker() -> None:  # on the worker's loop, once the monitor sees all
            await root.database.monitor.first_round()
            breaker.open("opened by the test")

        async_to_sync(open_breaker)()
        run(root, report_id)
        counts = breaker.stats()
    status, attempts, _, error = state(primary, report_id)
    assert (status, attempts, error) == ("done", 1, "")
    # Refused: the claim, and the note that it will be retried; then one probe closes it.
    assert (counts["calls_rejected"], counts["half_opened"], counts["closed"]) == (2, 1, 1)


# --- the job's query on the real PostgreSQL -------------------------------------------------


def order_items(mark: str) -> list[str]:
    return [f"{mark}%1", f"{mark}x1", f"{mark}_2", f"{mark}y2", f"{mark}\\3", f"{mark}3"]


@pytest.fixture
async def conn(healthy_stack: Stack) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection to the primary, its work rolled back at the end."""
    async with await psycopg.AsyncConnection.connect(healthy_stack.env["DATABASE_URL"]) as conn:
        yield conn
        await conn.rollback()


@pytest.mark.parametrize(
    ("suffix", "items"),
    [
        ("", 6),
        ("%", 1),  # only the item with a literal percent, not every item
        ("_", 1),  # only the literal underscore, not any one character
        ("\\", 1),  # a literal backslash, not an escape of what follows
        ("x", 1),
    ],
    ids=["prefix", "percent", "underscore", "backslash", "plain"],
)
async def test_item_prefix_matches_literally_in_the_worker_query(
    conn: psycopg.AsyncConnection[Any], suffix: str, items: int
) -> None:
    """The job's LIKE pattern on the real PostgreSQL matches exactly the items that start
    with the prefix: %, _ and backslash in a prefix are plain characters."""
    mark = f"worker-test-{uuid.uuid4().hex}"
    for item in order_items(mark):
        await conn.execute("INSERT INTO orders (item, quantity) VALUES (%s, 2)", (item,))
    report = await aggregate(conn, {"item_prefix": mark + suffix})
    expected = [item for item in order_items(mark) if item.startswith(mark + suffix)]
    assert len(expected) == items
    assert report["orders"] == items
    assert report["quantity"] == 2 * items
    assert sorted(entry["item"] for entry in report["top_items"]) == sorted(expected)


@pytest.mark.parametrize("prefix", ["50%", "a_b", "C:\\", "\\%", "%_\\", "_", "%", "\\", "tea"])
async def test_like_prefix_agrees_with_startswith_on_postgresql(
    conn: psycopg.AsyncConnection[Any], prefix: str
) -> None:
    """For strings near the prefix, PostgreSQL's LIKE with the pattern is str.startswith."""
    candidates = {prefix, prefix + "tail", "x" + prefix, prefix[:-1], prefix[:-1] + "x",
                  prefix.replace("%", "x"), prefix.replace("_", "y"), prefix.replace("\\", ""),
                  prefix.replace("\\", "\\\\"), ""}  # fmt: skip
    pattern = like_prefix(prefix)
    for candidate in sorted(candidates):
        cursor = await conn.execute("SELECT %s::text LIKE %s::text", (candidate, pattern))
        assert await cursor.fetchone() == (candidate.startswith(prefix),), candidate


@pytest.mark.parametrize(
    "since",
    [
        "2024-05-01T12:00:00+02:00",
        "2024-05-01T12:00:00Z",
        "2024-05-01",
        "2024-05-01 12:00:00.123456-07:30",
        "2024-05-01T12:00:00+05:30:15",
        "2024-05-01T12:00:00+15:59",
        "2024-05-01T12:00:00-15:59:59",
        "0001-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59.999999",
    ],
)
async def test_every_accepted_since_can_be_built(
    conn: psycopg.AsyncConnection[Any], since: str
) -> None:
    """A `since` the API accepts is one the job's query can use, meaning the same instant."""
    params = parse_report_params("application/json", json.dumps({"since": since}).encode())
    report = await aggregate(conn, params)
    assert report["orders"] >= 0
    cursor = await conn.execute("SELECT %s::timestamptz", (params["since"],))
    assert await cursor.fetchone() == (datetime.datetime.fromisoformat(params["since"]),)
