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
# Long enough for each fault to show and heal, short enough for CI (each scenario ~30 s);
# a scenario's `min_scale` raises it (the Patroni failovers wait out a 20 s TTL).
CI_SCALE = float(os.environ.get("SCENARIO_TEST_SCALE", "0.3"))
SHIPPED_TEST = "test_shipped_scenario_holds_its_slos"


def ci_scale(name: str) -> float:
    """CI_SCALE, or a shipped scenario's own floor (a Patroni failover needs its TTL)."""
    if name not in SCENARIOS:
        return CI_SCALE
    return max(CI_SCALE, spec.load_scenario(spec.SHIPPED / f"{name}.toml").min_scale)


def _ci_length(name: str) -> float:
    return spec.load_scenario(spec.SHIPPED / f"{name}.toml").load.duration * ci_scale(name)


# Longest first (at the scale they run): the lanes end together, and no test waits long
# behind the others' runs.
BY_LENGTH = sorted(SCENARIOS, key=lambda name: -_ci_length(name))


def run_scenario(
    target: str, reports: Path, *, scale: float | None = None
) -> subprocess.CompletedProcess[str]:
    scale = ci_scale(target) if scale is None else scale
    return subprocess.run(
        [sys.executable, "-m", "loadtests", "scenario", "run", target, "--scale", str(scale),
         "--reports", str(reports)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
