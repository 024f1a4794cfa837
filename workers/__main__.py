"""`python -m workers`: Dramatiq's own worker CLI, sized from the settings.

    python -m workers [dramatiq options...]   # = dramatiq workers.actors -p N -t M ...

WORKER_PROCESSES, WORKER_THREADS and WORKER_SHUTDOWN_TIMEOUT come from
`project/settings.py`; extra arguments go to Dramatiq as they are.
"""

from __future__ import annotations

import sys

from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser

from project import settings


def main() -> int:
    argv = [
        "workers.actors",
        "--processes", str(settings.WORKER_PROCESSES),
        "--threads", str(settings.WORKER_THREADS),
        "--worker-shutdown-timeout", str(int(settings.WORKER_SHUTDOWN_TIMEOUT * 1000)),
        *sys.argv[1:],
    ]  # fmt: skip
    return int(dramatiq_main(make_argument_parser().parse_args(argv)) or 0)


if __name__ == "__main__":
    sys.exit(main())
