"""`bench scale`: what each route costs as concurrency grows, and how it sheds beyond it.

Each route of the async service (as deployed: its default pool size, waiters and in-flight
limit) is loaded at 16, 64, 256 and 1024 connections on one core, and so is the bare ASGI
app, the ceiling at each level. The curve of goodput (2xx answers per second) by level shows
what waiting costs: a pool of a few connections serves 256 clients only if waiting for a
connection costs no more than the wait, and 1024 clients only if the excess is refused at
once (a 503 with Retry-After) rather than left to time out.

Targets, per route: at 256 connections at least 90 % of its peak goodput and not one failed
request (the door's 503s counted apart: under the adaptive limit they are how the tail stays
short); at 1024, at least 80 % of its peak goodput, no request without an answer, and the
refusals fast (their p99 within the door's wait, `MAX_IN_FLIGHT_WAIT`, plus the served
requests' p99: a refusal is held that long at most, on purpose). For the read route, the
tail: at 1024 the p99 of the requests served within 3x its p99 at 16 connections (requests
do not queue inside the service).

The in-flight limit (`MAX_IN_FLIGHT_LIMIT`: fixed by default, or adaptive) is sampled every
0.25 s during each load (`limit_sampler`) and shown beside its row: min, median and last.
The read route is measured again with the other kind of limit (the adaptive one, when the
default is fixed), quick runs too, for comparison: its tail and goodput are printed after
the table, and its limit over time is charted.

The read route is measured again with other pool sizes (`DATABASE_POOL_MAX_SIZE`) and
with the former 100 waiters (`DATABASE_POOL_MAX_WAITING`): the curves the defaults were
chosen from. The service's defaults (pool size, waiters, in-flight
limit) are read from `project.settings` and shown in the table's title and the chart.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.stack import Stack
from loadtests.bench import servers
from loadtests.bench.generator import LoadResult, run_load_sync
from loadtests.bench.limit_sampler import LimitSampler
from loadtests.bench.plan import Plan
from loadtests.bench.progress import SILENT, Progress
from loadtests.bench.report import Outcome, finish
from loadtests.bench.rounds import Measured, Rounds
from loadtests.bench.seed import write_headers
from loadtests.bench.stage import stage
from loadtests.bench.targets import Verdict, non_2xx
from project import settings as service_settings

LEVELS = (16, 64, 256, 1024)
QUICK_LEVELS = (16, 256)
SEED_ORDERS = 100
ORDER_ID = SEED_ORDERS // 2
KEPT_AT, KEPT = 256, 0.9  # goodput kept at this level, as a fraction of the peak
SHED_AT, GOODPUT_SHEDDING = 1024, 0.8
TAIL_FROM, TAIL_GROWTH = 16, 3.0  # served p99 at SHED_AT within this multiple of the p99 here
TIMEOUT = 10.0  # per request: longer than any wait the service allows itself


@dataclass(frozen=True)
class Route:
    name: str
    path: str
    method: str = "GET"
    body: bytes | None = None

    def load(self, headers: dict[str, str]) -> dict[str, Any]:
        """The load generator's arguments; `headers`: a write's (with the API key)."""
        if self.method == "GET":
            return {}
        return {"method": self.method, "body": self.body, "headers": headers}


LIVE = Route("GET /health/live", "/health/live")
READ = Route(f"GET /api/orders/{ORDER_ID}", f"/api/orders/{ORDER_ID}")
WRITE = Route("POST /api/orders", "/api/orders", "POST", b'{"item":"scale","quantity":1}')
TIPS = Route("GET /api/tips", "/api/tips")
ROUTES = (LIVE, READ, WRITE, TIPS)
QUICK_ROUTES = (LIVE, READ)
CEILING = "ceiling"
# The read route again, on the service with one setting changed: (label, setting, value).
VARIANTS = (("pool 10", "DATABASE_POOL_MAX_SIZE", 10), ("pool 40", "DATABASE_POOL_MAX_SIZE", 40),
            ("100 waiters", "DATABASE_POOL_MAX_WAITING", 100))  # fmt: skip
LIMIT_SETTING = "MAX_IN_FLIGHT_LIMIT"


def defaults() -> dict[str, int]:
    """The service's defaults this part measures (and chose): from its settings module."""
    return {"pool_size": service_settings.DATABASE_POOL_MAX_SIZE,
            "pool_waiters": service_settings.DATABASE_POOL_MAX_WAITING,
            "in_flight": service_settings.MAX_IN_FLIGHT_REQUESTS,
            "limit": service_settings.MAX_IN_FLIGHT_LIMIT}  # fmt: skip


