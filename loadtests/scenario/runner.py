"""`python -m loadtests scenario run`: one load-plus-fault scenario against the real system.

In order: the stack with its fault proxy (PostgreSQL primary + replica, Redis, the demo
upstream, RabbitMQ when asked), the app (uvicorn workers, relay, Dramatiq worker, under the
same supervisor as `make run`), locust headless at the scenario's arrival rate, the fault
timeline on the load's clock with a progress line, then every fault undone and the system
healed, the accepted jobs waited for, the invariants checked on the final primary, and the
SLO verdicts printed and written to `reports/<name>/`.

Whatever happens (an SLO failing, Ctrl-C, an exception), every fault is undone and every
process stopped before it returns; a runner killed outright takes its processes with it
(they die with their parent), and they hold the only faults there are.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import django
import httpx
import psycopg
import redis

from devstack.stack import Stack, StackError
from devstack.stack.child import Child
from devstack.stack.ports import free_port
from devstack.stack.supervisor import Supervisor, app_env, start_apps
from loadtests.scenario import (
    analysis,
    balancer,
    invariants,
    leader,
    report,
    spec,
    upstream_calls,
    verdicts,
)
from loadtests.scenario.inject import Injector
from loadtests.scenario.timeline import Timeline, Window

ROOT = Path(__file__).resolve().parents[2]
REPORTS = Path("reports")  # in the current directory, as `make scenario` runs it
LOCUSTFILE = Path(__file__).resolve().parents[1] / "locustfile.py"
HOST = "127.0.0.1"
READY_TIMEOUT = 60.0
SETTLE_TIMEOUT = 60.0  # for accepted jobs to finish once the faults are undone
LOCUST_GRACE = 30.0  # past the load's duration before locust is stopped


@dataclass
class Outcome:
    """What a run produced: its verdicts and where the report is."""

    passed: bool
    report_dir: Path
    table: str
    interrupted: bool = False
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    invariants: list[dict[str, Any]] = field(default_factory=list)


def run(
    scenario: spec.Scenario,
    *,
    reports_dir: Path = REPORTS,
    say: Callable[[str], None] = print,
    stop: threading.Event | None = None,
) -> Outcome:
    """Run `scenario` to the end (or until `stop` is set) and write its report."""
    return ScenarioRun(scenario, reports_dir, say, stop or threading.Event()).execute()


class ScenarioRun:
    """One run: the system started, loaded, faulted, healed, judged, and always stopped."""

    def __init__(
        self,
        scenario: spec.Scenario,
        reports_dir: Path,
        say: Callable[[str], None],
        stop: threading.Event,
    ) -> None:
        self.scenario, self.say, self.stop = scenario, say, stop
        self.report_dir = reports_dir / scenario.name
        self.records_dir = self.report_dir / "records"
        self.stack = Stack(state_dir=self.report_dir / "stack", fault_proxy=True,
                           broker=scenario.system.broker,
                           synchronous_commit=scenario.system.synchronous_commit,
                           ha=scenario.system.ha)  # fmt: skip
        self.supervisor = Supervisor(self.stack, say=lambda line: say(f"  supervisor: {line}"))
        self.timeline: Timeline | None = None
        self.locust: Child | None = None
        self.injector: Injector | None = None
        # The threads that start processes live until the end: a process dies with the
        # thread that started it (PR_SET_PDEATHSIG), so a restarted dependency stays up.
        self._watching, self._ending = threading.Event(), threading.Event()
        self._threads: list[threading.Thread] = []
        self._watcher: threading.Thread | None = None

    def execute(self) -> Outcome:
        try:
            url = self._start_system()
            t0 = self._run_load(url)
            if self.stop.is_set():
                self.say("interrupted: every fault undone, stopping")
                return Outcome(False, self.report_dir, "", interrupted=True)
            return self._judge(t0, url)
        finally:
            self._tear_down()

    def _start_system(self) -> str:
        shutil.rmtree(self.records_dir, ignore_errors=True)
        self.records_dir.mkdir(parents=True)
        self.say(f"scenario {self.scenario.name}: {self.scenario.description}")
        self.say("starting the stack (fault proxy in front of every dependency) and the app")
        self.stack.start()
        env = {**app_env(self.stack), **self.scenario.system.env}
        system = self.scenario.system
        url = start_apps(self.stack, self.supervisor, env, host=HOST, port=free_port(),
                         workers=system.web_workers, instances=system.instances)  # fmt: skip
        self._watcher = _thread("supervisor", lambda: self.supervisor.watch(self._watching))
        _wait_ready(url, self.stop)
        self.injector = Injector(self.stack, self.supervisor, self.stop)
        return url

    def _run_load(self, url: str) -> float:
        """Locust and the fault timeline on its clock; the clock's start (unix seconds)."""
        if self.injector is None:
            raise RuntimeError("loading a system that did not start")
        self.locust = _locust(self.stack, self.scenario, url, self.records_dir, self.report_dir)
        t0 = _load_started(self.records_dir, self.locust, self.stop)
        duration = self.scenario.load.duration
        timeline = Timeline(list(self.scenario.faults), self.injector.apply, t0=t0,
                            run_end=duration)  # fmt: skip
        self.timeline = timeline
        self._threads.append(_thread("timeline", lambda: self._run_timeline(timeline)))
        _progress(self.records_dir, timeline, locust=self.locust, duration=duration,
                  stop=self.stop, say=self.say)  # fmt: skip
        self._undo_faults()
        _stop_locust(self.locust)
        return t0

    def _run_timeline(self, timeline: Timeline) -> None:
        timeline.run(self.stop)
        self._ending.wait()

    def _judge(self, t0: float, url: str) -> Outcome:
        """Heal, let the accepted jobs finish, check the invariants, write the report."""
        if self.injector is None or self.timeline is None:
            raise RuntimeError("judging a run that did not run")
        promoted = self.injector.promoted
        restarted = self.stack.heal(leave_down=frozenset({"primary"} if promoted else ()))
        if restarted:
            self.say(f"restarted after the run: {', '.join(restarted)}")
        cluster = self._settle_cluster()
        records = list(read_records(self.records_dir))
        writes = invariants.Writes.from_records(records)
        primary = str(self.stack.services["replica" if promoted else "primary"]["url"])
        self.say(f"waiting for {len(writes.reports)} accepted reports to finish")
        invariants.wait_for_reports(primary, writes.reports, SETTLE_TIMEOUT)
        checks = invariants.check(writes, primary, self.scenario.invariants.limits())
        checks += cluster
        checks += [_fault_failed(w) for w in self.timeline.windows if w.error]
        checks += [balancer.route_around_check(event) for event in self.injector.instance_events]
        for line in balancer.describe(self.injector.instance_events):
            self.say(line)
        if (resent := balancer.counters(self.stack)) is not None:
            self.say(f"  HAProxy: {resent['redispatches']} requests resent to another instance, "
                     f"{resent['retries']} retried on the same one, "
                     f"{resent['answers_5xx']} 5xx answers")  # fmt: skip
        changes = {c.fault: c for c in self.injector.leader.changes} if self.injector.leader else {}
        result = analysis.analyse(
            records,
            t0=t0,
            duration=self.scenario.load.duration,
            faults=[_fault_window(w, changes.get(w.name), t0) for w in self.timeline.windows],
            slos=self.scenario.slos,
        )
        limit = self.scenario.invariants.max_extra_upstream_calls
        checks += upstream_calls.checks(limit, self.injector.upstream_requests, result)
        windows = [w.as_dict() for w in self.timeline.windows]
        meta = {**report.machine_facts(), **_versions(self.stack), "scale": self.scenario.scale,
                "web_url": url, "windows": windows,
                "instance_events": self.injector.instance_events,
                "haproxy": balancer.counters(self.stack),
                "leader_changes": [c.as_dict() for c in changes.values()]}  # fmt: skip
        report.write_report(self.report_dir, scenario=self.scenario, analysis=result,
                            invariants=checks, meta=meta)  # fmt: skip
        passed = all(check["passed"] for check in [*result.verdicts, *checks])
        return Outcome(passed, self.report_dir, verdicts.verdict_table(result, checks),
                       verdicts=result.verdicts, invariants=checks)  # fmt: skip

    def _settle_cluster(self) -> list[dict[str, Any]]:
        """Under Patroni: wait for every member to be back and streaming, read the roles
        again (the final leader is `primary` now), and judge the members."""
        if self.stack.ha != "patroni" or self.injector is None or self.injector.leader is None:
            return []
        faults = self.injector.leader
        self.say("waiting for every Patroni member to be back, streaming from the leader")
        leader.settle(faults.api_urls, self.stack.ha_members)
        self.stack.write_state()
        self.say(f"final leader: {self.stack.services.get('primary', {}).get('alias_of')}")
        return [leader.members_verdict(faults.api_urls, self.stack.ha_members, faults.changes)]

    def _undo_faults(self) -> None:
        if self.timeline is not None:
            for error in self.timeline.undo_all():
                self.say(f"could not undo a fault: {error}")

    def _tear_down(self) -> None:
        self._undo_faults()
        if self.locust is not None:
            _stop_locust(self.locust)
        self._watching.set()  # no restarts while stopping
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.supervisor.stop()  # the app processes, then the stack (and the fault proxy)
        self._ending.set()
        for thread in self._threads:
            thread.join(timeout=10)


