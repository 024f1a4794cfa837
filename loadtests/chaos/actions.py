"""Chaos Toolkit actions: faults on the running stack, by service name.

    {"type": "action", "name": "...", "provider": {"type": "python",
     "module": "loadtests.chaos.actions", "func": "pause_service",
     "arguments": {"name": "redis"}}}

Each returns what it did (JSON, kept in the journal) and raises naming the target when it
could not; the matching undo is the experiment's rollback.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from devstack.faults import database, signals
from loadtests.chaos import targets

APP_CONNECTIONS = "resilience-%"  # the app's pools, monitor and relay (their application_name)


def terminate_random_db_connection(
    count: int | None = 1,
    application_name: str | None = APP_CONNECTIONS,
    server: str = "primary",
    stack_dir: str | None = None,
) -> list[dict[str, Any]]:
    """Terminate `count` random app connections on `server` (None: every one); who was hit."""
    url = targets.database_url(server, stack_dir)
    done = database.terminate_backends(url, count=count, application_name=application_name)
    return [asdict(backend) for backend in done]


def pause_service(name: str, stack_dir: str | None = None) -> int:
    """SIGSTOP service `name`'s process group (it hangs until resumed); its pid."""
    pid = targets.pid(name, stack_dir)
    signals.pause(pid, name=name)
    return pid


def resume_service(name: str, stack_dir: str | None = None) -> int:
    """SIGCONT service `name`'s process group (the rollback of `pause_service`); its pid."""
    pid = targets.pid(name, stack_dir)
    signals.resume(pid, name=name)
    return pid


def kill_app_worker(name: str = "web", count: int = 1, stack_dir: str | None = None) -> list[int]:
    """SIGKILL `count` worker processes of the web server or the Dramatiq worker; their
    supervisors start new ones. The pids killed."""
    return signals.kill_worker_processes(targets.pid(name, stack_dir), name=name, count=count)


def pause_replica_replay(replica: str = "replica", stack_dir: str | None = None) -> None:
    """Stop the replica applying WAL: its data freezes while it keeps answering."""
    database.pause_replay(targets.database_url(replica, stack_dir))


def resume_replica_replay(replica: str = "replica", stack_dir: str | None = None) -> None:
    """Let the replica apply WAL again (the rollback of `pause_replica_replay`)."""
    database.resume_replay(targets.database_url(replica, stack_dir))
