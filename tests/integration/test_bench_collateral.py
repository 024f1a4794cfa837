"""`bench collateral` runs end to end at tiny durations and shows the starved sync twin."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.bench import collateral, report

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _cores() -> Iterator[None]:
    """The bench pins this process to the load generator's core: give the others back."""
    cores = os.sched_getaffinity(0)
    yield
    os.sched_setaffinity(0, cores)


def test_a_hanging_upstream_starves_the_sync_twin_and_not_the_async_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "REPORT_DIR", tmp_path)

    table = collateral.run(duration=0.5, warmup=0.2, connections=0, rounds=1)

    written = json.loads((tmp_path / "collateral.json").read_text())
    served = {server["name"]: server for server in written["servers"]}
    assert len(served) == 4 * 4 * 2  # conditions x servers x side endpoints
    assert served["hanging: async service /health/live"]["requests"] > 0
    assert served["hanging: sync Django /health/live"]["requests"] == 0
    assert len(written["latency_targets"]) == 4
    assert "hanging: async service /health/live" in table
