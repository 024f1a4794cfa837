"""Fixtures over real services: the local stack (once per session) and web servers on it.

Loaded for every test session (`-p tests.fix_stack` in pyproject); a stack starts only when
an integration test asks for it, so unit-only runs need no services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from loadtests.stack import Stack
from loadtests.stack.ports import free_port
from loadtests.stack.process import Child
from loadtests.stack.serve import uvicorn_argv
from loadtests.stack.waits import http_ok, wait_until
from loadtests.upstream import UpstreamControl

ROOT = Path(__file__).resolve().parents[1]
HEALTH_TOKEN = "test-health-token"


def migrate(env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"migrate failed: {result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The session's PostgreSQL primary + replica, Redis and demo upstream, migrated."""
    local = Stack(state_dir=tmp_path_factory.mktemp("stack-state"))
    local.start()
    try:
        migrate(local.env)
        yield local
    finally:
        local.stop()


@pytest.fixture
def healthy_stack(stack: Stack) -> Stack:
    """The session stack with every dependency running again, whatever earlier tests did."""
    stack.heal()
    with UpstreamControl(stack.env["TIPS_UPSTREAM_CONTROL_URL"]) as control:
        control.set_mode("normal")
    return stack


class WebServer:
    """A real uvicorn process serving `project.asgi:application` against a stack."""

    def __init__(self, child: Child, port: int) -> None:
        self.child = child
        self.url = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def get(self, path: str, *, token: bool = True) -> httpx.Response:
        headers = {"X-Health-Token": HEALTH_TOKEN} if token else {}
        return self.client.get(path, headers=headers)

    def wait_live(self) -> None:
        wait_until(self.child, http_ok(f"{self.url}/health/live"), what=self.url)


@contextmanager
def run_web(
    stack: Stack, log_dir: Path, *, workers: int = 1, **settings: str
) -> Iterator[WebServer]:
    """Serve the app on a free port with the stack's settings plus `settings`."""
    port = free_port()
    env = {
        **os.environ,
        **stack.env,
        "HEALTH_TOKEN": HEALTH_TOKEN,
        "LOG_FORMAT": "json",
        "HEALTH_CACHE_TTL": "0.2",
        **settings,
    }
    argv = uvicorn_argv("127.0.0.1", port, workers)
    child = Child("web", argv, log_dir / f"web-{port}.log", env=env, cwd=ROOT)
    child.start()
    server = WebServer(child, port)
    try:
        server.wait_live()
        yield server
    finally:
        server.client.close()
        child.stop(timeout=8)


def wait_for(condition, timeout: float = 15.0, interval: float = 0.1):
    """Poll `condition()` until it returns a truthy value; fail with the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s; last value: {last!r}")


def kill(child: Child, signum: int = signal.SIGKILL) -> None:
    os.kill(child.pid, signum)
    if signum == signal.SIGKILL:
        child.popen.wait(timeout=10)  # type: ignore[union-attr]
