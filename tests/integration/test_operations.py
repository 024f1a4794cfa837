"""Operators' `manage.py` commands against real data: the outbox backlog, stuck and failed
reports and their requeue, Dramatiq's dead letters on Redis and on RabbitMQ.

Each command runs as an operator runs it (a `manage.py` process with the stack's settings),
beside real web, relay and worker processes (`tests/jobs.py`).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from devstack.stack import Stack
from devstack.stack.ports import free_port
from devstack.upstream import UpstreamControl
from tests.helpers import forget_reports, log_entries, wait_for
from tests.jobs import Jobs, jobs, relay_process, worker_process
from tests.servers import manage

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]


def run_json(env: dict[str, str], *args: str) -> Any:
    """The command's `--json` document (the test fails on a non-zero exit)."""
    done = manage(env, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def failed_reports(system: Jobs, count: int = 1) -> list[str]:
    """Reports whose jobs keep failing (the tips upstream answers 503) until they are failed;
    posted together, so their retries' back-off runs at once."""
    reports = [system.post({"include_tips": True}) for _ in range(count)]
    wait_for(lambda: {state[0] for state in system.states(reports).values()} == {"failed"},
             timeout=30)  # fmt: skip
    return reports


def skipped_by_the_job(worker_log: Path, report: str) -> bool:
    """Whether the worker ran a message for `report` and found it finished (or failed)."""
    return any(
        entry["logger"] == "workers.reports"
        and entry["message"] == f"report {report} is finished already: nothing to do"
        for entry in log_entries(worker_log)
    )


def test_a_failed_report_is_listed_and_runs_again_once_requeued(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Its dead letter is listed and sent back to its queue, where the job leaves the failed
    report alone; `reports requeue` runs it again through the outbox, and it is built."""
    control = UpstreamControl(healthy_stack.env["TIPS_UPSTREAM_CONTROL_URL"])
    control.set_mode("error", status=503)
    try:
        with jobs(healthy_stack, tmp_path) as system:
            system.start(relay_process)
            worker = system.start(worker_process)
            [report] = failed_reports(system)
            control.set_mode("normal")
            failed = run_json(system.env, "reports", "failed")
            dead = run_json(system.env, "deadletters", "list")
            resent = run_json(system.env, "deadletters", "requeue", "--all")
            wait_for(lambda: skipped_by_the_job(worker.log_path, report))
            dead_after = run_json(system.env, "deadletters", "list")
            still = system.states([report])[report]
            requeued = run_json(system.env, "reports", "requeue", report)
            finished = wait_for(system.all_done([report]), timeout=30)
    finally:
        control.set_mode("normal")
        control.close()
    forget_reports(healthy_stack, [report])

    listed = {row["id"]: row for row in failed["reports"]}
    assert listed[report]["status"] == "failed"
    assert listed[report]["error"].startswith("failed after 3 attempts: upstream_failed (")
    assert failed["total"] >= 1
    [letter] = dead["reports"]
    assert (letter["actor"], letter["kwargs"], letter["queue"]) == (
        "build_report", {"report_id": report}, "reports",
    )  # fmt: skip
    assert letter["retries"] == 2
    assert "503" in letter["error"]
    assert [each["message_id"] for each in resent["reports"]] == [letter["message_id"]]
    assert dead_after == {"reports": []}
    assert still[0] == "failed"  # the dead letter alone does not run a failed report
    assert requeued == {"requeued": [report], "refused": {}}
    status, attempts, has_result, error = finished[report]
    assert (status, has_result, error) == ("done", True, "")
    assert attempts == 4  # three failed runs, then the requeued one


def test_the_backlog_and_stuck_reports_are_shown(healthy_stack: Stack, tmp_path: Path) -> None:
    """Unpublished messages are counted per actor until the relay publishes them; a report
    no worker took is stuck once it is older than the threshold."""
    with jobs(healthy_stack, tmp_path) as system:
        ids = [system.post() for _ in range(3)]
        backlog = run_json(system.env, "outbox")
        text = manage(system.env, "outbox").stdout
        system.start(relay_process)
        drained = wait_for(lambda: (found := run_json(system.env, "outbox"))["messages"] == 0
                           and found)  # fmt: skip
        with psycopg.connect(system.primary_url, autocommit=True) as conn:
            conn.execute("UPDATE reports SET updated_at = now() - interval '1 hour' "
                         "WHERE id = %s", (ids[0],))  # fmt: skip
        stuck = run_json(system.env, "reports", "stuck", "--older-than", "600")
        not_yet = run_json(system.env, "reports", "stuck", "--older-than", "7200")
    forget_reports(healthy_stack, ids)

    actors = {each["actor"]: each for each in backlog["actors"]}
    assert actors["build_report"]["messages"] >= 3
    assert backlog["messages"] >= 3
    assert backlog["oldest_seconds"] > 0
    assert "unpublished" in text
    assert "build_report" in text
    assert drained == {"messages": 0, "oldest_seconds": 0.0, "actors": []}
    stuck_ids = {row["id"]: row for row in stuck["reports"]}
    assert stuck_ids[ids[0]]["status"] == "queued"
    assert stuck_ids[ids[0]]["idle_seconds"] >= 3600
    assert ids[1] not in stuck_ids
    assert ids[0] not in {row["id"] for row in not_yet["reports"]}


def test_bad_input_is_refused_naming_the_argument(healthy_stack: Stack) -> None:
    """Each malformed argument is an error naming it, never a traceback; a report that is
    not failed is refused and left as it was."""
    env = healthy_stack.env
    done_report = _report_in_state(healthy_stack, "done")
    try:
        cases = {
            ("reports", "stuck", "--older-than", "-5"): "argument --older-than:",
            ("reports", "failed", "--limit", "0"): "argument --limit:",
            ("reports", "requeue", "not-a-uuid"): "argument ID: must be a report id",
            ("reports", "requeue"): "give the report IDs, or --all",
            ("reports", "requeue", done_report): f"ID: not failed, nothing requeued: "
            f"{done_report} (done)",
            ("deadletters", "requeue", "a/b"): "argument ID: must be a message id",
            ("deadletters", "list", "--queue", "reports.XQ"): "argument --queue:",
        }
        refused = {args: manage(env, *args) for args in cases}
        state = _status(healthy_stack, done_report)
    finally:
        forget_reports(healthy_stack, [done_report])

    for args, expected in cases.items():
        assert refused[args].returncode != 0, args
        assert expected in refused[args].stderr, (args, refused[args].stderr)
        assert "Traceback" not in refused[args].stderr
    assert state == "done"


def test_a_dead_database_or_broker_is_named_not_a_traceback(healthy_stack: Stack) -> None:
    """Nothing listening at DATABASE_URL, or at a Redis or RabbitMQ BROKER_URL: an error
    naming the setting."""
    dead_database = manage(healthy_stack.env | {"DATABASE_URL": _dead_url("postgresql")},
                           "reports", "failed")  # fmt: skip
    dead_redis = manage(healthy_stack.env | {"BROKER_URL": _dead_url("redis")},
                        "deadletters", "list")  # fmt: skip
    dead_rabbitmq = manage(healthy_stack.env | {"BROKER_URL": _dead_url("amqp")},
                           "deadletters", "list")  # fmt: skip

    assert dead_database.returncode == 1
    assert "CommandError: the database (DATABASE_URL) could not be reached" in (
        dead_database.stderr
    )
    for done in (dead_redis, dead_rabbitmq):
        assert done.returncode == 1
        assert "CommandError: the broker (BROKER_URL) could not be reached" in done.stderr
        assert "Traceback" not in done.stderr


def test_a_frozen_broker_and_a_garbage_dead_letter(healthy_stack: Stack, tmp_path: Path) -> None:
    """A dead letter that is not a message is listed as undecodable and never sent; a Redis
    frozen (SIGSTOP) past the socket timeout is an error naming the broker."""
    with jobs(healthy_stack, tmp_path) as system:
        client = redis.Redis.from_url(system.env["BROKER_URL"])
        dead_since = int(time.time() * 1000) - 60_000
        client.zadd("dramatiq:reports.XQ", {"junk-1": dead_since})
        client.hset("dramatiq:reports.XQ.msgs", "junk-1", b"\x00not json")
        client.close()
        listed = run_json(system.env, "deadletters", "list")
        resent = run_json(system.env, "deadletters", "requeue", "--all")
        broker_redis = system.broker.children["redis"]
        os.kill(broker_redis.pid, signal.SIGSTOP)
        try:
            frozen = manage(system.env, "deadletters", "list")
        finally:
            os.kill(broker_redis.pid, signal.SIGCONT)

    [letter] = listed["reports"]
    assert (letter["message_id"], letter["actor"]) == ("junk-1", "(undecodable)")
    assert letter["dead_since"] == dead_since / 1000
    assert resent == {"reports": []}
    assert frozen.returncode == 1
    assert "CommandError: the broker (BROKER_URL) could not be reached" in frozen.stderr


def test_dead_letters_on_rabbitmq_are_listed_and_sent_back(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """RabbitMQ's `reports.XQ` queue: listing leaves the letters there; requeueing sends
    them to `reports`, where a worker takes them."""
    control = UpstreamControl(healthy_stack.env["TIPS_UPSTREAM_CONTROL_URL"])
    control.set_mode("error", status=503)
    try:
        with jobs(healthy_stack, tmp_path, broker_kind="rabbitmq") as system:
            system.start(relay_process)
            worker = system.start(worker_process)
            reports = failed_reports(system, 2)
            control.set_mode("normal")
            listed = run_json(system.env, "deadletters", "list")
            listed_again = run_json(system.env, "deadletters", "list")
            first = next(e["message_id"] for e in listed["reports"]
                         if e["kwargs"]["report_id"] == reports[0])  # fmt: skip
            resent = run_json(system.env, "deadletters", "requeue", first)
            wait_for(lambda: skipped_by_the_job(worker.log_path, reports[0]))
            left = run_json(system.env, "deadletters", "list")
    finally:
        control.set_mode("normal")
        control.close()
    forget_reports(healthy_stack, reports)

    assert sorted(e["kwargs"]["report_id"] for e in listed["reports"]) == sorted(reports)
    assert all(e["dead_since"] is not None for e in listed["reports"])
    assert _by_id(listed_again) == _by_id(listed)  # reading takes nothing away
    assert [e["message_id"] for e in resent["reports"]] == [first]
    assert [e["kwargs"]["report_id"] for e in left["reports"]] == [reports[1]]


def _by_id(listed: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return sorted(listed["reports"], key=lambda letter: letter["message_id"])


def _report_in_state(stack: Stack, status: str) -> str:
    report = str(uuid.uuid4())
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO reports (id, status) VALUES (%s, %s)", (report, status))
    return report


def _status(stack: Stack, report: str) -> str:
    with psycopg.connect(stack.env["DATABASE_URL"]) as conn:
        row = conn.execute("SELECT status FROM reports WHERE id = %s", (report,)).fetchone()
    return row[0] if row else "missing"


def _dead_url(scheme: str) -> str:
    """A URL of `scheme` on a port where nothing listens."""
    port = free_port()
    return {
        "postgresql": f"postgresql://postgres@127.0.0.1:{port}/app",
        "redis": f"redis://127.0.0.1:{port}/0",
        "amqp": f"amqp://guest:guest@127.0.0.1:{port}/",
    }[scheme]
