"""The worker process's composition root: database, tips client, jobs, broker and actors.

    python -m project.worker [dramatiq options...]
        = dramatiq project.worker:setup_worker -p WORKER_PROCESSES -t WORKER_THREADS ...

Nothing is built at import: each worker process calls `setup_worker()`, and a test builds
a `WorkerRoot` on Dramatiq's `StubBroker` to run the actors in process.

Logs are the web's (settings.LOGGING: JSON or console lines, LOG_LEVEL), Dramatiq's own
included: its CLI is told to skip its plain-text set-up, the parent process configures
LOGGING before it starts the worker processes, and each worker process configures it again
once Dramatiq has pointed its stderr at the pipe the parent copies to its own stderr (one
line never mixes with another process's).
"""

from __future__ import annotations

import contextlib
import logging.config
import sys
from typing import Any

import dramatiq
from dramatiq.asyncio import async_to_sync
from dramatiq.cli import main as dramatiq_main
from dramatiq.cli import make_argument_parser
from dramatiq.middleware import AgeLimit, Retries, ShutdownNotifications, TimeLimit

from project import builders
from workers.actors import Actors, declare
from workers.failures import RecordFailures
from workers.middleware import DaemonAsyncIO, OpenResources
from workers.reports import ReportJob


class WorkerRoot:
    """A worker process: its database, tips client, jobs, broker middleware and actors.

    Args:
        settings: the project's settings (or any object with the same names).
        broker: the broker to declare the actors on (a test's `StubBroker(middleware=[])`);
            default: one for `BROKER_URL`. The project's middleware is added to it.
    """

    def __init__(self, settings: Any, *, broker: dramatiq.Broker | None = None) -> None:
        self.primary_breaker = builders.primary_breaker(settings)
        # A job's queries are bounded by the job's own time limit; one connection per thread,
        # plus one for the failure records written after a thread gave its own back.
        self.database = builders.database(
            settings,
            primary_guard=self.primary_breaker,
            max_size=settings.WORKER_THREADS + 1,
            query_timeout=settings.JOBS_TIME_LIMIT,
        )
        self.tips_breaker = builders.tips_breaker(settings)
        self.tips_client = builders.tips_client(settings, breaker=self.tips_breaker, attempts=1)
        self.reports = ReportJob(
            database=self.database,
            tips=self.tips_client,
            work_seconds=settings.REPORT_WORK_SECONDS,
        )
        middleware = self._middleware(settings)
        if broker is None:
            broker = builders.broker(settings, middleware)
        else:
            for each in middleware:
                broker.add_middleware(each)
        self.broker = broker
        self.actors: Actors = declare(
            broker, build_report=self.reports.build, max_retries=settings.JOBS_MAX_RETRIES
        )
        self._opened = contextlib.AsyncExitStack()

    def _middleware(self, settings: Any) -> list[dramatiq.Middleware]:
        # RecordFailures before Retries: "after" hooks run in reverse, so it sees the verdict.
        return [
            AgeLimit(max_age=int(settings.JOBS_MAX_AGE * 1000)),
            TimeLimit(time_limit=int(settings.JOBS_TIME_LIMIT * 1000)),
            ShutdownNotifications(),
            DaemonAsyncIO(),
            OpenResources(open=self.open, close=self.close),
            RecordFailures(
                retrying=async_to_sync(self.reports.mark_retrying),
                failed=async_to_sync(self.reports.mark_failed),
            ),
            Retries(
                max_retries=settings.JOBS_MAX_RETRIES,
                min_backoff=int(settings.JOBS_MIN_BACKOFF * 1000),
                max_backoff=int(settings.JOBS_MAX_BACKOFF * 1000),
            ),
        ]

    async def open(self) -> None:
        """Open the resources on the worker's loop, each after those it uses; a failure
        closes what opened."""
        async with contextlib.AsyncExitStack() as stack:
            for resource in (self.primary_breaker, self.database, self.tips_breaker,
                             self.tips_client):  # fmt: skip
                await stack.enter_async_context(resource)
            self._opened = stack.pop_all()

    async def close(self) -> None:
        """Close what `open()` opened, the last opened first."""
        opened, self._opened = self._opened, contextlib.AsyncExitStack()
        await opened.aclose()


def setup_worker() -> None:
    """Dramatiq's CLI entry (`dramatiq project.worker:setup_worker`): this process's broker."""
    from project import settings  # noqa: PLC0415 - read when the process starts, not at import

    # sys.stderr is Dramatiq's pipe to the parent by now: the handler writes there.
    logging.config.dictConfig(settings.LOGGING)
    dramatiq.set_broker(WorkerRoot(settings).broker)


def main(args: list[str]) -> int:
    """Dramatiq's CLI, sized by WORKER_PROCESSES, WORKER_THREADS and WORKER_SHUTDOWN_TIMEOUT;
    extra arguments go to Dramatiq as they are."""
    from project import settings  # noqa: PLC0415 - read when the process starts, not at import

    logging.config.dictConfig(settings.LOGGING)
    argv = [
        "project.worker:setup_worker",
        "--processes", str(settings.WORKER_PROCESSES),
        "--threads", str(settings.WORKER_THREADS),
        "--worker-shutdown-timeout", str(int(settings.WORKER_SHUTDOWN_TIMEOUT * 1000)),
        "--skip-logging",  # LOGGING is configured here and in each worker process
        *args,
    ]  # fmt: skip
    return int(dramatiq_main(make_argument_parser().parse_args(argv)) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
