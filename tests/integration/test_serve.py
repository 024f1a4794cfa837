"""`python -m devstack serve` (what `make run` runs): the system, supervised, stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack.ports import free_port, is_listening
from devstack.stack.state import StateDir
from tests.helpers import metric, wait_for
from tests.servers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]


def read_state(state_dir: Path) -> dict:
    try:
        return json.loads((state_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def live(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    state_dir, port = tmp_path / "stack", free_port()
    env = {**os.environ, "STACK_DIR": str(state_dir), "WEB_PORT": str(port), "WEB_CONCURRENCY": "2"}
    for name in (
        "DATABASE_URL",
        "DATABASE_REPLICA_URLS",
        "REDIS_URL",
        "BROKER_URL",
        "TIPS_UPSTREAM_URL",
    ):
        env.pop(name, None)
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "devstack", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: read_state(state_dir).get("serving") == url, timeout=60)
        yield process, state_dir, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # as Ctrl-C: it stops all and deletes its files
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        StateDir(state_dir).clean_stale()  # whatever a killed run left: processes, run dir


def test_serve_runs_everything_and_stops_it_all_on_sigint(
    served: tuple[subprocess.Popen[bytes], Path, str],
) -> None:
    """Ready lists primary, replica and redis; the relay and a worker run; SIGINT stops every
    process within 10 s."""
    process, state_dir, url = served
    ready = wait_for(
        lambda: (r := httpx.get(f"{url}/health/ready", timeout=5)).status_code == 200 and r
    )
    assert {key.split(":")[0] for key in ready.json()["checks"]} >= {
        "primary",
        "replica-1",
        "redis",
    }
    services = read_state(state_dir)["services"]
    assert set(services) >= {"primary", "replica", "redis", "upstream", "web", "relay", "worker"}
    ports = [service["port"] for service in services.values() if "port" in service]

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0  # within 10 s, or the wait raises
    assert [name for name, s in services.items() if pid_alive(s["pid"])] == []
    assert [port for port in ports if is_listening("127.0.0.1", port)] == []
    assert not (state_dir / "state.json").exists()


def test_a_dead_web_server_is_restarted(served: tuple[subprocess.Popen[bytes], Path, str]) -> None:
    """SIGKILL of the web server's master: the supervisor starts a new one on the same port."""
    _process, state_dir, url = served
    old_pid = read_state(state_dir)["services"]["web"]["pid"]
    os.kill(old_pid, signal.SIGKILL)
    wait_for(lambda: read_state(state_dir)["services"]["web"]["pid"] != old_pid, timeout=20)
    wait_for(lambda: live(url), timeout=30)


def test_a_dead_job_worker_is_restarted(
    served: tuple[subprocess.Popen[bytes], Path, str],
) -> None:
    """SIGKILL of the Dramatiq worker's whole group: the supervisor starts a new one."""
    _process, state_dir, _url = served
    old_pid = read_state(state_dir)["services"]["worker"]["pid"]
    os.killpg(old_pid, signal.SIGKILL)
    new_pid = wait_for(
        lambda: (pid := read_state(state_dir)["services"]["worker"]["pid"]) != old_pid and pid,
        timeout=20,
    )
    assert pid_alive(new_pid)


def test_metrics_cover_every_worker(served: tuple[subprocess.Popen[bytes], Path, str]) -> None:
    """/metrics sums the request counts of all uvicorn workers (multiprocess mode)."""
    _process, _state_dir, url = served

    def live_count() -> float:
        text = httpx.get(f"{url}/metrics", timeout=5).text
        labels = {"method": "GET", "route": "health/live", "status": "200"}
        return metric(text, "http_request_duration_seconds_count", **labels) or 0.0

    before = live_count()
    for _ in range(40):  # a new connection each: the kernel spreads them over both workers
        assert httpx.get(f"{url}/health/live", timeout=5).status_code == 200
    assert live_count() - before == 40
