"""`python -m loadtests`: the local stack (up, down, serve), the load-plus-fault scenarios
(scenario) and the benchmarks (bench)."""

from __future__ import annotations

import argparse
import sys

from loadtests import cli_scenario, cli_stack
from loadtests.bench import collateral as bench_collateral
from loadtests.bench import data as bench_data
from loadtests.bench import http as bench_http
from loadtests.bench import jobs as bench_jobs
from loadtests.bench import outbound as bench_outbound
from loadtests.stack import StackError

BENCH_PARTS = {"http": bench_http.run, "outbound": bench_outbound.run, "data": bench_data.run,
               "jobs": bench_jobs.run, "collateral": bench_collateral.run}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="start the stack: PostgreSQL primary + replica, Redis, upstream"
    )
    up.add_argument("--detach", action="store_true", help="start in the background, print exports")
    up.add_argument("--quiet", action="store_true", help="do not echo service logs")
    commands.add_parser("down", help="stop a detached stack (and clean up after a crashed one)")
    commands.add_parser("serve", help="stack, migrations, web server: what `make run` runs")
    cli_scenario.add_parser(commands)
    bench = commands.add_parser("bench", help="async vs sync benchmarks: tables, reports/bench/")
    bench.add_argument("parts", nargs="*", choices=sorted(BENCH_PARTS), help="default: all")
    bench.add_argument("--duration", type=float, default=5.0, help="measured seconds per round")
    bench.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per round")
    bench.add_argument("--rounds", type=int, default=3, help="turns per server (median kept)")
    bench.add_argument("--connections", type=int, default=64, help="concurrent connections")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "up":
            return cli_stack.up_detached() if args.detach else cli_stack.up(quiet=args.quiet)
        if args.command == "down":
            return cli_stack.down()
        if args.command == "bench":
            return bench(args)
        if args.command == "scenario":
            return cli_scenario.main(args)
        return cli_stack.serve_all()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def bench(args: argparse.Namespace) -> int:
    for part in args.parts or sorted(BENCH_PARTS):
        run = BENCH_PARTS[part]
        print(
            run(
                duration=args.duration,
                warmup=args.warmup,
                connections=args.connections,
                rounds=args.rounds,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
