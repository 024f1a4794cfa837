"""Readiness: concurrent, time-bounded checks, grouped verdicts, caching and single flight."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from resilience_async import (
    Check,
    CheckResult,
    HealthReport,
    Lifecycle,
    Observation,
    Phase,
    Probe,
    Readiness,
    Status,
    threshold,
)
from resilience_async._health import overall_status
from tests.fakes import FakeClock


class CountingProbe:
    """A probe that counts its calls and returns a fixed observation or raises."""

    def __init__(
        self, observation: Observation | None = None, error: Exception | None = None
    ) -> None:
        self.calls = 0
        self._observation = observation or Observation(value=1.0, unit="ms")
        self._error = error

    async def __call__(self) -> Observation:
        self.calls += 1
        if self._error is not None:
            raise self._error
        return self._observation


class BlockedProbe:
    """A probe that signals it started, then waits until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self) -> Observation:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        return Observation(value=2.0, unit="ms")


def serving() -> Lifecycle:
    lifecycle = Lifecycle()
    lifecycle.phase = Phase.SERVING
    return lifecycle


def check(component: str, probe: Probe, *, group: str | None = None) -> Check:
    return Check(
        component=component,
        measurement="responseTime",
        probe=probe,
        component_type="datastore",
        component_id=f"{component}.internal:5432",
        group=group,
    )


def result(component: str, status: Status, *, group: str | None = None) -> CheckResult:
    return CheckResult(check(component, CountingProbe(), group=group), status, 0.0, 0.0)


def readiness(
    checks: list[Check],
    *,
    timeout: float = 2.0,
    cache_ttl: float = 0.0,
    clock: Callable[[], float] | None = None,
    lifecycle: Lifecycle | None = None,
) -> Readiness:
    return Readiness(
        checks,
        lifecycle=lifecycle or serving(),
        timeout=timeout,
        cache_ttl=cache_ttl,
        service="api-1",
        clock=clock or FakeClock(1000.0),
    )


async def test_checks_run_concurrently() -> None:
    """Each probe waits for an event only the other sets: both pass only if run together."""
    a_ran, b_ran = asyncio.Event(), asyncio.Event()

    async def probe_a() -> Observation:
        a_ran.set()
        await b_ran.wait()
        return Observation()

    async def probe_b() -> Observation:
        b_ran.set()
        await a_ran.wait()
        return Observation()

    report = await readiness([check("a", probe_a), check("b", probe_b)]).report()

    assert report.status is Status.PASS
    assert [r.status for r in report.results] == [Status.PASS, Status.PASS]


async def test_probe_exceeding_timeout_fails_with_timeout_output() -> None:
    """A probe that never answers fails with an output naming the timeout."""
    never = asyncio.Event()

    async def hang() -> Observation:
        await never.wait()
        return Observation()

    fast = CountingProbe()
    report = await readiness([check("slow", hang), check("fast", fast)], timeout=0.05).report()

    slow_result = report.result("slow")
    assert slow_result.status is Status.FAIL
    assert slow_result.error == "no answer within 0.05 s"
    assert report.result("fast").status is Status.PASS
    assert report.status is Status.WARN


async def test_probe_raising_fails_with_exception_type_and_message() -> None:
    """A probe that raises fails with the exception's type and message as output."""
    probe = CountingProbe(error=ConnectionRefusedError("connection refused by db:5432"))
    report = await readiness([check("primary", probe)]).report()

    failed = report.result("primary")
    assert failed.status is Status.FAIL
    assert failed.error == "ConnectionRefusedError: connection refused by db:5432"
    detailed = report.to_json(detailed=True)["checks"]["primary:responseTime"][0]
    assert detailed["output"] == "ConnectionRefusedError: connection refused by db:5432"


async def test_probe_observation_status_is_kept() -> None:
    """A probe that answers with a warning observation yields a warning check, not a pass."""
    probe = CountingProbe(Observation(value=9.0, unit="s", status=Status.WARN, output="lagging"))
    report = await readiness([check("replica", probe)]).report()

    assert report.result("replica").status is Status.WARN
    assert report.status is Status.WARN
    assert report.reason == "degraded: replica warn"


def test_timeout_must_be_positive() -> None:
    """A zero timeout is rejected at construction."""
    with pytest.raises(ValueError, match="timeout must be > 0"):
        Readiness([], lifecycle=serving(), timeout=0)


