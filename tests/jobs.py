"""Jobs around a broker of a test's own: the web, relay and worker processes, and what the
reports table says about them (straight from the primary)."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg

from devstack.stack import Stack
from devstack.stack.child import Child
from devstack.stack.supervisor import relay_child, worker_child
from tests.helpers import wait_for
from tests.servers import WebServer, run_web

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

    def some_running(self, count: int) -> list[str]:
        """Post `count` reports and wait until a worker runs one of them; their ids."""
        ids = [self.post() for _ in range(count)]
        wait_for(lambda: any(s[0] == "running" for s in self.states(ids).values()), timeout=30)
        return ids

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
def jobs(
    healthy_stack: Stack, tmp_path: Path, *, broker_kind: str = "redis", **settings: str
) -> Iterator[Jobs]:
    """A broker of its own (Redis, or RabbitMQ), the web server on it; the caller starts
    relays and workers with `start`. Database and upstream are the session's."""
    names = ["DATABASE_URL", "DATABASE_REPLICA_URLS", "TIPS_UPSTREAM_URL"]
    if broker_kind == "rabbitmq":
        names.append("REDIS_URL")  # the cache's; the stack starts RabbitMQ for the broker
    external = {name: healthy_stack.env[name] for name in names}
    broker = Stack(state_dir=tmp_path / "broker-state", external=external, broker=broker_kind)
    broker.start()
    # The session's API key (its database holds it): the web client writes with it.
    merged = {**JOB_SETTINGS, "API_KEY": healthy_stack.env["API_KEY"], **settings}
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