def compared_limit() -> tuple[str, str, str]:
    """The variant with the other kind of in-flight limit than the default."""
    other = "fixed" if service_settings.MAX_IN_FLIGHT_LIMIT == "adaptive" else "adaptive"
    return (f"{other} limit", LIMIT_SETTING, other)


def variant(label: str, setting: str, value: int | str) -> servers.ServerSpec:
    return dataclasses.replace(servers.ASYNC_SERVICE, name=f"async service, {label}",
                               settings=((setting, str(value)),))  # fmt: skip


def own_metrics(spec: servers.ServerSpec, directory: Path) -> servers.ServerSpec:
    """`spec` writing its metrics to `directory` alone: its limit, not a sum with others'."""
    directory.mkdir()
    settings = (*spec.settings, ("PROMETHEUS_MULTIPROC_DIR", str(directory)))
    return dataclasses.replace(spec, settings=settings)


def read_with(label: str) -> str:
    return f"{READ.name}, {label}"


def variants_to_measure(quick: bool) -> list[tuple[str, str, int | str]]:
    """The other limit, and the variants whose setting differs from the default (those
    not in a quick run)."""
    if quick:
        return [compared_limit()]
    chosen = {"DATABASE_POOL_MAX_SIZE": defaults()["pool_size"],
              "DATABASE_POOL_MAX_WAITING": defaults()["pool_waiters"]}  # fmt: skip
    return [compared_limit(), *(entry for entry in VARIANTS if chosen[entry[1]] != entry[2])]


def key(route: str, level: int) -> str:
    return f"{route} @ {level}"


def run(plan: Plan, progress: Progress = SILENT, stack: Stack | None = None) -> Outcome:
    """`plan.connections` is unused: the levels are the point. Quick: two routes at 16 and
    256 connections."""
    servers.pin_to(servers.LOAD_CORE)
    routes = QUICK_ROUTES if plan.quick else ROUTES
    levels = QUICK_LEVELS if plan.quick else LEVELS
    with stage("scale", stack, orders=SEED_ORDERS) as where:
        servers.pin_stack(where.stack)
        env = where.env()
        writes = write_headers(where.stack)
        chosen = variants_to_measure(plan.quick)
        measured = [servers.ASYNC_SERVICE, *(variant(*v) for v in chosen)]
        dirs = [where.work / f"metrics-{number}" for number in range(len(measured))]
        specs = [own_metrics(spec, d) for spec, d in zip(measured, dirs, strict=True)]
        series: dict[str, list[tuple[float, float]]] = {}
        with servers.serving([specs[0], servers.BARE_ASGI, *specs[1:]], env,
                             where.work) as (service, ceiling, *others):  # fmt: skip
            rounds = Rounds("scale", plan.rounds, progress)
            for _ in rounds:
                for level in levels:
                    with rounds.turn(key(CEILING, level), ceiling) as turn:
                        turn.add(key(CEILING, level), _load(ceiling.url, LIVE, level, plan))
                for route in routes:
                    for level in levels:
                        name = key(route.name, level)
                        with rounds.turn(name, service) as turn:
                            with LimitSampler(dirs[0]) as limit:
                                load = _load(service.url, route, level, plan, writes)
                            turn.measured[name] = Measured(load, extra=limit.summary())
                        series[name] = limit.samples
                for (label, *_), other, metrics in zip(chosen, others, dirs[1:], strict=True):
                    for level in levels:
                        name = key(read_with(label), level)
                        with rounds.turn(name, other) as turn:
                            with LimitSampler(metrics) as limit:
                                load = _load(other.url, READ, level, plan)
                            turn.measured[name] = Measured(load, extra=limit.summary())
                        series[name] = limit.samples
    return _report(rounds, routes, levels, [label for label, *_ in chosen], plan, series=series)


