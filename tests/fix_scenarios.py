"""The shipped scenarios in lanes, beside the tests that mostly wait.

Each shipped scenario runs end to end on a stack of its own (nothing but the machine is
shared, so no fault reaches another run), two at a time (`SCENARIO_TEST_LANES`): a run
loads the machine lightly (60 requests a second, p99 a few ms against limits of hundreds),
and most of its time is its load's schedule. The lanes start with the first test marked
`beside_scenarios` (modules whose tests mostly wait on processes and brokers: starting,
killing, restarting), which run in the foreground meanwhile; the scenario tests come next
and collect each run's result.

`make test` runs the suite in two pytest-xdist processes (`--dist loadgroup`): that group of
waiting tests and the lanes is one xdist group, so one process runs it in this order while
the other runs every other module (each module kept whole in one process, so a module's
fixtures start once). On two cores the waiting half costs little CPU, so the halves overlap.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.scenarios import SHIPPED_TEST, run_scenario

LANES = int(os.environ.get("SCENARIO_TEST_LANES", "2"))
SCENARIO_MODULE = "test_scenarios.py"
LANES_GROUP = "scenario-lanes"
Runs = tuple[Path, dict[str, Future[subprocess.CompletedProcess[str]]]]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups (`--dist loadgroup`)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests beside the lanes first, then the scenario tests, then the rest (a stable
    sort: each group keeps its order); those two first groups are one xdist group, and every
    other module is a group of its own."""
    items.sort(key=_group)
    for item in items:
        name = LANES_GROUP if _group(item) < 2 else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(name))


def _group(item: pytest.Item) -> int:
    if item.get_closest_marker("beside_scenarios"):
        return 0
    return 1 if item.path.name == SCENARIO_MODULE else 2


@pytest.fixture(scope="session")
def shipped_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runs]:
    """The selected shipped scenarios, started `LANES` at a time, in the tests' order."""
    chosen = [
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", "") == SHIPPED_TEST
    ]
    reports = tmp_path_factory.mktemp("scenarios")
    pool = ThreadPoolExecutor(max_workers=LANES, thread_name_prefix="scenario")
    try:
        yield reports, {name: pool.submit(run_scenario, name, reports) for name in chosen}
    finally:
        pool.shutdown(cancel_futures=True)  # a stopped session starts no more runs


@pytest.fixture(autouse=True)
def _lanes_beside(request: pytest.FixtureRequest) -> None:
    """A `beside_scenarios` test starts the lanes (once) before it runs."""
    if request.node.get_closest_marker("beside_scenarios"):
        request.getfixturevalue("shipped_runs")
