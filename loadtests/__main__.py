"""`python -m loadtests`: the load-plus-fault scenarios (scenario) and the benchmarks (bench).

The local stack's commands are `python -m devstack`'s.
"""

from __future__ import annotations

import argparse
import sys

from loadtests import cli_bench, cli_scenario


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m loadtests", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    cli_scenario.add_parser(commands)
    cli_bench.add_parser(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "bench":
        return cli_bench.main(args)
    return cli_scenario.main(args)


if __name__ == "__main__":
    sys.exit(main())
