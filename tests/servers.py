"""Real server processes: the web server (uvicorn) on the stack, the one-shot migration and
other `manage.py` commands, and a demo upstream of a test's own.

Context managers and plain functions, imported by name; the fixtures that start the stack
itself live in `tests/fix_stack.py`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from devstack.stack import Stack
from devstack.stack.child import Child
from devstack.stack.ports import free_port
from devstack.stack.supervisor import create_api_key, uvicorn_argv
from devstack.stack.waits import http_ok, wait_until
from devstack.upstream import UpstreamControl

ROOT = Path(__file__).resolve().parents[1]
HEALTH_TOKEN = "test-health-token"
UPSTREAM_STOP_TIMEOUT = 5.0


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`manage.py *args` against the stack in `env`, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def migrate(env: dict[str, str]) -> None:
    """Migrate the stack's database, and put an API key in `env` (as `API_KEY`) unless it
    holds one."""
    result = manage(env, "migrate", "--noinput")
    assert result.returncode == 0, f"migrate failed: {result.stdout}{result.stderr}"
    if "API_KEY" not in env:  # migrating again keeps the key the tests already hold
        env["API_KEY"] = create_api_key({**os.environ, **env}, "tests")


class WebServer:
    """A real uvicorn process serving `project.asgi:application` against a stack."""

    def __init__(self, child: Child, port: int, api_key: str = "") -> None:
        self.child = child
        self.url = f"http://127.0.0.1:{port}"
        self.api_key = api_key
        # Writes need the key: the client sends it with every request, as a caller would.
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.url, timeout=10, headers=headers)

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
    server = WebServer(child, port, env.get("API_KEY", ""))
    try:
        server.wait_live()
        yield server
    finally:
        server.client.close()
        child.stop(timeout=8)


@dataclass(frozen=True)
class Upstream:
    """A demo upstream process of its own: its tips port and control port."""

    process: subprocess.Popen[str]
    port: int
    tips_url: str
    control_url: str


@contextmanager
def run_upstream(host: str = "127.0.0.1") -> Iterator[Upstream]:
    """`python -m devstack.upstream` on free ports, ready; stopped (and checked) at the end."""
    port, control_port = free_port(host), free_port(host)
    args = ["--host", host, "--port", str(port), "--control-port", str(control_port)]
    command = [sys.executable, "-m", "devstack.upstream", *args, "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    tips_url, control_url = f"http://{host}:{port}", f"http://{host}:{control_port}"
    try:
        with UpstreamControl(control_url) as control:
            control.wait_ready(timeout=10.0)
        assert process.stdout is not None
        ready = f"upstream ready tips={tips_url} control={control_url}\n"
        assert process.stdout.readline() == ready
        yield Upstream(process, port, tips_url, control_url)
    finally:
        _terminate(process)


def _terminate(process: subprocess.Popen[str]) -> None:
    """SIGTERM the upstream and insist it exits cleanly within UPSTREAM_STOP_TIMEOUT."""
    assert process.stdout is not None
    process.stdout.close()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=UPSTREAM_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            message = f"upstream ignored SIGTERM for {UPSTREAM_STOP_TIMEOUT}s"
            raise AssertionError(message) from None
    assert process.returncode == 0