def _load(url: str, route: Route, level: int, plan: Plan,
          headers: dict[str, str] | None = None) -> LoadResult:  # fmt: skip
    return run_load_sync(f"{url}{route.path}", connections=level, duration=plan.duration,
                         warmup=plan.warmup, timeout=TIMEOUT,
                         **route.load(headers or {}))  # fmt: skip


def _report(rounds: Rounds, routes: tuple[Route, ...], levels: tuple[int, ...],
            labels: list[str], plan: Plan, *,
            series: dict[str, list[tuple[float, float]]]) -> Outcome:  # fmt: skip
    medians = rounds.medians()
    chosen = defaults()
    names = [CEILING, *(route.name for route in routes), *map(read_with, labels)]
    rows = []
    for name in names:
        for level in levels:
            measured = medians[key(name, level)]
            ceiling = "" if name == CEILING else key(CEILING, level)
            rows.append(measured.row(key(name, level), _describe(measured), ceiling))
    found = [v for route in routes for v in route_verdicts(route.name, levels, medians)]
    found.extend(tail_verdicts(READ.name, levels, medians))
    compared = read_with(compared_limit()[0])
    curves = {name: {str(level): round(medians[key(name, level)].result.goodput)
                     for level in levels} for name in names}  # fmt: skip
    limits = {name: {str(level): dict(medians[key(name, level)].extra) for level in levels}
              for name in names if name != CEILING}  # fmt: skip
    settings = {"levels": list(levels), "goodput_by_level": curves, "defaults": chosen,
                "read_route": READ.name, "limit_by_level": limits,
                "limit_over_time": {name: [list(s) for s in samples]
                                    for name, samples in series.items()},
                "rps_by_round": rounds.rps_by_round(), "timeout_s": TIMEOUT}  # fmt: skip
    title = (
        f"bench scale: each route at {', '.join(map(str, levels))} connections, the async "
        f"service as deployed (pool {chosen['pool_size']}, {chosen['pool_waiters']} waiters, "
        f"{chosen['limit']} in-flight limit, at most {chosen['in_flight']}) on 1 core,\n"
        f"{plan.rounds} rounds of {plan.duration:g} s, median round"
    )
    notes = ["", "goodput (2xx/s) by connections:", *_curve_lines(curves, levels)]
    comparison = [*route_verdicts(compared, levels, medians),
                  *tail_verdicts(compared, levels, medians)]  # fmt: skip
    if comparison:
        notes += ["", f"for comparison, not targets: {compared}",
                  *(f"  {verdict.line()}" for verdict in comparison)]  # fmt: skip
    return finish("scale", title, rows, found, plan=plan, settings=settings, notes=notes)


def _describe(measured: Measured) -> str:
    result = measured.result
    text = f"goodput {result.goodput:.0f}/s"
    if result.ok_latencies_ms is not None:
        text += f", served p99 {result.ok_latencies_ms.p99:.1f} ms"
    if measured.extra:
        extra = measured.extra
        text += (f", limit {extra['limit_min']:.0f}/{extra['limit_median']:.0f}/"
                 f"{extra['limit_last']:.0f} (min/median/last)")  # fmt: skip
    shed = result.statuses.get(503, 0)
    if shed:
        text += f", {shed} shed (503)"
        if result.non_2xx_latencies_ms:
            text += f" p99 {result.non_2xx_latencies_ms.p99:.1f} ms"
    if result.error_count:
        text += f", {result.error_count} without an answer"
    return text