def _fault_failed(window: Window) -> dict[str, Any]:
    """A fault that could not be applied or undone fails the run: the run did not test it."""
    return {"name": f"fault {window.name!r}", "measured": "failed", "limit": "applied, undone",
            "passed": False, "detail": window.error}  # fmt: skip


def _thread(name: str, target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def _wait_ready(url: str, stop: threading.Event) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    while time.monotonic() < deadline and not stop.is_set():
        try:
            answer = httpx.get(f"{url}/health/ready", timeout=2)
            if answer.status_code == 200 and answer.json().get("status") == "pass":
                return
            last = f"{answer.status_code} {answer.text[:200]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise StackError(f"the service was not ready within {READY_TIMEOUT:.0f} s: {last}")


def _locust(
    stack: Stack, scenario: spec.Scenario, url: str, records_dir: Path, report_dir: Path
) -> Child:
    argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "--host", url, *spec.locust_args(scenario.load), "--records-dir", str(records_dir),
            "--csv", str(report_dir / "locust"), "--only-summary", "--loglevel", "WARNING",
            "--exit-code-on-error", "0"]  # fmt: skip
    env = {**os.environ, "API_KEY": stack.env.get("API_KEY", "")}
    child = Child("locust", argv, stack.log_path("locust"), env=env, cwd=ROOT)
    child.start()
    return child


