"""The load-plus-fault scenarios, run as users run them: `python -m loadtests scenario run`.

Each shipped scenario runs end to end at a reduced scale (its own stack, fault proxy, app,
locust load, fault timeline, invariants) and must pass its SLOs; they run in lanes beside
other tests (`tests/fix_scenarios.py`), and so do the runner's own checks below. A scenario
built to fail must make the runner exit 1 and name the failed check, and an interrupted run
must leave no process (and so no fault) behind.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.stack.state import start_ticks
from tests.fix_scenarios import Runs
from tests.helpers import wait_for
from tests.scenarios import BY_LENGTH, SCENARIOS, run_scenario
from tests.servers import ROOT

pytestmark = pytest.mark.integration


def test_every_scenario_is_listed() -> None:
    listed = subprocess.run(
        [sys.executable, "-m", "loadtests", "scenario", "list"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names = [line.split()[0] for line in listed.splitlines() if line.strip()]
    assert names == SCENARIOS
    assert len(SCENARIOS) >= 14


# The two runs below are light (10 requests a second): they run beside the shipped
# scenarios' lanes too.
@pytest.mark.timeout(200)
@pytest.mark.usefixtures("shipped_runs")
def test_a_failed_slo_exits_1_and_is_named(tmp_path: Path) -> None:
    scenario = tmp_path / "impossible.toml"
    scenario.write_text(
        'description = "No service answers tips in a microsecond"\n'
        "[load]\nusers = 5\nstart_rate = 10\nstages = [{duration = 5, rate = 10}]\n"
        "mix = {tips = 1}\n"
        '[[slo]]\nendpoint = "tips"\nphase = "all"\nmax_error_rate = 0.0\np99 = 0.000001\n'
    )
    result = run_scenario(str(scenario), tmp_path, scale=1.0)
    assert result.returncode == 1, result.stdout + result.stderr
    failing = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert any("tips" in line and "p99" in line for line in failing), result.stdout


def test_a_bad_scenario_file_starts_nothing(tmp_path: Path) -> None:
    scenario = tmp_path / "typo.toml"
    scenario.write_text('description = "typo"\n[load]\nusres = 5\n')
    result = run_scenario(str(scenario), tmp_path)
    assert result.returncode == 2
    assert "load.usres" in result.stdout + result.stderr
    assert not (tmp_path / "typo").exists()


@pytest.mark.timeout(200)
@pytest.mark.usefixtures("shipped_runs")
def test_an_interrupted_run_leaves_no_process_and_no_fault(tmp_path: Path) -> None:
    scenario = tmp_path / "interrupted.toml"
    scenario.write_text(
        'description = "Redis paused until the end; interrupted meanwhile"\n'
        "[load]\nusers = 5\nstart_rate = 10\nstages = [{duration = 120, rate = 10}]\n"
        "mix = {tips = 1}\n"
        '[[faults]]\nname = "redis paused"\nkind = "pause"\ntarget = "redis"\nstart = 2\n'
    )
    runner = subprocess.Popen(
        [sys.executable, "-m", "loadtests", "scenario", "run", str(scenario),
         "--reports", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    state_file = tmp_path / "interrupted" / "stack" / "state.json"
    lines: list[str] = []
    try:
        assert runner.stdout is not None
        for line in runner.stdout:
            lines.append(line)
            if "faults: redis paused" in line:
                break
        else:
            pytest.fail("the fault never showed: " + "".join(lines))
        services = json.loads(state_file.read_text())["services"]
        run_dir = Path(json.loads(state_file.read_text())["run_dir"])
        runner.send_signal(signal.SIGINT)
        rest, _ = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    output = "".join(lines) + rest
    assert runner.returncode == 130, output
    assert "every fault undone" in output
    processes = {name: (s["pid"], s["start_ticks"]) for name, s in services.items()}
    # Every process of the run is gone (a pid alone may have been reused since: with its
    # start time it names one process).
    wait_for(lambda: all(start_ticks(pid) != ticks for pid, ticks in processes.values()),
             timeout=10)  # fmt: skip
    assert not run_dir.exists()
    assert not state_file.exists()


@pytest.mark.timeout(320)
@pytest.mark.parametrize("name", BY_LENGTH)
def test_shipped_scenario_holds_its_slos(name: str, shipped_runs: Runs) -> None:
    reports, runs = shipped_runs
    result = runs[name].result()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    report = json.loads((reports / name / "report.json").read_text())
    failed = [v for v in report["slos"] if not v["passed"]]
    failed += [i for i in report["invariants"] if not i["passed"]]
    assert failed == [], output
    assert report["invariants"], "the invariants were checked"
    assert (reports / name / "report.html").stat().st_size > 0
