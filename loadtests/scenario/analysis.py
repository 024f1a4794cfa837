"""Request records turned into per-second series, percentiles per phase, and SLO verdicts.

A request belongs to the second and the phase of its *intended* send time, not of the time it
was sent: a stalled service delays sends, and counting them when they finally go out would hide
the stall (coordinated omission). Latencies are measured from the intended time too.

Percentiles are nearest-rank everywhere: the smallest latency with at least q % of the requests
at or below it, so every reported percentile is a latency some request really had.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from loadtests.scenario._words import describe
from loadtests.scenario.spec import (
    ALL,
    GROUPS,
    ErrorSlo,
    FirstWriteSlo,
    LatencySlo,
    RecoverySlo,
    Slo,
    is_error,
)

__all__ = [
    "ALL",
    "Analysis",
    "FaultWindow",
    "Series",
    "Stats",
    "analyse",
    "percentile",
    "phase_bounds",
    "recovery_seconds",
]


class FaultWindow(NamedTuple):
    """When a fault was really in force, in seconds since the run's t0 (end >= start); for a
    fault on a Patroni leader, the leader it hit and the one that followed, and when that
    one was first seen running (None: never)."""

    name: str
    kind: str
    target: str
    start: float
    end: float
    old_leader: str | None = None
    new_leader: str | None = None
    new_leader_at: float | None = None


class _Request(NamedTuple):
    at: float  # intended send time, seconds since t0
    endpoint: str
    status: int
    latency: float


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank `q`-th percentile (0 < q <= 100) of already sorted values; None if empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Stats:
    """One endpoint (or "*") in one phase; error counts use the default error statuses."""

    endpoint: str
    phase: str
    count: int
    errors: int
    error_rate: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, endpoint: str, phase: str, requests: Sequence[_Request]) -> Stats:
        latencies = sorted(request.latency for request in requests)
        errors = sum(is_error(request.status) for request in requests)
        return cls(
            endpoint=endpoint,
            phase=phase,
            count=len(requests),
            errors=errors,
            error_rate=errors / len(requests) if requests else None,
            p50=percentile(latencies, 50),
            p95=percentile(latencies, 95),
            p99=percentile(latencies, 99),
            max=latencies[-1] if latencies else None,
        )


@dataclass(frozen=True)
class Series:
    """Per-second columns, index i covering [i, i + 1) s after t0, by intended time."""

    total: list[int]
    sent: dict[str, list[int]]  # per endpoint
    ok: list[int]
    errors_by_status: dict[str, list[int]]  # "0" is no response
    errors_by_endpoint: dict[str, list[int]]
    p50: list[float | None]
    p95: list[float | None]
    p99: list[float | None]

    def error_rate(self, endpoint: str = ALL) -> list[float | None]:
        """Errors / requests each second (None for a second without requests)."""
        if endpoint == ALL:
            sent, errors = self.total, [n - ok for n, ok in zip(self.total, self.ok, strict=True)]
        else:
            sent, errors = self.sent[endpoint], self.errors_by_endpoint[endpoint]
        return [e / n if n else None for e, n in zip(errors, sent, strict=True)]


@dataclass(frozen=True)
class Analysis:
    t0: float
    duration: float
    faults: tuple[FaultWindow, ...]
    phases: dict[str, tuple[float, float]]  # name -> [start, end) in seconds since t0
    series: Series
    stats: tuple[Stats, ...]
    verdicts: list[dict[str, Any]]
    requests: int  # inside the run
    outside: int  # intended before t0 or after the end: not analysed

    def stat(self, endpoint: str, phase: str) -> Stats:
        for stats in self.stats:
            if (stats.endpoint, stats.phase) == (endpoint, phase):
                return stats
        raise KeyError(f"no stats for endpoint {endpoint!r} in phase {phase!r}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; per-second columns under "series", one row per endpoint x phase."""
        series = self.series
        return {
            "t0": self.t0,
            "duration": self.duration,
            "requests": self.requests,
            "outside": self.outside,
            "faults": [window._asdict() for window in self.faults],
            "phases": {name: list(bounds) for name, bounds in self.phases.items()},
            "series": {
                "second": list(range(len(series.total))),
                "total": series.total,
                "throughput": series.sent,
                "ok": series.ok,
                "errors_by_status": series.errors_by_status,
                "errors_by_endpoint": series.errors_by_endpoint,
                "error_rate": series.error_rate(),
                "p50": series.p50,
                "p95": series.p95,
                "p99": series.p99,
            },
            "stats": [asdict(stats) for stats in self.stats],
            "slos": self.verdicts,
        }