def test_overall_fails_when_every_check_of_a_required_group_fails() -> None:
    """No reachable member of a required group fails readiness, naming the group."""
    status, reason = overall_status(
        [
            result("primary", Status.FAIL, group="database"),
            result("replica", Status.FAIL, group="database"),
            result("redis", Status.PASS),
        ]
    )
    assert status is Status.FAIL
    assert reason == "no database is reachable"


def test_overall_warns_when_some_of_a_required_group_fail() -> None:
    """One reachable member of a required group keeps readiness at warn, naming the others."""
    status, reason = overall_status(
        [
            result("primary", Status.FAIL, group="database"),
            result("replica", Status.PASS, group="database"),
        ]
    )
    assert status is Status.WARN
    assert reason == "degraded: primary fail"


def test_overall_warns_when_an_ungrouped_check_fails() -> None:
    """A failing dependency outside any required group only degrades readiness to warn."""
    status, reason = overall_status(
        [
            result("primary", Status.PASS, group="database"),
            result("redis", Status.FAIL),
            result("tips", Status.WARN),
        ]
    )
    assert status is Status.WARN
    assert reason == "degraded: redis fail, tips warn"


def test_overall_passes_when_all_pass() -> None:
    """Every check passing gives pass with no reason."""
    status, reason = overall_status(
        [result("primary", Status.PASS, group="database"), result("redis", Status.PASS)]
    )
    assert status is Status.PASS
    assert reason is None


async def test_readiness_fails_with_503_when_required_group_is_down() -> None:
    """A report whose whole required group fails is 503 with the reason in detailed output."""
    down = CountingProbe(error=OSError("unreachable"))
    report = await readiness(
        [
            check("primary", down, group="database"),
            check("replica", down, group="database"),
            check("redis", CountingProbe()),
        ]
    ).report()

    assert report.status is Status.FAIL
    assert report.http_status == 503
    assert report.to_json(detailed=True)["output"] == "no database is reachable"


async def test_readiness_warns_with_200_when_some_checks_fail() -> None:
    """A report with one failing member of a group and a failing ungrouped check is 200 warn."""
    down = CountingProbe(error=OSError("unreachable"))
    report = await readiness(
        [
            check("primary", CountingProbe(), group="database"),
            check("replica", down, group="database"),
            check("redis", down),
        ]
    ).report()

    assert report.status is Status.WARN
    assert report.http_status == 200
    assert report.reason == "degraded: replica fail, redis fail"


async def test_readiness_passes_with_200_when_all_pass() -> None:
    """A report where every check passes is 200 pass without an output."""
    report = await readiness(
        [check("primary", CountingProbe(), group="database"), check("redis", CountingProbe())]
    ).report()

    assert report.status is Status.PASS
    assert report.http_status == 200
    assert "output" not in report.to_json(detailed=True)


@pytest.mark.parametrize("phase", [Phase.STARTING, Phase.DRAINING, Phase.STOPPED])
async def test_not_serving_fails_without_running_probes(phase: Phase) -> None:
    """An instance that is not serving fails readiness with its phase and runs no probe."""
    lifecycle = Lifecycle()
    lifecycle.phase = phase
    probe = CountingProbe()
    report = await readiness([check("primary", probe)], lifecycle=lifecycle).report()

    assert report.status is Status.FAIL
    assert report.http_status == 503
    assert report.reason == f"instance is {phase.value}"
    assert report.results == ()
    assert probe.calls == 0


async def test_report_is_cached_within_ttl_and_refreshed_after() -> None:
    """Within cache_ttl the report is reused; once the ttl has passed the probes run again."""
    clock = FakeClock(1000.0)
    probe = CountingProbe()
    ready = readiness([check("primary", probe)], cache_ttl=1.0, clock=clock)

    first = await ready.report()
    clock.advance(0.999)
    second = await ready.report()
    assert second is first
    assert probe.calls == 1

    clock.advance(0.001)
    third = await ready.report()
    assert third is not first
    assert probe.calls == 2


