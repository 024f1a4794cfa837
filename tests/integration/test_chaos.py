"""The Chaos Toolkit experiments, run by the real `chaos run` against a running service.

The service is the session stack plus a real uvicorn server, recorded in a `state.json` of
the module's own, as `make run` records its services; `STACK_DIR` points the extension there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from devstack.faults import database, signals
from devstack.stack import Stack
from tests.servers import ROOT, WebServer, run_web

pytestmark = [pytest.mark.integration, pytest.mark.beside_scenarios]

EXPERIMENTS = ROOT / "loadtests" / "chaos"
CHAOS = Path(sys.executable).parent / "chaos"


@dataclass
class Target:
    """A running service as the extension finds it: state dir, web server, stack."""

    state_dir: Path
    web: WebServer
    stack: Stack


@dataclass
class Run:
    returncode: int
    journal: dict[str, Any]
    output: str


@pytest.fixture(scope="module")
def target(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    stack.heal()
    tmp = tmp_path_factory.mktemp("chaos")
    with run_web(stack, tmp, workers=2) as web:
        recorder = Stack(state_dir=tmp / "state")  # never started: it only writes state.json
        recorder.services = {name: dict(info) for name, info in stack.services.items()}
        recorder.env = dict(stack.env)
        recorder.add("web", web.child, port=int(web.url.rsplit(":", 1)[1]), url=web.url)
        recorder.serving = web.url
        recorder.write_state()
        yield Target(tmp / "state", web, stack)


@pytest.fixture
def healed(target: Target) -> Iterator[Target]:
    """The target, with Redis, replay and the web server running again after the test."""
    try:
        yield target
    finally:
        signals.resume(target.web.child.pid, name="web")
        target.stack.heal()
        database.resume_replay(target.stack.services["replica"]["url"])


def chaos_run(target: Target, experiment: Path, tmp_path: Path) -> Run:
    journal = tmp_path / "journal.json"
    result = subprocess.run(
        [str(CHAOS), "--no-version-check", "--log-file", str(tmp_path / "chaos.log"),
         "--settings", str(tmp_path / "settings.yaml"),
         "run", "--journal-path", str(journal), str(experiment)],
        cwd=ROOT,
        env={**os.environ, "STACK_DIR": str(target.state_dir)},
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )  # fmt: skip
    return Run(result.returncode, json.loads(journal.read_text()), result.stderr + result.stdout)


def test_kill_random_db_connection_holds(healed: Target, tmp_path: Path) -> None:
    """The guide's experiment completes without deviation: connections killed under the app
    cost no request."""
    run = chaos_run(healed, EXPERIMENTS / "kill-random-db-connection.json", tmp_path)
    assert run.returncode == 0, run.output
    assert run.journal["status"] == "completed"
    assert run.journal["deviated"] is False
    killed = [backend for activity in run.journal["run"] for backend in activity["output"]]
    assert len(killed) >= 4
    # Any connection of the app: its pools' and its health monitor's own.
    assert all(b["application_name"].startswith("resilience-") for b in killed), killed


@pytest.mark.parametrize("experiment", ["pause-redis.json", "replica-replay-paused.json"])
def test_fault_experiments_hold_and_roll_back(
    healed: Target, tmp_path: Path, experiment: str
) -> None:
    """Redis frozen, replica replay paused: the service holds, and the rollback undoes it."""
    run = chaos_run(healed, EXPERIMENTS / experiment, tmp_path)
    assert run.returncode == 0, run.output
    assert (run.journal["status"], run.journal["deviated"]) == ("completed", False)
    assert [r["status"] for r in run.journal["rollbacks"]] == ["succeeded"]
    with redis.Redis.from_url(healed.stack.env["REDIS_URL"], socket_timeout=2) as client:
        assert client.ping()
    assert not database.replica_lag(healed.stack.services["replica"]["url"]).paused


def test_a_broken_service_is_reported_as_a_deviation(healed: Target, tmp_path: Path) -> None:
    """The same steady state fails when the method freezes the web server: `chaos run`
    exits 1 with a deviated journal, and the rollback lets the server answer again."""
    experiment = json.loads((EXPERIMENTS / "kill-random-db-connection.json").read_text())
    provider = {"type": "python", "module": "loadtests.chaos.actions", "arguments": {"name": "web"}}
    experiment["method"] = [
        {"type": "action", "name": "pause-web", "provider": {**provider, "func": "pause_service"}}
    ]
    experiment["rollbacks"] = [
        {"type": "action", "name": "resume-web", "provider": {**provider, "func": "resume_service"}}
    ]
    path = tmp_path / "web-paused.json"
    path.write_text(json.dumps(experiment))
    run = chaos_run(healed, path, tmp_path)
    assert run.returncode == 1, run.output
    assert (run.journal["status"], run.journal["deviated"]) == ("completed", True)
    after = run.journal["steady_states"]["after"]
    assert after["steady_state_met"] is False
    assert after["probes"][0]["output"]["status"] == 0  # the paused server never answered
    assert [r["status"] for r in run.journal["rollbacks"]] == ["succeeded"]
    assert httpx.get(f"{healed.web.url}/health/live", timeout=5).status_code == 200