def analyse(
    records: Iterable[dict[str, Any]],
    *,
    t0: float,
    duration: float,
    faults: Sequence[FaultWindow],
    slos: Iterable[Slo],
) -> Analysis:
    """Everything the verdicts and the report need, from the records of one run.

    Args:
        records: the request records (see the records format); any order.
        t0: unix time of the run's second 0. duration: seconds the run was scheduled for.
        faults: the windows as really applied and undone.
    """
    requests, outside = _requests(records, t0, duration)
    phases = phase_bounds(faults, duration)
    slos = list(slos)
    named = {slo.endpoint for slo in slos if slo.endpoint != ALL}  # stats even without requests
    groups = sorted(named & set(GROUPS))
    endpoints = sorted({request.endpoint for request in requests} | (named - set(GROUPS)))
    index = _index(requests, endpoints, groups)
    stats = tuple(
        Stats.of(endpoint, phase, index[endpoint].between(*bounds))
        for endpoint in (ALL, *endpoints, *groups)
        for phase, bounds in phases.items()
    )
    verdicts = [_verdict(slo, index, phases, faults, duration) for slo in slos]
    series = _series(requests, math.ceil(duration), endpoints)
    return Analysis(
        t0, duration, tuple(faults), phases, series, stats, verdicts, len(requests), outside
    )


def phase_bounds(faults: Sequence[FaultWindow], duration: float) -> dict[str, tuple[float, float]]:
    """Each phase as [start, end): "all", "before" the first fault, and during / after each."""
    first = min((window.start for window in faults), default=duration)
    phases = {"all": (0.0, duration), "before": (0.0, first)}
    for window in faults:
        phases[f"during:{window.name}"] = (window.start, window.end)
        phases[f"after:{window.name}"] = (window.end, duration)
    return phases


