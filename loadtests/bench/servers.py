"""The servers a benchmark compares, each pinned to one CPU core."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.stack import Stack
from devstack.stack.child import Child
from devstack.stack.ports import free_port
from devstack.stack.waits import http_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]
SERVER_CORE = 1
LOAD_CORE = 0


@dataclass(frozen=True)
class ServerSpec:
    """How to start one contender: a name for the table and the server command line.

    Args:
        core: the CPU core it is pinned to; the load generator's for an upstream that a
            part's measured process calls (`bench transport`).
    """

    name: str
    description: str
    argv_for_port: tuple[str, ...]  # "{port}" is replaced
    settings: tuple[tuple[str, str], ...] = ()  # on top of the bench's environment
    core: int = SERVER_CORE

    def argv(self, port: int) -> list[str]:
        return [arg.replace("{port}", str(port)) for arg in self.argv_for_port]


UVICORN = (
    sys.executable,
    "-m",
    "uvicorn",
    "--host",
    "127.0.0.1",
    "--port",
    "{port}",
    "--workers",
    "1",
    "--loop",
    "uvloop",
    "--no-access-log",
    "--log-level",
    "warning",
)
# This service as deployed: httptools with its request limits (project/serving.py), no
# WebSocket protocol.
SERVICE_HTTP = ("--http", "project.serving:HttpProtocol", "--ws", "none")

ASYNC_SERVICE = ServerSpec(
    "async service",
    "this project: uvicorn, EventLoopASGIHandler, async-native middleware",
    (*UVICORN, *SERVICE_HTTP, "project.asgi:application"),
)
ASYNC_PER_REQUEST = ServerSpec(
    "async, call per request",
    "the async service with CACHE_SINGLE_FLIGHT=0: one upstream call per request",
    (*UVICORN, *SERVICE_HTTP, "project.asgi:application"),
    (("CACHE_SINGLE_FLIGHT", "0"),),
)
ASYNC_UNLIMITED = ServerSpec(
    "async, no rate limit",
    "the async service with RATE_LIMIT_KEY=off: writes authenticated, never limited",
    (*UVICORN, *SERVICE_HTTP, "project.asgi:application"),
    (("RATE_LIMIT_KEY", "off"),),
)
ASYNC_LATENCY_BLIND = ServerSpec(
    "async, reads by lag alone",
    "the async service with DATABASE_LATENCY_ROUTING=0 and DATABASE_HEDGE=0",
    (*UVICORN, *SERVICE_HTTP, "project.asgi:application"),
    (("DATABASE_LATENCY_ROUTING", "0"), ("DATABASE_HEDGE", "0")),
)
STOCK_ASGI = ServerSpec(
    "stock Django ASGI",
    "uvicorn, Django's ASGIHandler, SecurityMiddleware + CommonMiddleware",
    (*UVICORN, "--http", "httptools", "loadtests.bench.stock_asgi:application"),
)
SYNC_DJANGO = ServerSpec(
    "sync Django",
    "the guide's twin: gunicorn, 1 sync worker, stock middleware, sync view",
    (
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        "127.0.0.1:{port}",
        "--workers",
        "1",
        "--worker-class",
        "sync",
        "--log-level",
        "warning",
        "loadtests.twin.wsgi:application",
    ),
)


# The ceiling: uvicorn with httptools (as the service has it) and nothing else in the path.
BARE_ASGI = ServerSpec(
    "bare ASGI app",
    "the ceiling: uvicorn + httptools, a 10-line ASGI app: no Django, no routing",
    (*UVICORN, "--http", "httptools", "loadtests.bench.bare_asgi:application"),
)

SYNC_TUNED = ServerSpec(
    "sync Django tuned",
    "gunicorn gthread, 1 worker x 64 threads, lock-free pybreaker, pooled requests",
    (sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:{port}", "--workers", "1",
     "--worker-class", "gthread", "--threads", "64", "--log-level", "warning",
     "loadtests.twin.tuned_wsgi:application"),
)  # fmt: skip


class RunningServer:
    def __init__(self, spec: ServerSpec, child: Child, port: int) -> None:
        self.spec = spec
        self.child = child
        self.url = f"http://127.0.0.1:{port}"


def pin_to(core: int) -> None:
    """Pin this process to `core` when the machine has it (one core each: fair and quiet)."""
    if (os.cpu_count() or 1) > core:
        os.sched_setaffinity(0, {core})


def pin_stack(stack: Stack, core: int = LOAD_CORE) -> None:
    """Keep the dependencies (upstream, Redis, PostgreSQL) off the servers' core."""
    if (os.cpu_count() or 1) > core:
        for child in stack.children.values():
            os.sched_setaffinity(child.pid, {core})


def start(spec: ServerSpec, env: Mapping[str, str], log_dir: Path) -> RunningServer:
    return start_all([spec], env, log_dir)[0]


def start_all(
    specs: Sequence[ServerSpec], env: Mapping[str, str], log_dir: Path
) -> list[RunningServer]:
    """Start every server at once, then wait until each answers (their start-ups overlap)."""
    running: list[RunningServer] = []
    try:
        # Spawned from this thread: each child dies with the thread that started it.
        running.extend(_spawn(spec, env, log_dir) for spec in specs)
        for server in running:
            wait_until(server.child, http_ok(f"{server.url}/health/live"), what=server.url)
    except BaseException:
        for server in running:
            server.child.stop(timeout=10)
        raise
    return running


@contextlib.contextmanager
def serving(
    specs: Sequence[ServerSpec], env: Mapping[str, str], log_dir: Path
) -> Iterator[list[RunningServer]]:
    """`start_all`, then every server stopped on the way out."""
    running = start_all(specs, env, log_dir)
    try:
        yield running
    finally:
        stop_all(running)


def stop_all(running: Sequence[RunningServer]) -> None:
    for server in running:
        server.child.begin_stop()
    deadline = time.monotonic() + 10
    for server in running:
        server.child.finish_stop(deadline)


def pinned(argv: Sequence[str], core: int) -> list[str]:
    """`argv` run on `core` only (as is on a machine without that core)."""
    if (os.cpu_count() or 1) > core:
        return ["taskset", "-c", str(core), *argv]
    return list(argv)


def _spawn(spec: ServerSpec, env: Mapping[str, str], log_dir: Path) -> RunningServer:
    port = free_port()
    child = Child(
        spec.name,
        pinned(spec.argv(port), spec.core),
        log_dir / f"{spec.name.replace(' ', '-')}.log",
        env={**os.environ, **env, **dict(spec.settings)},
        cwd=ROOT,
    )
    child.start()
    return RunningServer(spec, child, port)
