"""Readiness: concurrent dependency checks, each bounded by a timeout, in health+json.

Readiness answers "can this instance serve?", not "is everything healthy?". A dependency that
is shared by every instance must not take them all out of the load balancer at once, so a
failing check degrades the report to `warn`; only a *required group* whose every check fails
(no database at all), or a process that is not serving (starting, draining), makes it `fail`.
The report follows draft-inadarei-api-health-check (`application/health+json`).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from resilience_async._lifecycle import Lifecycle

MEDIA_TYPE = "application/health+json"


class Status(enum.StrEnum):
    PASS = "pass"  # noqa: S105 - a status, not a password
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Observation:
    """What a probe saw. A probe that cannot reach its dependency raises instead."""

    value: float | None = None
    unit: str | None = None
    status: Status = Status.PASS
    output: str | None = None


Probe = Callable[[], Awaitable[Observation]]


@dataclass(frozen=True, slots=True)
class Check:
    """One dependency measurement.

    Args:
        component: the dependency's name in the report ("primary", "redis").
        measurement: what is measured ("responseTime", "replicationLag").
        probe: coroutine function returning an Observation, raising when unreachable.
        component_type: "datastore", "component" or "system" (the draft's vocabulary).
        component_id: where it is (host:port); shown only in detailed reports.
        group: a required group; readiness fails only when every check in it fails.
    """

    component: str
    measurement: str
    probe: Probe
    component_type: str = "component"
    component_id: str | None = None
    group: str | None = None

    @property
    def key(self) -> str:
        return f"{self.component}:{self.measurement}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    check: Check
    status: Status
    observed_at: float
    latency: float
    observation: Observation | None = None
    error: str | None = None

    def to_json(self, *, detailed: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"status": str(self.status)}
        if not detailed:
            return entry
        entry["componentType"] = self.check.component_type
        if self.check.component_id:
            entry["componentId"] = self.check.component_id
        if self.observation is not None and self.observation.value is not None:
            entry["observedValue"] = self.observation.value
            entry["observedUnit"] = self.observation.unit
        entry["time"] = _iso_time(self.observed_at)
        entry["latencyMs"] = round(self.latency * 1000, 2)
        output = self.error or (self.observation.output if self.observation else None)
        if output:
            entry["output"] = output
        return entry


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: Status
    results: Sequence[CheckResult] = ()
    reason: str | None = None
    service: str = ""
    created_at: float = field(default_factory=time.monotonic)

    @property
    def http_status(self) -> int:
        return 503 if self.status is Status.FAIL else 200

    def result(self, component: str) -> CheckResult:
        """The result for a component name; KeyError when there is none."""
        for result in self.results:
            if result.check.component == component:
                return result
        raise KeyError(component)

    def to_json(self, *, detailed: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"status": str(self.status)}
        if detailed and self.service:
            body["serviceId"] = self.service
        if detailed and self.reason:
            body["output"] = self.reason
        body["checks"] = {r.check.key: [r.to_json(detailed=detailed)] for r in self.results}
        return body


def threshold(value: float, *, unit: str, warn_above: float, what: str) -> Observation:
    """An observation that warns when `value` exceeds `warn_above`."""
    if value > warn_above:
        output = f"{what} {value:.3f} {unit} exceeds {warn_above:g} {unit}"
        return Observation(value=value, unit=unit, status=Status.WARN, output=output)
    return Observation(value=value, unit=unit)


def overall_status(results: Sequence[CheckResult]) -> tuple[Status, str | None]:
    """Fail when every check of a required group failed, warn when anything is not pass."""
    groups: dict[str, list[CheckResult]] = {}
    for result in results:
        if result.check.group:
            groups.setdefault(result.check.group, []).append(result)
    for group, members in groups.items():
        if all(member.status is Status.FAIL for member in members):
            return Status.FAIL, f"no {group} is reachable"
    degraded = [f"{r.check.component} {r.status}" for r in results if r.status is not Status.PASS]
    if degraded:
        return Status.WARN, "degraded: " + ", ".join(degraded)
    return Status.PASS, None


class Readiness:
    """Runs every check concurrently and caches the report briefly.

    Probe floods (many load balancers, many probes) cost at most one round of checks per
    `cache_ttl`; concurrent callers share the round that is running.
    """

    def __init__(
        self,
        checks: Sequence[Check],
        *,
        lifecycle: Lifecycle,
        timeout: float = 1.0,
        cache_ttl: float = 1.0,
        service: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.checks = list(checks)
        self._lifecycle = lifecycle
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._service = service
        self._clock = clock
        self._cached: HealthReport | None = None
        self._running: asyncio.Task[HealthReport] | None = None

    async def report(self) -> HealthReport:
        if not self._lifecycle.serving:
            reason = f"instance is {self._lifecycle.phase.value}"
            return HealthReport(Status.FAIL, reason=reason, service=self._service)
        cached = self._cached
        if cached is not None and self._clock() - cached.created_at < self._cache_ttl:
            return cached
        if self._running is None:
            self._running = asyncio.create_task(self._run_all())
            self._running.add_done_callback(self._finished)
        # Shielded: a caller that disconnects must not cancel the round others wait on.
        return await asyncio.shield(self._running)

    def _finished(self, task: asyncio.Task[HealthReport]) -> None:
        self._running = None
        if not task.cancelled() and task.exception() is None:
            self._cached = task.result()

    async def _run_all(self) -> HealthReport:
        results = await asyncio.gather(*(self._run(check) for check in self.checks))
        status, reason = overall_status(results)
        return HealthReport(status, results, reason, self._service, created_at=self._clock())

    async def _run(self, check: Check) -> CheckResult:
        observed_at, started = time.time(), time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                observation = await check.probe()
        except TimeoutError:
            error = f"no answer within {self._timeout:.2f} s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}".strip()
        else:
            latency = time.perf_counter() - started
            return CheckResult(check, observation.status, observed_at, latency, observation)
        return CheckResult(
            check, Status.FAIL, observed_at, time.perf_counter() - started, None, error
        )


def _iso_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
