"""Background jobs end to end: request → outbox → relay → broker → worker → result.

Real processes throughout: the web server, `python -m workers.relay`, Dramatiq workers
(`python -m workers`) and a Redis broker of each test's own, so the tests can kill and
restart it. The database is the session's primary and replica.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import pytest

from loadtests.stack import Stack
from loadtests.stack.process import Child
from loadtests.stack.serve import relay_child, worker_child
from loadtests.upstream import UpstreamControl
from tests.fix_stack import WebServer, run_web, wait_for

pytestmark = pytest.mark.integration

# Fast but honest timings: a job takes a second, a dead worker is noticed after 3 s and
# every broker command runs the maintenance that requeues a dead worker's messages.
JOB_SETTINGS = {
    "REPORT_WORK_SECONDS": "1",
    "JOBS_HEARTBEAT_TIMEOUT": "3",
    "JOBS_MAINTENANCE_CHANCE": "1",
    "JOBS_MIN_BACKOFF": "0.1",
    "JOBS_MAX_BACKOFF": "0.3",
    "JOBS_MAX_RETRIES": "2",
    "RELAY_INTERVAL": "0.2",
    "WORKER_PROCESSES": "1",
    "WORKER_THREADS": "4",
    "WORKER_SHUTDOWN_TIMEOUT": "1",
    "LOG_FORMAT": "json",
}
_names = itertools.count(1)


class Jobs:
    """A broker of its own, and the web, relay and worker processes around it."""

    def __init__(self, broker: Stack, web: WebServer, env: dict[str, str], log_dir: Path):
        self.broker = broker
        self.web = web
        self.env = env
        self.log_dir = log_dir
        self.processes: list[Child] = []
        self.primary_url = env["DATABASE_URL"]

    def start(self, make) -> Child:
        child = make(self.broker, self.env, f"{make.__name__.split('_')[0]}-{next(_names)}")
        child.start()
        self.processes.append(child)
        return child

    def post(self, params: dict | None = None) -> str:
        response = self.web.client.post("/api/reports", json=params or {})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    def states(self, ids: list[str]) -> dict[str, tuple[str, int, bool, str]]:
        """id -> (status, attempts, has a result, error), straight from the primary."""
        with psycopg.connect(self.primary_url) as conn:
            rows = conn.execute(
                "SELECT id::text, status, attempts, result IS NOT NULL, error FROM reports "
                "WHERE id = ANY(%s::uuid[])",
                (ids,),
            ).fetchall()
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}

    def all_done(self, ids: list[str]):
        def check():
            states = self.states(ids)
            done = [s for s in states.values() if s[0] == "done"]
            return states if len(done) == len(ids) else None

        return check

    def stop(self) -> None:
        for child in self.processes:
            child.stop(timeout=5)


@contextmanager
def jobs(healthy_stack: Stack, tmp_path: Path, **settings: str) -> Iterator[Jobs]:
    external = {name: healthy_stack.env[name] for name in
                ("DATABASE_URL", "DATABASE_REPLICA_URLS", "TIPS_UPSTREAM_URL")}  # fmt: skip
    broker = Stack(state_dir=tmp_path / "broker-state", external=external)
    broker.start()
    merged = {**JOB_SETTINGS, **settings}
    env = {**os.environ, **broker.env, **merged}
    with ExitStack() as cleanup:
        cleanup.callback(broker.stop)
        web = cleanup.enter_context(run_web(broker, tmp_path, **merged))
        running = Jobs(broker, web, env, tmp_path)
        cleanup.callback(running.stop)
        yield running


def relay_process(broker: Stack, env: dict[str, str], name: str) -> Child:
    return relay_child(broker, env, name)


def worker_process(broker: Stack, env: dict[str, str], name: str) -> Child:
    return worker_child(broker, env, name)


def test_reports_accepted_while_the_broker_is_down_all_finish_once_it_is_back(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    with jobs(healthy_stack, tmp_path, REPORT_WORK_SECONDS="0") as system:
        system.start(relay_process)
        system.start(worker_process)
        os.kill(system.broker.children["redis"].pid, signal.SIGKILL)
        system.broker.children["redis"].popen.wait(timeout=10)

        ids = [system.post({"item_prefix": f"broker-down-{n}"}) for n in range(100)]
        ready = wait_for(lambda: _backlog_at_least(system.web, 100))
        system.broker.restart("redis")
        finished = wait_for(system.all_done(ids), timeout=60, interval=0.2)

    assert ready["broker:responseTime"][0]["status"] == "fail"
    assert len(finished) == 100
    assert {state[:3] for state in finished.values()} == {("done", 1, True)}


def test_a_worker_killed_mid_job_leaves_it_to_another_that_finishes_it_once(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    with jobs(healthy_stack, tmp_path, REPORT_WORK_SECONDS="5", WORKER_THREADS="1") as system:
        system.start(relay_process)
        doomed = system.start(worker_process)
        report = system.post()
        wait_for(lambda: system.states([report])[report][0] == "running", timeout=20)
        os.killpg(doomed.pid, signal.SIGKILL)  # the Dramatiq parent and its worker process
        doomed.popen.wait(timeout=10)
        system.start(worker_process)
        finished = wait_for(system.all_done([report]), timeout=30, interval=0.2)

    status, attempts, has_result, _ = finished[report]
    assert (status, has_result) == ("done", True)
    assert attempts == 2  # the killed run, then the redelivered one; one result


def test_a_job_that_keeps_failing_ends_failed_with_its_reason(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    control = UpstreamControl(healthy_stack.env["TIPS_UPSTREAM_CONTROL_URL"])
    control.set_mode("error", status=503)
    try:
        with jobs(healthy_stack, tmp_path) as system:
            system.start(relay_process)
            system.start(worker_process)
            report = system.post({"include_tips": True})
            failed = wait_for(
                lambda: (state := system.states([report])[report])[0] == "failed" and state,
                timeout=30,
            )
            shown = system.web.client.get(f"/api/reports/{report}").json()
    finally:
        control.set_mode("normal")
        control.close()

    status, attempts, has_result, error = failed
    assert (status, has_result) == ("failed", False)
    assert attempts == 3  # the first run and JOBS_MAX_RETRIES=2 retries
    assert "tips upstream answered 503" in error
    assert error.startswith("failed after")
    assert shown["status"] == "failed"
    assert "tips upstream answered 503" in shown["error"]


def test_two_relays_never_publish_a_row_twice(healthy_stack: Stack, tmp_path: Path) -> None:
    with jobs(healthy_stack, tmp_path, REPORT_WORK_SECONDS="0", RELAY_BATCH="5") as system:
        system.start(relay_process)
        system.start(relay_process)
        system.start(worker_process)
        ids = [system.post() for _ in range(200)]
        finished = wait_for(system.all_done(ids), timeout=60, interval=0.2)
        with psycopg.connect(system.primary_url) as conn:
            published = conn.execute(
                "SELECT attempts, count(*) FROM outbox "
                "WHERE payload ->> 'report_id' = ANY(%s) GROUP BY attempts",
                (ids,),
            ).fetchall()

    assert published == [(1, 200)]  # each row published by exactly one relay, once
    assert {state[:3] for state in finished.values()} == {("done", 1, True)}


def test_jobs_lost_with_the_broker_are_published_again(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Redis restarted without its data loses the queued messages; the outbox rows say
    they were sent, the reports say they are unfinished: the relay publishes them again."""
    with jobs(healthy_stack, tmp_path, JOBS_REPUBLISH_AFTER="2") as system:
        system.start(relay_process)
        ids = [system.post() for _ in range(5)]
        wait_for(lambda: _all_sent(system.primary_url, ids))
        system.broker.restart("redis")  # no worker ran: the queue held all five; now empty
        system.start(worker_process)
        finished = wait_for(system.all_done(ids), timeout=60, interval=0.2)

    assert {state[:3] for state in finished.values()} == {("done", 1, True)}


def _backlog_at_least(web: WebServer, count: int):
    response = web.get("/health/ready")
    checks = response.json()["checks"]
    backlog = checks["outbox:backlog"][0].get("observedValue", 0)
    return checks if response.status_code == 200 and backlog >= count else None


def _all_sent(primary_url: str, ids: list[str]) -> bool:
    with psycopg.connect(primary_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL "
            "AND payload ->> 'report_id' = ANY(%s)",
            (ids,),
        ).fetchone()
    return row == (len(ids),)