def route_verdicts(route: str, levels: tuple[int, ...],
                   medians: dict[str, Measured]) -> list[Verdict]:  # fmt: skip
    """The route's targets at the levels measured (none for a level left out)."""
    peak = max(medians[key(route, level)].result.goodput for level in levels)
    found = []
    if KEPT_AT in levels:
        at = medians[key(route, KEPT_AT)].result
        found.append(_kept(f"{route} @ {KEPT_AT}: goodput / peak", at, peak, KEPT))
        refused = at.statuses.get(503, 0)
        failed = at.error_count + non_2xx(at) - refused
        found.append(Verdict(f"{route} @ {KEPT_AT}: failed requests", failed, 0,
                             f"{failed} ({refused} refused)", "0 (503s apart)",
                             failed == 0))  # fmt: skip
    if SHED_AT in levels:
        at = medians[key(route, SHED_AT)].result
        found.append(_kept(f"{route} @ {SHED_AT}: goodput / peak", at, peak, GOODPUT_SHEDDING))
        found.append(_shed_fast(f"{route} @ {SHED_AT}: refusals", at))
    return found


def tail_verdicts(route: str, levels: tuple[int, ...],
                  medians: dict[str, Measured]) -> list[Verdict]:  # fmt: skip
    """At SHED_AT, the p99 of the requests served within TAIL_GROWTH x its p99 at TAIL_FROM
    (none unless both levels were measured)."""
    if TAIL_FROM not in levels or SHED_AT not in levels:
        return []
    calm = _served_p99(medians[key(route, TAIL_FROM)].result)
    loaded = _served_p99(medians[key(route, SHED_AT)].result)
    growth = loaded / max(calm, 1e-9)
    return [Verdict(f"{route} @ {SHED_AT}: served p99 / p99 @ {TAIL_FROM}", growth, TAIL_GROWTH,
                    f"{growth:.1f}x ({loaded:.0f} ms)",
                    f"<= {TAIL_GROWTH:g}x ({calm:.1f} ms)", growth <= TAIL_GROWTH)]  # fmt: skip


def _kept(label: str, result: LoadResult, peak: float, minimum: float) -> Verdict:
    kept = result.goodput / max(peak, 1e-9)
    return Verdict(label, kept, minimum, f"{kept:.2f}", f">= {minimum:g}", kept >= minimum)


def _shed_fast(label: str, result: LoadResult) -> Verdict:
    """Every request answered (none timed out or was dropped), and the refusals (non-2xx)
    no slower than the wait the door allows itself plus the requests served: their p99 at
    most `MAX_IN_FLIGHT_WAIT` + the 2xx answers' p99. A refusal is held up to that wait on
    purpose (a client that asks again at once must not spin the process on refusals), and
    at 1024 connections every answer, a refusal too, waits its turn on a busy loop."""
    if result.error_count:
        return Verdict(label, None, 0.0, f"{result.error_count} unanswered",
                       "all answered, refusals fast", False)  # fmt: skip
    refused = result.non_2xx_latencies_ms
    if refused is None:
        return Verdict(label, 0.0, 0.0, "none refused", "all answered", True)
    wait = service_settings.MAX_IN_FLIGHT_WAIT * 1000
    bound = wait + _served_p99(result)
    p99 = refused.p99
    return Verdict(label, p99, bound, f"refused p99 {p99:.0f} ms",
                   f"<= wait {wait:.0f} + served p99 {bound - wait:.0f} ms",
                   p99 <= bound)  # fmt: skip


def _served_p99(result: LoadResult) -> float:
    served = result.ok_latencies_ms
    return (served or result.latencies_ms).p99


def _curve_lines(curves: dict[str, dict[str, int]], levels: tuple[int, ...]) -> list[str]:
    width = max(len(name) for name in curves) + 2
    lines = [f"  {'':<{width}}" + "".join(f"{level:>9}" for level in levels)]
    for name, curve in curves.items():
        lines.append(f"  {name:<{width}}" + "".join(f"{curve[str(level)]:>9}" for level in levels))
    return lines
