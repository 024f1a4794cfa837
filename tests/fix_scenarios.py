"""The shipped scenarios in lanes, beside the tests that mostly wait.

Each shipped scenario runs end to end on a stack of its own (nothing but the machine is
shared, so no fault reaches another run), two at a time (`SCENARIO_TEST_LANES`): a run
loads the machine lightly (60 requests a second, p99 a few ms against limits of hundreds),
and most of its time is its load's schedule. The lanes start with the first test marked
`beside_scenarios` (modules whose tests mostly wait on processes and brokers: starting,
killing, restarting), which run in the foreground meanwhile; the scenario tests come next
and collect each run's result.

`make test` runs the suite in two pytest-xdist processes (`--dist loadscope`, scheduled
below): that group of waiting tests and the lanes goes to one process, in this order, while
the other runs every other module (each module kept whole in one process, so a module's
fixtures start once). On two cores the waiting half costs little CPU, so the halves overlap.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.scenarios import SHIPPED_TEST, run_scenario

LANES = int(os.environ.get("SCENARIO_TEST_LANES", "2"))
SCENARIO_MODULE = "test_scenarios.py"
# Run last in the lanes' process, once the lanes are done: a load of its own (`bench
# --quick` pins the cores) must not starve a scenario that is judged on its latency.
AFTER_LANES = frozenset({"test_bench_quick.py"})
LANES_GROUP = "scenario-lanes"
Runs = tuple[Path, dict[str, Future[subprocess.CompletedProcess[str]]]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests beside the lanes first, then the scenario tests, then `AFTER_LANES`, then
    the rest (a stable sort: each group keeps its order)."""
    items.sort(key=_group)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `--dist loadscope`: each module whole in one process, and every module of the
    lanes' group (those with tests marked `beside_scenarios`, the scenario tests, then
    `AFTER_LANES`) in the same one, in the order above: first in the queue, with
    `--no-loadscope-reorder`. (xdist's own `loadgroup` cannot be used: it renames items,
    which pytest 9 no longer allows.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    lanes = _lane_modules(config.rootpath / "tests")

    class LanesScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return LANES_GROUP if module in lanes else module

    return LanesScheduling(config, log)


def _lane_modules(tests: Path) -> frozenset[str]:
    """The test modules (as node ids name them) that run in the lanes' process."""
    root = tests.parent
    return frozenset(
        path.relative_to(root).as_posix()
        for path in tests.rglob("test_*.py")
        if path.name == SCENARIO_MODULE
        or path.name in AFTER_LANES
        or "pytest.mark.beside_scenarios" in path.read_text()
    )


def _group(item: pytest.Item) -> int:
    if item.get_closest_marker("beside_scenarios"):
        return 0
    if item.path.name == SCENARIO_MODULE:
        return 1
    return 2 if item.path.name in AFTER_LANES else 3


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
