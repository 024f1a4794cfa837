"""`python -m loadtests`: the local stack (up, down, serve), the load-plus-fault scenarios
(scenario) and the benchmarks (bench)."""

from __future__ import annotations

import argparse
import sys

from loadtests import cli_bench, cli_scenario, cli_stack
from loadtests.stack import StackError


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
    cli_bench.add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "up":
            return cli_stack.up_detached() if args.detach else cli_stack.up(quiet=args.quiet)
        if args.command == "down":
            return cli_stack.down()
        if args.command == "bench":
            return cli_bench.main(args)
        if args.command == "scenario":
            return cli_scenario.main(args)
        return cli_stack.serve_all()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
