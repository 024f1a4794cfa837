"""The worker and the relay log as the web does: one JSON object a line with the same keys
(LOG_FORMAT=json), Dramatiq's own lines and every worker process's included; console lines
with LOG_FORMAT=console."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from devstack.stack import Stack
from tests.helpers import log_entries, wait_for
from tests.jobs import jobs, relay_process, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]

# What every line of the web's has (`resilience_async.JsonFormatter`), request id aside.
KEYS = {"ts", "level", "logger", "message", "service"}
LEVELS = {"debug", "info", "warning", "error", "critical"}


def test_the_worker_and_relay_write_the_webs_json_lines(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Every line of the worker (parent and both worker processes) and the relay is a JSON
    object with the web's keys and service."""
    with jobs(healthy_stack, tmp_path, WORKER_PROCESSES="2", REPORT_WORK_SECONDS="0") as system:
        relay = system.start(relay_process)
        worker = system.start(worker_process)
        wait_for(lambda: _ready_processes(worker.log_path) == {0, 1}, timeout=30)
        report = system.post()
        wait_for(system.all_done([report]), timeout=30)
        system.stop()  # the shutdown's lines too
        relay_lines, worker_lines = log_entries(relay.log_path), log_entries(worker.log_path)
        web_log = system.web.child.log_path
    web = log_entries(web_log)

    assert web
    service = {entry["service"] for entry in web}
    for entry in web + relay_lines + worker_lines:
        assert set(entry) >= KEYS, entry
        assert entry["level"] in LEVELS
        assert {entry["service"]} == service
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"])
    worker_loggers = {entry["logger"] for entry in worker_lines}
    # The parent, each worker process (configured after Dramatiq gave it its pipe), the
    # worker threads and the project's own middleware.
    assert {"dramatiq.MainProcess", "dramatiq.WorkerProcess(0)", "dramatiq.WorkerProcess(1)",
            "dramatiq.worker.Worker"} <= worker_loggers  # fmt: skip
    assert any(e["logger"] == "resilience_async.topology" for e in worker_lines)
    assert any(e["logger"] == "workers.outbox_relay" and "published" in e["message"]
               for e in relay_lines)  # fmt: skip


def test_the_worker_writes_console_lines_when_told(healthy_stack: Stack, tmp_path: Path) -> None:
    """LOG_FORMAT=console: the web's console lines, Dramatiq's own bracketed format nowhere."""
    with jobs(healthy_stack, tmp_path, LOG_FORMAT="console") as system:
        worker = system.start(worker_process)
        wait_for(lambda: "ready for action" in worker.log_path.read_text(), timeout=30)
        system.stop()
        lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]

    console = re.compile(r"\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.()]+: .+")
    assert lines
    assert [line for line in lines if not console.fullmatch(line)] == []
    assert any("dramatiq.WorkerProcess(0): Worker process is ready for action." in line
               for line in lines)  # fmt: skip


def _ready_processes(log: Path) -> set[int]:
    """The worker processes that said they are ready."""
    found = set()
    for entry in log_entries(log):
        matched = re.fullmatch(r"dramatiq\.WorkerProcess\((\d+)\)", entry["logger"])
        if matched and "ready for action" in entry["message"]:
            found.add(int(matched.group(1)))
    return found
