"""`bench jobs`: reports accepted per second, and jobs finished per second end to end.

Accepted: `POST /api/reports` through the async service on one core, with no relay or
worker running (what a request costs: the report and its outbox row in one statement).
End to end: with the relay and N Dramatiq worker processes running, JOBS reports are posted
at once and the clock runs until every one is `done` (request → outbox → relay → broker →
worker → result). Jobs do no artificial waiting here (`REPORT_WORK_SECONDS=0`): what is
measured is the pipeline, each job still aggregating every order.
"""

from __future__ import annotations

import concurrent.futures
import os
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from loadtests.bench import servers
from loadtests.bench.report import Row, median_round, render, write
from loadtests.bench.seed import migrate_and_seed
from loadtests.loadgen import LoadResult, run_load_sync
from loadtests.stack import Stack
from loadtests.stack.serve import relay_child, worker_child
from loadtests.stack.waits import StackError

SEED_ORDERS = 1000
JOBS = 500
WORKER_COUNTS = (1, 2)
THREADS = 4


def run(*, duration: float, warmup: float, connections: int, rounds: int) -> str:
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    servers.pin_to(servers.LOAD_CORE)
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as scratch:
        work = Path(scratch)
        (work / "metrics").mkdir()
        with Stack(state_dir=work / "stack") as stack:
            migrate_and_seed(stack, SEED_ORDERS)
            env = {
                **os.environ,
                **stack.env,
                "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
                "LOG_LEVEL": "warning",
                "REPORT_WORK_SECONDS": "0",
                "WORKER_THREADS": str(THREADS),
                "RELAY_INTERVAL": "0.2",
            }
            service = servers.start(servers.ASYNC_SERVICE, env, work)
            try:
                accepted = [_accepted(service.url, connections, duration, warmup)
                            for _ in range(rounds)]  # fmt: skip
                end_to_end = {n: _end_to_end(stack, env, service.url, n) for n in WORKER_COUNTS}
            finally:
                service.child.stop(timeout=10)
    return _report(median_round(accepted), accepted, end_to_end, connections=connections,
                   duration=duration, rounds=rounds)  # fmt: skip


def _accepted(url: str, connections: int, duration: float, warmup: float) -> LoadResult:
    return run_load_sync(
        f"{url}/api/reports", connections=connections, duration=duration, warmup=warmup,
        method="POST", headers={"Content-Type": "application/json"}, body=b"{}",
    )  # fmt: skip


def _end_to_end(stack: Stack, env: dict[str, str], url: str, workers: int) -> dict[str, float]:
    """Post JOBS reports with the relay and `workers` worker processes running; time them."""
    _clear(stack)
    children = [relay_child(stack, env, "bench-relay")]
    children += [worker_child(stack, {**env, "WORKER_PROCESSES": str(workers)}, "bench-worker")]
    for child in children:
        child.start()
    try:
        with httpx.Client(base_url=url, timeout=10) as client, \
                concurrent.futures.ThreadPoolExecutor(16) as pool:  # fmt: skip
            # One untimed job first: the relay is publishing and a worker is consuming.
            warmup = client.post("/api/reports", json={}).json()["id"]
            _wait_done(stack, [warmup], time.monotonic() + 60)
            started = time.monotonic()
            responses = list(pool.map(lambda _: client.post("/api/reports", json={}),
                                      range(JOBS)))  # fmt: skip
        posted = time.monotonic()
        statuses = {response.status_code for response in responses}
        if statuses != {202}:
            raise StackError(f"not every report was accepted: {sorted(statuses)}")
        _wait_done(stack, [response.json()["id"] for response in responses], posted + 120)
        finished = time.monotonic()
    finally:
        for child in children:
            child.stop(timeout=10)
    elapsed = finished - started
    return {"jobs": JOBS, "seconds": elapsed, "jobs_per_s": JOBS / elapsed,
            "posting_s": posted - started}  # fmt: skip


def _clear(stack: Stack) -> None:
    """Drop what the acceptance rounds left (unpublished): the workers start with nothing."""
    with psycopg.connect(stack.services["primary"]["url"], autocommit=True) as conn:
        conn.execute("TRUNCATE reports, outbox")


def _wait_done(stack: Stack, ids: list[str], deadline: float) -> None:
    query = "SELECT count(*) FROM reports WHERE status = 'done' AND id = ANY(%s::uuid[])"
    with psycopg.connect(stack.services["primary"]["url"], autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(query, (ids,)).fetchone()
            if row == (len(ids),):
                return
            time.sleep(0.05)
    raise StackError(f"not every job finished within the deadline ({row} done)")


def _report(accepted: LoadResult, rounds_run: list[LoadResult],
            end_to_end: dict[int, dict[str, float]], *, connections: int, duration: float,
            rounds: int) -> str:  # fmt: skip
    rows = [Row("accepted: POST /api/reports", "report + outbox row, one statement", accepted)]
    settings = {
        "connections": connections, "duration_s": duration, "rounds": rounds,
        "accepted_rps_by_round": [round(r.rps) for r in rounds_run],
        "end_to_end": {str(n): figures for n, figures in end_to_end.items()},
        "worker_threads": THREADS, "report_work_seconds": 0,
    }  # fmt: skip
    path = write("jobs", rows, [], settings)
    title = (f"bench jobs: async service on 1 core, {connections} connections, {rounds} rounds "
             f"of {duration:g} s (median round)")  # fmt: skip
    lines = [render(title, rows, []), "end to end (post, relay, broker, worker, result):"]
    for workers, figures in end_to_end.items():
        lines.append(
            f"  {workers} worker process(es) x {THREADS} threads: {figures['jobs']:.0f} jobs in "
            f"{figures['seconds']:.2f} s = {figures['jobs_per_s']:.0f} jobs/s "
            f"(posting took {figures['posting_s']:.2f} s)"
        )
    return "\n".join(lines) + f"\n\nwritten to {path}"
