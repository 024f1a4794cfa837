"""The bench command of `python -m loadtests`: parts, plan, --quick, --check."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from loadtests.bench import plan, suite
from loadtests.bench.progress import Progress


def add_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench", help="async vs sync benchmarks: tables, charts, reports/bench/index.html"
    )
    full = plan.FULL
    # Not `choices`: with nargs="*", argparse checks the empty list against them and fails.
    bench.add_argument(
        "parts",
        nargs="*",
        type=part,
        metavar="part",
        help=f"any of {', '.join(suite.PARTS)} (default: all)",
    )
    bench.add_argument(
        "--duration", type=float, help=f"measured seconds per round (default {full.duration:g})"
    )
    bench.add_argument(
        "--warmup", type=float, help=f"unmeasured seconds per round (default {full.warmup:g})"
    )
    bench.add_argument(
        "--rounds", type=int, help=f"turns per server, median kept (default {full.rounds})"
    )
    bench.add_argument(
        "--connections", type=int, help=f"concurrent connections (default {full.connections})"
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="a smoke test: tiny durations, one round, fewer scenarios and "
        "servers; reports in reports/bench/quick/",
    )
    bench.add_argument("--check", action="store_true", help="exit 1 when a target is missed")


def part(name: str) -> str:
    if name not in suite.PARTS:
        raise argparse.ArgumentTypeError(f"no part {name!r}: one of {', '.join(suite.PARTS)}")
    return name


def main(args: argparse.Namespace) -> int:
    progress = Progress(sys.stderr)
    return suite.run(args.parts, chosen_plan(args), check=args.check, progress=progress)


def chosen_plan(args: argparse.Namespace) -> plan.Plan:
    """--quick's plan or the full one, with the figures given on the command line."""
    given = {"duration": args.duration, "warmup": args.warmup, "rounds": args.rounds,
             "connections": args.connections}  # fmt: skip
    base = plan.QUICK if args.quick else plan.FULL
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
