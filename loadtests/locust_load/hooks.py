"""Locust's event listeners: the options, one `Run` per test and process, the records file.

The process that starts a test (the master, or the only process) stamps the schedule's
origin, the user count and the worker count into the parsed options; locust forwards custom
options to its workers in every spawn message, so all workers pace one schedule.
"""

from __future__ import annotations

import logging
import time
from argparse import Namespace
from typing import Any
from weakref import WeakKeyDictionary

import gevent
from locust.env import Environment
from locust.event import Events
from locust.runners import MasterRunner, Runner, WorkerRunner

from loadtests.locust_load.options import LoadOptions, add_arguments
from loadtests.locust_load.records import RecordsWriter, records_path
from loadtests.locust_load.run import Run

FLUSH_EVERY = 1.0  # s: the runner tails the records for its progress line
logger = logging.getLogger("loadtests.locust_load")
_runs: WeakKeyDictionary[Environment, Run] = WeakKeyDictionary()
_flushers: WeakKeyDictionary[Environment, gevent.Greenlet] = WeakKeyDictionary()


def install(events: Events) -> None:
    """Listen to locust's events; the locustfile calls this once, at import."""
    events.init_command_line_parser.add_listener(add_arguments)
    events.test_start.add_listener(_test_start)
    events.test_stop.add_listener(_test_stop)
    events.quitting.add_listener(_test_stop)  # before the runner stops: users still run
    events.quit.add_listener(_quit)  # after they stopped, just before the process exits


def run_of(environment: Environment) -> Run:
    """The current test's shared state in this process."""
    try:
        return _runs[environment]
    except KeyError:
        raise RuntimeError(
            "no load test started in this process (the locustfile must call hooks.install)"
        ) from None


def _test_start(environment: Environment, **_: Any) -> None:
    options, runner = environment.parsed_options, environment.runner
    if options is None or runner is None:
        raise RuntimeError("the service's load needs locust's parsed options and runner")
    load = LoadOptions.from_namespace(options)  # a bad value from the web UI fails here
    if not isinstance(runner, WorkerRunner):
        _stamp(options, runner)
    if isinstance(runner, MasterRunner):
        return  # the master runs no users
    previous = _runs.get(environment)
    run = Run(
        load,
        **_shape(options, getattr(runner, "worker_index", 0)),
        writer=_writer(load, previous.writer if previous else None),
    )
    _runs[environment] = run
    if run.writer is not None:
        _flushers[environment] = gevent.spawn(_flush_every, run.writer)
    logger.info("loadtests: %s", _describe(run))


def _stamp(options: Namespace, runner: Runner) -> None:
    """The test's origin and shape, set where it starts; custom options reach the workers."""
    options.loadtests_origin = time.time()
    options.loadtests_users = max(runner.target_user_count, 1)
    options.loadtests_workers = runner.worker_count if isinstance(runner, MasterRunner) else 1


def _shape(options: Namespace, worker_index: int) -> dict[str, Any]:
    """Origin, users, workers and this worker's index, as the starting process stamped them."""
    try:
        workers = max(int(options.loadtests_workers), 1)
        return {
            "origin": float(options.loadtests_origin),
            "users": int(options.loadtests_users),
            "workers": workers,
            "worker_index": max(worker_index, 0) % workers,
        }
    except AttributeError:
        raise RuntimeError(
            "the master did not stamp the test's origin: run the same locustfile everywhere"
        ) from None


def _writer(load: LoadOptions, previous: RecordsWriter | None) -> RecordsWriter | None:
    """This process's records file: the same one for every test it runs."""
    path = records_path(load.records_dir) if load.records_dir is not None else None
    if previous is not None and previous.path == path:
        return previous
    if previous is not None:
        previous.close()
    if path is None:
        return None
    writer = RecordsWriter(path)
    writer.open()
    return writer


def _flush_every(writer: RecordsWriter) -> None:
    while True:
        gevent.sleep(FLUSH_EVERY)
        writer.flush()


def _test_stop(environment: Environment, **_: Any) -> None:
    flusher = _flushers.pop(environment, None)
    if flusher is not None:
        flusher.kill()
    run = _runs.get(environment)
    if run is not None and run.writer is not None:
        run.writer.flush()


def _quit(**_: Any) -> None:
    for run in list(_runs.values()):
        if run.writer is not None:
            run.writer.close()


def _describe(run: Run) -> str:
    load = run.options
    if load.paced:
        stages = ",".join(f"{stage.duration:g}:{stage.rate:g}" for stage in load.stages)
        pace = f"start rate {load.start_rate or 0:g} req/s, stages {stages or 'none'}"
    else:
        pace = f"{load.user_rate:g} req/s per user"
    where = run.writer.path if run.writer is not None else "not kept"
    return (
        f"{pace}; {run.users} users over {run.workers} worker(s), this is {run.worker_index}; "
        f"{load.mix}; records {where}"
    )
