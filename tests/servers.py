"""Real server processes on the stack: the web server (uvicorn), the one-shot migration and
other `manage.py` commands.

Context managers and plain functions, imported by name; the fixtures that start the stack
itself live in `tests/fix_stack.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from devstack.stack import Stack
from devstack.stack.child import Child
from devstack.stack.ports import free_port
from devstack.stack.supervisor import create_api_key, uvicorn_argv
from devstack.stack.waits import http_ok, wait_until

ROOT = Path(__file__).resolve().parents[1]
HEALTH_TOKEN = "test-health-token"


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
