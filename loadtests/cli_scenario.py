"""The scenario commands of `python -m loadtests`: list, run."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import threading
from pathlib import Path
from typing import Any

from loadtests.scenario import runner, spec


def add_parser(commands: Any) -> None:
    scenario = commands.add_parser("scenario", help="load-plus-fault scenarios: list, run")
    actions = scenario.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the scenarios in loadtests/scenario/shipped/")
    run = actions.add_parser("run", help="run one scenario; exit 1 when an SLO or invariant fails")
    run.add_argument("scenario", help="a name from `scenario list`, or a path to a .toml file")
    run.add_argument("--scale", type=float, default=1.0,
                     help="multiply every duration and fault time (0.3: a quick run)")  # fmt: skip
    run.add_argument("--reports", type=Path, default=runner.REPORTS,
                     help="where reports/<name>/ is written")  # fmt: skip


def main(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name, description in spec.list_scenarios(spec.SHIPPED):
            print(f"{name:<22} {description}")
        return 0
    try:
        scenario = spec.load_scenario(spec.resolve(args.scenario, spec.SHIPPED), scale=args.scale)
    except spec.SpecError as exc:
        print(f"error: {exc}")
        return 2
    if ha := os.environ.get("STACK_HA"):  # as for `make run`: the stack's Patroni mode
        scenario = dataclasses.replace(scenario, system=dataclasses.replace(scenario.system, ha=ha))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    outcome = runner.run(scenario, reports_dir=args.reports, stop=stop, say=_say)
    if outcome.interrupted:
        return 130
    print(outcome.table)
    print(f"report: {outcome.report_dir / 'report.html'}")
    return 0 if outcome.passed else 1


def _say(line: str) -> None:
    print(line, flush=True)
