"""The same job flow with `BROKER_URL=amqp://`: a RabbitMQ node of the test's own.

RabbitMQ redelivers a dead consumer's unacknowledged messages as soon as its connection
closes, so a worker killed mid-job hands its job over at once, with no heartbeat to wait out.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.helpers import log_entries, wait_for
from tests.jobs import jobs, relay_process, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]


def test_jobs_run_through_rabbitmq_and_survive_a_killed_worker(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    with jobs(healthy_stack, tmp_path, broker_kind="rabbitmq", REPORT_WORK_SECONDS="2") as system:
        assert system.env["BROKER_URL"].startswith("amqp://")
        system.start(relay_process)
        doomed = system.start(worker_process)
        first = system.post()
        wait_for(lambda: system.states([first])[first][0] == "running", timeout=30)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.popen.wait(timeout=10)
        system.start(worker_process)
        more = [system.post() for _ in range(5)]
        finished = wait_for(system.all_done([first, *more]), timeout=60, interval=0.2)

    assert finished[first][:3] == ("done", 2, True)  # killed once, finished once
    assert {finished[report][:3] for report in more} == {("done", 1, True)}


def test_a_frozen_rabbitmq_node_loses_no_job_and_crashes_no_consumer(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """The node frozen (SIGSTOP) while jobs finish, so their acks wait on it: once it thaws
    every job is done, and the worker logged no error."""
    with jobs(healthy_stack, tmp_path, broker_kind="rabbitmq", REPORT_WORK_SECONDS="1") as system:
        system.start(relay_process)
        worker = system.start(worker_process)
        ids = system.some_running(8)
        node = system.broker.children["rabbitmq"]
        os.killpg(node.pid, signal.SIGSTOP)
        try:  # until a job has finished: its ack is waiting on the frozen node
            wait_for(lambda: any(s[0] == "done" for s in system.states(ids).values()), timeout=30)
        finally:
            os.killpg(node.pid, signal.SIGCONT)
        more = [system.post() for _ in range(4)]
        finished = wait_for(system.all_done(ids + more), timeout=90, interval=0.5)
        entries = log_entries(worker.log_path)

    assert {state[0] for state in finished.values()} == {"done"}
    assert [entry for entry in entries if entry["level"] in {"error", "critical"}] == []
