"""Running the load-plus-fault scenarios as users run them: `python -m loadtests scenario run`.

Plain code, imported by name (the lanes that run the shipped ones are in
`tests/fix_scenarios.py`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loadtests.scenario import spec
from tests.servers import ROOT

SCENARIOS = sorted(p.stem for p in spec.SHIPPED.glob("*.toml"))
# Longest first: the lanes end together, and no test waits long behind the others' runs.
BY_LENGTH = sorted(
    SCENARIOS, key=lambda name: -spec.load_scenario(spec.SHIPPED / f"{name}.toml").load.duration
)
# Long enough for each fault to show and heal, short enough for CI (each scenario ~30 s).
CI_SCALE = float(os.environ.get("SCENARIO_TEST_SCALE", "0.3"))
SHIPPED_TEST = "test_shipped_scenario_holds_its_slos"


def run_scenario(
    target: str, reports: Path, *, scale: float = CI_SCALE
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtests", "scenario", "run", target, "--scale", str(scale),
         "--reports", str(reports)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
