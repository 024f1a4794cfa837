"""Process faults, each with its undo: signals to a service's process group, killed worker
processes.

They take what both of their callers have: the scenario runner holds the `Stack`, a Chaos
Toolkit action only `.stack/state.json`; both know pids. Errors name the fault and its
target ("pause replica (pid 123): no such process"). The undo of each fault is its pair
(pause/resume); the runner's timeline keeps the undos.
"""

from __future__ import annotations

import os
import random
import signal
from pathlib import Path

from devstack.faults._common import FaultError, check_count, pick
from devstack.stack.state import cmdline, proc_stat


def kill(pid: int, *, name: str = "process") -> None:
    """SIGKILL the whole process group: the service vanishes mid-request (connections reset,
    nothing drained). `make run` restarts an app process; a dependency stays down."""
    _signal_group(pid, signal.SIGKILL, "kill", name)


def pause(pid: int, *, name: str = "process") -> None:
    """SIGSTOP the whole process group: the service hangs; the kernel still accepts its
    connections, so clients see timeouts, not refusals. Undone by `resume`."""
    _signal_group(pid, signal.SIGSTOP, "pause", name)


def resume(pid: int, *, name: str = "process") -> None:
    """SIGCONT the whole process group: a paused service answers again (queued work first)."""
    _signal_group(pid, signal.SIGCONT, "resume", name)


def terminate(pid: int, *, name: str = "process") -> None:
    """SIGTERM the group leader, as a supervisor stops it: uvicorn drains, then exits;
    PostgreSQL makes a smart shutdown (no new connections, waits for the current ones)."""
    _check_leader(pid, "terminate", name)
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError as exc:
        raise _signal_error("terminate", name, pid, exc) from exc


def worker_processes(pid: int) -> list[int]:
    """The live child processes of a supervisor, without multiprocessing's resource tracker."""
    return [
        child
        for child in _children(pid)
        if "multiprocessing.resource_tracker" not in (cmdline(child) or "")
    ]


def kill_worker_processes(
    pid: int, *, name: str = "process", count: int | None = None, rng: random.Random | None = None
) -> list[int]:
    """SIGKILL worker processes of a supervisor (uvicorn's `--workers`, Dramatiq's processes),
    leaving the supervisor alive, as an OOM kill of one worker does: requests in flight there
    get no answer; uvicorn starts a new worker; Dramatiq's supervisor stops and exits, and
    `make run` restarts it.

    Args:
        count: how many, chosen at random; None: every one. Returns the pids killed.
    """
    check_count(count)
    if _stat(pid) is None:
        raise FaultError(f"kill workers of {name} (pid {pid}): no such process")
    workers = worker_processes(pid)
    if not workers:
        raise FaultError(f"kill workers of {name} (pid {pid}): it has no worker processes")
    killed = []
    for worker in pick(workers, count, rng):
        try:
            os.kill(worker, signal.SIGKILL)
        except ProcessLookupError:
            continue  # it died by itself since it was listed
        except OSError as exc:
            raise FaultError(
                f"kill workers of {name} (pid {pid}): {worker}: {exc.strerror}"
            ) from exc
        killed.append(worker)
    return killed


def _signal_group(pid: int, signum: int, action: str, name: str) -> None:
    _check_leader(pid, action, name)
    try:
        os.killpg(pid, signum)
    except OSError as exc:
        raise _signal_error(action, name, pid, exc) from exc


def _check_leader(pid: int, action: str, name: str) -> None:
    """Refuse a pid that leads no group of its own: signalling its group could hit us."""
    if pid <= 1 or pid == os.getpgrp():
        raise FaultError(f"{action} {name} (pid {pid}): refusing to signal this process group")
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return  # the leader is gone; its group may live on (killpg says if not)
    if group != pid:
        raise FaultError(f"{action} {name} (pid {pid}): not a process group leader")


def _signal_error(action: str, name: str, pid: int, exc: OSError) -> FaultError:
    reason = "no such process" if isinstance(exc, ProcessLookupError) else exc.strerror
    return FaultError(f"{action} {name} (pid {pid}): {reason}")


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and parent pid, None when it is gone."""
    fields = proc_stat(pid)
    return None if fields is None else (fields[0], int(fields[1]))


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        stat = _stat(int(entry.name)) if entry.name.isdigit() else None
        if stat and stat[1] == pid and stat[0] != "Z":  # a zombie is already dead
            children.append(int(entry.name))
    return sorted(children)
