"""`python -m workers [worker|relay]`: a Dramatiq worker (the default) or the outbox relay.

    python -m workers [dramatiq options...]   # = dramatiq workers.root:setup_worker -p N -t M
    python -m workers relay                   # the outbox relay, until SIGTERM

WORKER_PROCESSES, WORKER_THREADS and WORKER_SHUTDOWN_TIMEOUT come from
`project/settings.py`; extra arguments go to Dramatiq as they are.
"""

from __future__ import annotations

import sys

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

from project import settings
from workers.root import run_relay


def main(args: list[str]) -> int:
    if args[:1] == ["relay"]:
        run_relay()
        return 0
    if args[:1] == ["worker"]:
        args = args[1:]
    argv = [
        "workers.root:setup_worker",
        "--processes", str(settings.WORKER_PROCESSES),
        "--threads", str(settings.WORKER_THREADS),
        "--worker-shutdown-timeout", str(int(settings.WORKER_SHUTDOWN_TIMEOUT * 1000)),
        *args,
    ]  # fmt: skip
    return int(dramatiq_main(make_argument_parser().parse_args(argv)) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
