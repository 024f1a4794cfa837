"""`python -m devstack`: the local stack alone (up, down) or the whole system (serve)."""

from __future__ import annotations

import argparse
import sys

from devstack import cli
from devstack.stack import StackError


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="start the stack: PostgreSQL primary + replica, Redis, upstream, fault proxy"
    )
    up.add_argument("--detach", action="store_true", help="start in the background, print exports")
    up.add_argument("--quiet", action="store_true", help="do not echo service logs")
    commands.add_parser("down", help="stop a detached stack (and clean up after a crashed one)")
    commands.add_parser("serve", help="stack, migrations, web server: what `make run` runs")
    commands.add_parser(
        "roles", help="STACK_HA=patroni: read each member's role again into state.json, print them"
    )
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "up":
            return cli.up_detached() if args.detach else cli.up(quiet=args.quiet)
        if args.command == "down":
            return cli.down()
        if args.command == "roles":
            return cli.roles()
        return cli.serve_all()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