def _requests(
    records: Iterable[dict[str, Any]], t0: float, duration: float
) -> tuple[list[_Request], int]:
    inside, outside = [], 0
    for record in records:
        try:
            request = _Request(
                float(record["intended"]) - t0,
                str(record["endpoint"]),
                int(record["status"]),
                float(record["latency"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"bad request record {record!r}: {exc!r}") from exc
        if 0 <= request.at < duration:
            inside.append(request)
        else:
            outside += 1
    return inside, outside


class _ByTime:
    """Requests sorted by intended time, so a phase is a slice found by bisection."""

    def __init__(self, requests: Iterable[_Request]) -> None:
        self.requests = sorted(requests)
        self.ats = [request.at for request in self.requests]

    def between(self, start: float, end: float) -> list[_Request]:
        return self.requests[bisect_left(self.ats, start) : bisect_left(self.ats, end)]


def _index(
    requests: Sequence[_Request], endpoints: Iterable[str], groups: Iterable[str] = ()
) -> dict[str, _ByTime]:
    index = {ALL: _ByTime(requests)}
    for endpoint in endpoints:
        index[endpoint] = _ByTime(r for r in requests if r.endpoint == endpoint)
    for group in groups:
        index[group] = _ByTime(r for r in requests if r.endpoint in GROUPS[group])
    return index


def _series(requests: Sequence[_Request], seconds: int, endpoints: Sequence[str]) -> Series:
    sent = {endpoint: [0] * seconds for endpoint in endpoints}
    errors_by_endpoint = {endpoint: [0] * seconds for endpoint in endpoints}
    errors_by_status: dict[str, list[int]] = defaultdict(lambda: [0] * seconds)
    latencies: list[list[float]] = [[] for _ in range(seconds)]
    for request in requests:
        second = int(request.at)
        sent[request.endpoint][second] += 1
        latencies[second].append(request.latency)
        if is_error(request.status):
            errors_by_endpoint[request.endpoint][second] += 1
            errors_by_status[str(request.status)][second] += 1
    total = [len(values) for values in latencies]
    bad = [sum(column[i] for column in errors_by_endpoint.values()) for i in range(seconds)]
    ok = [n - errors for n, errors in zip(total, bad, strict=True)]
    ordered = [sorted(values) for values in latencies]
    p50, p95, p99 = ([percentile(values, q) for values in ordered] for q in (50, 95, 99))
    by_status = dict(sorted(errors_by_status.items(), key=lambda item: int(item[0])))
    return Series(total, sent, ok, by_status, errors_by_endpoint, p50, p95, p99)


ACKNOWLEDGED = frozenset({200, 201, 202})


def _verdict(
    slo: Slo,
    index: dict[str, _ByTime],
    phases: dict[str, tuple[float, float]],
    faults: Sequence[FaultWindow],
    duration: float,
) -> dict[str, Any]:
    if isinstance(slo, RecoverySlo | FirstWriteSlo):
        window = next((window for window in faults if window.name == slo.fault), None)
        if isinstance(slo, FirstWriteSlo):
            return _first_write_verdict(slo, index[slo.endpoint], window)
        return _recovery_verdict(slo, index[slo.endpoint], window, duration)
    bounds = phases.get(slo.phase)
    if bounds is None:
        return _verdict_dict(slo, None, 0, passed=False, note="the fault was never applied")
    selected = index[slo.endpoint].between(*bounds)
    if isinstance(slo, ErrorSlo):
        errors = sum(is_error(request.status, slo.error_statuses) for request in selected)
        rate = errors / len(selected) if selected else None
        passed = rate is None or rate <= slo.max_error_rate
        return {**_verdict_dict(slo, rate, len(selected), passed=passed), "errors": errors}
    if slo.statuses is not None:
        selected = [request for request in selected if request.status in slo.statuses]
    p99 = percentile(sorted(request.latency for request in selected), 99)
    return _verdict_dict(slo, p99, len(selected), passed=p99 is None or p99 <= slo.p99)


def _recovery_verdict(
    slo: RecoverySlo, requests: _ByTime, window: FaultWindow | None, duration: float
) -> dict[str, Any]:
    if window is None:
        return _verdict_dict(slo, None, 0, passed=False, note="the fault was never applied")
    after = requests.between(window.end, duration)
    seconds = recovery_seconds(
        [request.at - window.end for request in after],
        [is_error(request.status, slo.error_statuses) for request in after],
        span=duration - window.end,
        window=slo.window,
        max_error_rate=slo.max_error_rate,
    )
    passed = seconds is not None and seconds <= slo.max_seconds
    note = None if seconds is not None else "never recovered before the run ended"
    return _verdict_dict(slo, seconds, len(after), passed=passed, note=note)


def _first_write_verdict(
    slo: FirstWriteSlo, requests: _ByTime, window: FaultWindow | None
) -> dict[str, Any]:
    """Seconds from the fault's start to the first write acknowledged once the new leader
    ran (the old one cannot acknowledge by then: it is dead, frozen or demoted)."""
    if window is None:
        return _verdict_dict(slo, None, 0, passed=False, note="the fault was never applied")
    since = window.start if window.old_leader is None else window.new_leader_at
    if since is None:
        return _verdict_dict(slo, None, 0, passed=False,
                             note=f"no new leader after {window.old_leader}")  # fmt: skip
    acknowledged = sorted(r.at + r.latency for r in requests.requests
                          if r.status in ACKNOWLEDGED and r.at + r.latency >= since)  # fmt: skip
    if not acknowledged:
        return _verdict_dict(slo, None, 0, passed=False, note="no write acknowledged after it")
    seconds = acknowledged[0] - window.start
    note = None
    if window.new_leader is not None and window.new_leader_at is not None:
        note = (f"{window.old_leader} -> {window.new_leader}, running"
                f" {window.new_leader_at - window.start:.1f} s after the fault")  # fmt: skip
    passed = seconds <= slo.max_seconds
    return _verdict_dict(slo, seconds, len(acknowledged), passed=passed, note=note)


def recovery_seconds(
    offsets: Sequence[float],
    errors: Sequence[bool],
    *,
    span: float,
    window: float,
    max_error_rate: float,
) -> float | None:
    """Whole seconds after a fault's end until `window` seconds in a row are fine; None: never.

    The 1-s buckets start at the fault's end (offset 0). A bucket is fine when its error rate is
    at most `max_error_rate` or it is empty, and a window must hold at least one request unless
    the run (`span` seconds after the fault's end) ends inside it.
    """
    buckets = max(1, math.ceil(span - 1e-9))
    width = max(1, math.ceil(window - 1e-9))
    count, bad = Counter[int](), Counter[int]()
    for offset, error in zip(offsets, errors, strict=True):
        count[int(offset)] += 1
        bad[int(offset)] += error
    for first in range(buckets):
        span_buckets = range(first, min(first + width, buckets))
        fine = all(bad[b] <= max_error_rate * count[b] for b in span_buckets)
        ends_inside = first + width > buckets
        if fine and (ends_inside or any(count[b] for b in span_buckets)):
            return float(first)
    return None


def _verdict_dict(
    slo: Slo, measured: float | None, count: int, *, passed: bool, note: str | None = None
) -> dict[str, Any]:
    if isinstance(slo, RecoverySlo):
        phase, metric, limit = f"after:{slo.fault}", "recovery", slo.max_seconds
    elif isinstance(slo, FirstWriteSlo):
        phase, metric, limit = f"during:{slo.fault}", "first_write", slo.max_seconds
    elif isinstance(slo, LatencySlo):
        phase, metric, limit = slo.phase, "p99", slo.p99
    else:
        phase, metric, limit = slo.phase, "error_rate", slo.max_error_rate
    if count == 0 and note is None:
        note = "no requests: passes vacuously" if passed else None
    return {
        "slo": describe(slo),
        "endpoint": slo.endpoint,
        "phase": phase,
        "metric": metric,
        "limit": limit,
        "measured": measured,
        "passed": passed,
        "count": count,
        "note": note,
    }
