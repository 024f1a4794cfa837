"""`python -m devstack up --detach` / `down`, and what a crashed run leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from tests.helpers import wait_for
from tests.servers import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]

SERVICE_URLS = (
    "DATABASE_URL",
    "DATABASE_REPLICA_URLS",
    "REDIS_URL",
    "BROKER_URL",
    "TIPS_UPSTREAM_URL",
)


def devstack(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_URLS}
    env["STACK_DIR"] = str(state_dir)
    return subprocess.run(
        [sys.executable, "-m", "devstack", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def exports(stdout: str) -> dict[str, str]:
    lines = [
        line.removeprefix("export ") for line in stdout.splitlines() if line.startswith("export ")
    ]
    return dict(line.split("=", 1) for line in lines)


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "zombie" not in status


def test_detached_stack_prints_settings_and_down_stops_it(tmp_path: Path) -> None:
    """up --detach returns with export lines for every service; down stops every process."""
    started = devstack(tmp_path, "up", "--detach")
    assert started.returncode == 0, started.stderr
    settings = exports(started.stdout)
    assert set(settings) >= set(SERVICE_URLS)
    state = json.loads((tmp_path / "state.json").read_text())
    pids = [service["pid"] for service in state["services"].values()] + [state["supervisor"]["pid"]]
    replica = state["services"]["replica"]["url"]
    with psycopg.connect(replica) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)

    stopped = devstack(tmp_path, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert [pid for pid in pids if alive(pid)] == []
    assert not Path(state["run_dir"]).exists()
    assert not (tmp_path / "state.json").exists()


def test_a_second_stack_on_the_same_state_is_refused(tmp_path: Path) -> None:
    """While a stack runs, another `up` on the same state directory fails and says why."""
    assert devstack(tmp_path, "up", "--detach").returncode == 0
    try:
        second = devstack(tmp_path, "up", "--detach")
        assert second.returncode == 1
        assert "already running" in second.stderr
    finally:
        devstack(tmp_path, "down")


def test_a_crashed_run_is_cleaned_not_reused(tmp_path: Path) -> None:
    """After the stack process is SIGKILLed, its services die and `down` deletes its run dir."""
    assert devstack(tmp_path, "up", "--detach").returncode == 0
    state = json.loads((tmp_path / "state.json").read_text())
    os.kill(state["supervisor"]["pid"], signal.SIGKILL)
    pids = [service["pid"] for service in state["services"].values()]
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=15)
    assert Path(state["run_dir"]).exists()

    cleaned = devstack(tmp_path, "down")
    assert cleaned.returncode == 0
    assert "removed stale run directory" in cleaned.stdout
    assert not Path(state["run_dir"]).exists()
    assert not (tmp_path / "state.json").exists()
