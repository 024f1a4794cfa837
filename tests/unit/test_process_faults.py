"""Process faults on short-lived processes of the test's own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.faults import FaultError, signals
from tests.helpers import wait_for

# A supervisor with two worker processes; it says "ready" once they run.
SUPERVISOR = (
    "import subprocess, sys, time\n"
    "kids = [subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])"
    " for _ in range(2)]\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def state(pid: int) -> str:
    """The process's state letter ('T' stopped, 'Z' zombie), '' once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return ""


def dead(pid: int) -> bool:
    return state(pid) in ("", "Z")


@pytest.fixture
def supervisor() -> Iterator[subprocess.Popen[str]]:
    """A process group of its own: a supervisor and its two workers."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True, process_group=0
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def group(proc: subprocess.Popen[str]) -> list[int]:
    return [proc.pid, *signals.worker_processes(proc.pid)]


def test_pause_stops_the_whole_group_and_resume_starts_it_again(
    supervisor: subprocess.Popen[str],
) -> None:
    """pause stops the supervisor and its workers; resume lets them all run again."""
    members = group(supervisor)
    assert len(members) == 3
    signals.pause(supervisor.pid, name="web")
    wait_for(lambda: all(state(pid) == "T" for pid in members))
    signals.resume(supervisor.pid, name="web")
    wait_for(lambda: all(state(pid) not in ("T", "", "Z") for pid in members))


def test_kill_ends_the_whole_group(supervisor: subprocess.Popen[str]) -> None:
    """kill leaves no process of the group running."""
    members = group(supervisor)
    signals.kill(supervisor.pid, name="web")
    assert supervisor.wait(timeout=10) == -signal.SIGKILL
    wait_for(lambda: all(dead(pid) for pid in members))


def test_terminate_asks_the_leader_only(supervisor: subprocess.Popen[str]) -> None:
    """terminate sends SIGTERM to the leader, which stops its workers itself (or not)."""
    workers = signals.worker_processes(supervisor.pid)
    signals.terminate(supervisor.pid, name="web")
    assert supervisor.wait(timeout=10) == -signal.SIGTERM
    assert not any(dead(pid) for pid in workers)


def test_kill_worker_processes_leaves_the_supervisor_alive(
    supervisor: subprocess.Popen[str],
) -> None:
    """One random worker is killed; the supervisor and the other worker live on."""
    workers = signals.worker_processes(supervisor.pid)
    killed = signals.kill_worker_processes(supervisor.pid, name="worker", count=1)
    assert len(killed) == 1
    assert killed[0] in workers
    wait_for(lambda: dead(killed[0]))
    assert signals.worker_processes(supervisor.pid) == [p for p in workers if p not in killed]
    assert supervisor.poll() is None


def test_kill_worker_processes_without_count_kills_every_worker(
    supervisor: subprocess.Popen[str],
) -> None:
    """count=None kills every worker and still not the supervisor."""
    workers = signals.worker_processes(supervisor.pid)
    assert sorted(signals.kill_worker_processes(supervisor.pid, count=None)) == workers
    wait_for(lambda: all(dead(pid) for pid in workers))
    assert supervisor.poll() is None


def test_errors_name_the_fault_and_its_target() -> None:
    """A gone process, a process without workers: the error says which fault, whom, why."""
    gone = subprocess.Popen([sys.executable, "-c", ""], process_group=0)
    gone.wait()
    with pytest.raises(FaultError, match=rf"^pause replica \(pid {gone.pid}\): no such process"):
        signals.pause(gone.pid, name="replica")
    with pytest.raises(FaultError, match=rf"^kill workers of web \(pid {gone.pid}\): no such"):
        signals.kill_worker_processes(gone.pid, name="web")
    lonely = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(FaultError, match="has no worker processes"):
            signals.kill_worker_processes(lonely.pid, name="relay")
        with pytest.raises(FaultError, match=r"resume relay \(pid \d+\): not a process group"):
            signals.resume(lonely.pid, name="relay")  # it shares our group: never signalled
    finally:
        lonely.kill()
        lonely.wait()


def test_our_own_process_group_is_never_signalled() -> None:
    """A fault aimed at the caller's own group is refused, not sent."""
    with pytest.raises(FaultError, match="refusing to signal this process group"):
        signals.kill(os.getpgrp(), name="tests")
