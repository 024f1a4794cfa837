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
import time
from typing import Any

import httpx
import psycopg

from devstack.stack import Stack
from devstack.stack.supervisor import relay_child, worker_child
from devstack.stack.waits import StackError
from loadtests.bench import servers
from loadtests.bench.generator import run_load_sync
from loadtests.bench.plan import Plan
from loadtests.bench.progress import SILENT, Progress
from loadtests.bench.report import Outcome, finish
from loadtests.bench.rounds import Rounds
from loadtests.bench.seed import write_headers
from loadtests.bench.stage import stage

SEED_ORDERS = 1000
JOBS, QUICK_JOBS = 500, 20
WORKER_COUNTS, QUICK_WORKER_COUNTS = (1, 2), (1,)
THREADS = 4
ACCEPTED, CEILING = "accepted: POST /api/reports", f"ceiling: {servers.BARE_ASGI.name}"


def run(plan: Plan, progress: Progress = SILENT, stack: Stack | None = None) -> Outcome:
    """Quick: 20 jobs end to end, with one worker process only."""
    servers.pin_to(servers.LOAD_CORE)
    counts = QUICK_WORKER_COUNTS if plan.quick else WORKER_COUNTS
    jobs = QUICK_JOBS if plan.quick else JOBS
    with stage("jobs", stack, orders=SEED_ORDERS) as where:
        settings = {"REPORT_WORK_SECONDS": "0", "WORKER_THREADS": str(THREADS),
                    "RELAY_INTERVAL": "0.2"}  # fmt: skip
        env = {**os.environ, **where.env("warning", **settings)}
        specs = [servers.ASYNC_SERVICE, servers.BARE_ASGI]
        with servers.serving(specs, env, where.work) as (service, ceiling):
            rounds = _accepted(service, ceiling, plan, progress, write_headers(where.stack))
            end_to_end = {n: _end_to_end(where.stack, env, service.url, n, jobs=jobs,
                                         progress=progress) for n in counts}  # fmt: skip
    return _report(rounds, end_to_end, plan)


def _accepted(service: servers.RunningServer, ceiling: servers.RunningServer, plan: Plan,
              progress: Progress, headers: dict[str, str]) -> Rounds:  # fmt: skip
    rounds = Rounds("jobs", plan.rounds, progress)
    post = {"method": "POST", "headers": headers, "body": b"{}"}
    for _ in rounds:
        for name, server in ((ACCEPTED, service), (CEILING, ceiling)):
            with rounds.turn(name, server) as turn:
                turn.add(name, run_load_sync(f"{server.url}/api/reports", **plan.load(), **post))
    return rounds


def _end_to_end(stack: Stack, env: dict[str, str], url: str, workers: int, *, jobs: int,
                progress: Progress) -> dict[str, float]:  # fmt: skip
    """Post `jobs` reports with the relay and `workers` worker processes running; time them."""
    label = f"{workers} worker process(es) x {THREADS} threads"
    progress.show("jobs", label, "end to end")
    _clear(stack)
    children = [relay_child(stack, env, "bench-relay")]
    children += [worker_child(stack, {**env, "WORKER_PROCESSES": str(workers)}, "bench-worker")]
    for child in children:
        child.start()
    try:
        headers = write_headers(stack)
        with httpx.Client(base_url=url, timeout=10, headers=headers) as client, \
                concurrent.futures.ThreadPoolExecutor(16) as pool:  # fmt: skip
            # One untimed job first: the relay is publishing and a worker is consuming.
            warmup = client.post("/api/reports", json={}).json()["id"]
            _wait_done(stack, [warmup], time.monotonic() + 60)
            started = time.monotonic()
            responses = list(pool.map(lambda _: client.post("/api/reports", json={}),
                                      range(jobs)))  # fmt: skip
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
    progress.show("jobs", label, "end to end", f"{jobs / elapsed:,.0f} jobs/s")
    return {"jobs": jobs, "seconds": elapsed, "jobs_per_s": jobs / elapsed,
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


def _report(rounds: Rounds, end_to_end: dict[int, dict[str, float]], plan: Plan) -> Outcome:
    medians = rounds.medians()
    setups = {ACCEPTED: "report + outbox row, one statement",
              CEILING: servers.BARE_ASGI.description}  # fmt: skip
    rows = [m.row(name, setups[name], "" if name == CEILING else CEILING)
            for name, m in medians.items()]  # fmt: skip
    settings: dict[str, Any] = {
        "rps_by_round": rounds.rps_by_round(),
        "end_to_end": {str(n): figures for n, figures in end_to_end.items()},
        "worker_threads": THREADS, "report_work_seconds": 0,
    }  # fmt: skip
    title = (f"bench jobs: async service on 1 core, {plan.connections} connections, "
             f"{plan.rounds} rounds of {plan.duration:g} s (median round)")  # fmt: skip
    notes = ["", "end to end (post, relay, broker, worker, result; no ceiling):"]
    for workers, figures in end_to_end.items():
        notes.append(
            f"  {workers} worker process(es) x {THREADS} threads: {figures['jobs']:.0f} jobs in "
            f"{figures['seconds']:.2f} s = {figures['jobs_per_s']:.0f} jobs/s "
            f"(posting took {figures['posting_s']:.2f} s)"
        )
    return finish("jobs", title, rows, [], plan=plan, settings=settings, notes=notes)
