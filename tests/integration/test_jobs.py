"""Background jobs end to end: request → outbox → relay → broker → worker → result.

Real processes throughout: the web server, `python -m project.relay`, Dramatiq workers
(`python -m project.worker`) and a Redis broker of each test's own, so the tests can kill and
restart it. The database is the session's primary and replica.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psycopg
import pytest
import redis

from devstack.stack import Stack
from devstack.upstream import UpstreamControl
from tests.helpers import log_entries, wait_for
from tests.jobs import jobs, relay_process, worker_process
from tests.servers import WebServer

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]


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
    assert error.startswith("failed after 3 attempts: upstream_failed (")
    assert shown["status"] == "failed"
    assert shown["error"] == error


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
    they were sent, the reports say they are unfinished: the relay publishes them again.

    Once: the republishing comes 4 s after the first publish, by when the worker (started
    with the restart) is up, and the jobs (no work time) end long before a second period
    could pass. With 2 s and 1 s jobs, a worker slow to boot had them published twice."""
    settings = {"JOBS_REPUBLISH_AFTER": "4", "REPORT_WORK_SECONDS": "0"}
    with jobs(healthy_stack, tmp_path, **settings) as system:
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


def test_a_worker_stopped_mid_job_lets_it_finish_before_it_exits(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """SIGTERM (what Ctrl-C under `make run` sends): the running job completes, once."""
    with jobs(healthy_stack, tmp_path, REPORT_WORK_SECONDS="2",
              WORKER_SHUTDOWN_TIMEOUT="20") as system:  # fmt: skip
        system.start(relay_process)
        worker = system.start(worker_process)
        report = system.post()
        wait_for(lambda: system.states([report])[report][0] == "running", timeout=20)
        os.kill(worker.pid, signal.SIGTERM)
        exit_code = worker.popen.wait(timeout=30)
        state = system.states([report])[report]

    assert state[:3] == ("done", 1, True)
    assert exit_code == 0


def test_the_relay_deletes_sent_messages_and_expired_keys(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Housekeeping: a published message and an idempotency key outlive their time by at
    most one housekeeping round; nothing unsent is touched."""
    key = f"prune-{os.getpid()}-{tmp_path.name}"
    with jobs(healthy_stack, tmp_path, REPORT_WORK_SECONDS="0", OUTBOX_KEEP_SENT="1",
              IDEMPOTENCY_KEY_TTL="1", JOBS_REPUBLISH_AFTER="2") as system:  # fmt: skip
        system.start(relay_process)
        system.start(worker_process)
        response = system.web.client.post("/api/reports", json={}, headers={"Idempotency-Key": key})
        report = response.json()["id"]
        wait_for(system.all_done([report]), timeout=30)
        gone = wait_for(lambda: _rows_left(system.primary_url, report, key) == (0, 0), timeout=20)

    assert response.status_code == 202
    assert gone is True


def _rows_left(primary_url: str, report: str, key: str) -> tuple[int, int]:
    with psycopg.connect(primary_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM outbox WHERE payload ->> 'report_id' = %s),"
            " (SELECT count(*) FROM idempotency_keys WHERE key = %s)",
            (report, key),
        ).fetchone()
    return (row[0], row[1]) if row else (-1, -1)


def test_a_worker_told_twice_to_stop_exits_at_once(healthy_stack: Stack, tmp_path: Path) -> None:
    """A second SIGTERM is Dramatiq's "kill now": every process of the worker exits, none
    left waiting on the event loop that runs the async actor."""
    with jobs(healthy_stack, tmp_path) as system:
        worker = system.start(worker_process)
        wait_for(lambda: "ready for action" in worker.log_path.read_text(), timeout=30)
        os.kill(worker.pid, signal.SIGTERM)
        # The second once the first has reached the worker process (two pending are one).
        wait_for(lambda: "Stopping worker process" in worker.log_path.read_text())
        os.kill(worker.pid, signal.SIGTERM)
        worker.popen.wait(timeout=15)
        with pytest.raises(ProcessLookupError):  # nothing left in its process group
            os.killpg(worker.pid, 0)


def test_a_frozen_broker_strands_no_ack_and_crashes_no_consumer(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """The broker's Redis frozen (SIGSTOP) past its socket timeout while jobs finish: their
    acks wait for it instead of being given up, no consumer crashes, and once it thaws every
    job is done and no message is left in an ack set."""
    with jobs(healthy_stack, tmp_path, REPORT_WORK_SECONDS="1") as system:
        system.start(relay_process)
        worker = system.start(worker_process)
        ids = system.some_running(8)
        broker_redis = system.broker.children["redis"]
        os.kill(broker_redis.pid, signal.SIGSTOP)
        try:  # until an ack has timed out and is being retried
            wait_for(lambda: "Failed to post_process_message" in worker.log_path.read_text(),
                     timeout=30)  # fmt: skip
        finally:
            os.kill(broker_redis.pid, signal.SIGCONT)
        finished = wait_for(system.all_done(ids), timeout=60, interval=0.2)
        # A row says done before its ack, held back by the frozen broker, is retried: Dramatiq
        # retries a failed ack 5 s after the failure, so the ack sets drain within that.
        broker_url = system.env["BROKER_URL"]
        drained = wait_for(lambda: not _ack_set_sizes(broker_url), timeout=30,
                           show=lambda: _ack_set_sizes(broker_url))  # fmt: skip
        log = worker.log_path.read_text()
        entries = log_entries(worker.log_path)

    assert {state[0] for state in finished.values()} == {"done"}
    assert drained is True
    assert [entry for entry in entries if entry["level"] == "critical"] == []
    assert "You've found a bug" not in log


def _ack_set_sizes(broker_url: str) -> dict[str, int]:
    """Messages still in a worker's ack set, by set (empty when every one was acked)."""
    client = redis.Redis.from_url(broker_url)
    try:
        sizes = {key.decode(): client.scard(key) for key in client.scan_iter("dramatiq:__acks__.*")}
    finally:
        client.close()
    return {key: size for key, size in sizes.items() if size}