def _load_started(records_dir: Path, locust: Child, stop: threading.Event) -> float:
    """The load's clock: the earliest intended send time, once the first records are in."""
    deadline = time.monotonic() + 30
    tail = RecordTail(records_dir)  # reads only what was appended since the last look
    while time.monotonic() < deadline and not stop.is_set():
        firsts = [r["intended"] for r in tail.new()]
        if firsts:
            return float(min(firsts))
        if not locust.alive():
            raise StackError(f"locust exited with {locust.returncode()}: see {locust.log_path}")
        time.sleep(0.1)
    raise StackError(f"locust sent nothing within 30 s: see {locust.log_path}")


def _progress(
    records_dir: Path,
    timeline: Timeline,
    *,
    locust: Child,
    duration: float,
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    """A line every second: elapsed, rate and errors of the last complete second (records
    are flushed once a second), and the faults in force."""
    tail = RecordTail(records_dir)
    deadline = time.time() + (duration - timeline.now()) + LOCUST_GRACE
    while locust.alive() and time.time() < deadline and not stop.wait(1.0):
        now = timeline.now()
        recent = [r for r in tail.new() if now - 2.0 <= r["end"] - timeline.t0 < now - 1.0]
        errors = sum(1 for r in recent if r["status"] == 0 or r["status"] >= 500)
        faults = ", ".join(timeline.active()) or "none"
        say(f"  {min(now, duration):6.1f}/{duration:.0f} s  {len(recent):5d} req/s  "
            f"{errors:4d} errors  faults: {faults}")  # fmt: skip


class RecordTail:
    """Reads the records files as locust appends them (whole lines only)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._offsets: dict[Path, int] = {}
        self._recent: list[dict[str, Any]] = []

    def new(self) -> list[dict[str, Any]]:
        """The records of the last few seconds (new lines kept for 3 s)."""
        fresh = []
        for path in sorted(self.directory.glob("*.jsonl")):
            offset = self._offsets.get(path, 0)
            with path.open("rb") as file:
                file.seek(offset)
                data = file.read()
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(complete)
            fresh.extend(json.loads(line) for line in complete.splitlines() if line.strip())
        horizon = time.time() - 3
        self._recent = [r for r in self._recent if r["end"] >= horizon] + fresh
        return self._recent


def read_records(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("*.jsonl")):
        with path.open() as file:
            for line in file:
                if line.endswith("\n") and line.strip():
                    yield json.loads(line)


def _stop_locust(locust: Child) -> None:
    """SIGINT first: locust writes its last records and CSV on the way out."""
    if locust.alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(locust.pid, signal.SIGINT)
    locust.finish_stop(time.monotonic() + 10)


def _fault_window(
    window: Any, change: leader.LeaderChange | None, t0: float
) -> analysis.FaultWindow:
    end = window.end if window.end is not None else window.start
    if change is None:
        return analysis.FaultWindow(window.name, window.kind, window.target, window.start, end)
    at = None if change.at is None else change.at - t0
    return analysis.FaultWindow(window.name, window.kind, window.target, window.start, end,
                                change.old, change.new, at)  # fmt: skip


def _versions(stack: Stack) -> dict[str, Any]:
    """The versions of what ran: the servers (asked), the libraries (imported)."""
    versions: dict[str, Any] = {"django": django.get_version()}
    try:
        with psycopg.connect(str(stack.services["replica"]["url"]), connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            versions["postgresql"] = row[0] if row else None
    except psycopg.Error:
        versions["postgresql"] = None
    try:
        with redis.Redis.from_url(str(stack.services["redis"]["url"])) as client:
            versions["redis"] = client.info("server").get("redis_version")
    except redis.RedisError:
        versions["redis"] = None
    versions["locust"] = metadata.version("locust")
    return {"versions": versions}