async def test_draining_is_reported_even_with_a_cached_pass() -> None:
    """A cached passing report does not hide that the instance started draining."""
    lifecycle = serving()
    probe = CountingProbe()
    ready = readiness([check("primary", probe)], cache_ttl=60.0, lifecycle=lifecycle)
    assert (await ready.report()).status is Status.PASS

    lifecycle.phase = Phase.DRAINING
    report = await ready.report()

    assert report.status is Status.FAIL
    assert report.reason == "instance is draining"
    assert probe.calls == 1


async def test_concurrent_callers_share_one_round() -> None:
    """Twenty concurrent reports while a probe is blocked run that probe once."""
    probe = BlockedProbe()
    ready = readiness([check("primary", probe)])

    callers = [asyncio.create_task(ready.report()) for _ in range(20)]
    await probe.started.wait()
    probe.release.set()
    reports = await asyncio.gather(*callers)

    assert probe.calls == 1
    assert all(report is reports[0] for report in reports)
    assert reports[0].status is Status.PASS


async def test_cancelled_caller_does_not_cancel_the_shared_round() -> None:
    """A caller cancelled mid-round leaves the round running for the others."""
    probe = BlockedProbe()
    ready = readiness([check("primary", probe)])

    leaving = asyncio.create_task(ready.report())
    staying = asyncio.create_task(ready.report())
    await probe.started.wait()
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving

    probe.release.set()
    report = await staying

    assert report.status is Status.PASS
    assert probe.calls == 1


async def test_round_finished_after_every_caller_left_is_cached() -> None:
    """A round whose only caller was cancelled still completes and serves the next caller."""
    probe = BlockedProbe()
    ready = readiness([check("primary", probe)], cache_ttl=60.0)

    leaving = asyncio.create_task(ready.report())
    await probe.started.wait()
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving

    probe.release.set()
    report = await ready.report()

    assert report.status is Status.PASS
    assert probe.calls == 1


async def test_summary_json_has_only_statuses() -> None:
    """The public report carries statuses only: no output, ids, values or service."""
    down = CountingProbe(error=OSError("db.internal:5432 refused"))
    report = await readiness(
        [check("primary", down, group="database"), check("redis", CountingProbe())]
    ).report()

    body = report.to_json(detailed=False)

    assert body == {
        "status": "fail",
        "checks": {
            "primary:responseTime": [{"status": "fail"}],
            "redis:responseTime": [{"status": "pass"}],
        },
    }


async def test_detailed_json_has_component_details() -> None:
    """The detailed report adds service, reason, component type/id, value, unit, time, output."""
    probe = CountingProbe(
        Observation(value=7.5, unit="s", status=Status.WARN, output="replication lag 7.5 s")
    )
    report = await readiness([check("replica", probe)]).report()

    body = report.to_json(detailed=True)

    assert body["status"] == "warn"
    assert body["serviceId"] == "api-1"
    assert body["output"] == "degraded: replica warn"
    entry = body["checks"]["replica:responseTime"][0]
    assert entry["status"] == "warn"
    assert entry["componentType"] == "datastore"
    assert entry["componentId"] == "replica.internal:5432"
    assert entry["observedValue"] == 7.5
    assert entry["observedUnit"] == "s"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["time"])
    assert entry["output"] == "replication lag 7.5 s"
    assert entry["latencyMs"] >= 0


def test_report_result_raises_key_error_for_unknown_component() -> None:
    """Looking up a component that was not checked raises KeyError."""
    report = HealthReport(Status.PASS, [result("primary", Status.PASS)])
    assert report.result("primary").check.component == "primary"
    with pytest.raises(KeyError):
        report.result("redis")


def test_threshold_warns_above_the_limit_naming_the_value() -> None:
    """A value above the limit gives a warning whose output names what, value and limit."""
    observation = threshold(7.25, unit="s", warn_above=5.0, what="replication lag")

    assert observation.status is Status.WARN
    assert observation.value == 7.25
    assert observation.unit == "s"
    assert observation.output == "replication lag 7.250 s exceeds 5 s"


@pytest.mark.parametrize("value", [0.0, 4.99, 5.0])
def test_threshold_passes_at_or_below_the_limit(value: float) -> None:
    """A value at or below the limit passes with no output."""
    observation = threshold(value, unit="s", warn_above=5.0, what="replication lag")

    assert observation.status is Status.PASS
    assert observation.value == value
    assert observation.output is None
