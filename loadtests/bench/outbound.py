"""`bench outbound`: GET /api/tips through breaker + client + cache, async against sync.

The async service and the guide's sync twin both ask the upstream on every request
(CACHE_TTL=0: the cache only serves when the upstream fails), so what is measured is the
outbound path. Each server runs pinned to one core; the load generator and the dependencies
(the demo upstream, Redis) share the other. Scenarios switch the real upstream's mode.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from devstack.stack import Stack
from devstack.upstream import UpstreamControl
from loadtests.bench import servers
from loadtests.bench.generator import run_load_sync
from loadtests.bench.plan import Plan
from loadtests.bench.progress import SILENT, Progress
from loadtests.bench.report import Outcome, finish
from loadtests.bench.rounds import Measured, Rounds, Turn
from loadtests.bench.stage import Stage, stage
from loadtests.bench.targets import Target, Verdict, verdicts

UPSTREAM_TIMEOUT = 2.0
RESET_TIMEOUT = 2.0


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: dict[str, object]
    connections: int
    contenders: tuple[servers.ServerSpec, ...]


STALE_BUDGET = 0.15  # CACHE_STALE_BUDGET's default
ASYNC, PER_REQUEST = servers.ASYNC_SERVICE, servers.ASYNC_PER_REQUEST
# Before stale-while-revalidate: every caller waits for its refresh.
WAITING = servers.ServerSpec(
    "async, waiting for the refresh",
    "the async service with CACHE_STALE_BUDGET=off: every caller waits for its refresh",
    ASYNC.argv_for_port,
    (("CACHE_STALE_BUDGET", "off"),),
)
GUIDE, TUNED = servers.SYNC_DJANGO, servers.SYNC_TUNED
ALL = (ASYNC, PER_REQUEST, GUIDE, TUNED)
SCENARIOS = (
    Scenario("healthy", {"mode": "normal"}, 64, ALL),
    Scenario("slow 100 ms, 64", {"mode": "slow", "delay_ms": 100}, 64, ALL),
    Scenario("slow 100 ms, 200", {"mode": "slow", "delay_ms": 100}, 200, ALL),
    # Before "down": its breakers must still be closed, as a hang finds them.
    Scenario("hanging", {"mode": "hang"}, 64, (ASYNC, WAITING)),
    Scenario("down (breaker open)", {"mode": "refuse"}, 64, (ASYNC, GUIDE)),
)
# The smoke test's: one async and one sync server, no scenario that waits for a timeout.
QUICK_SCENARIOS = (
    Scenario("healthy", {"mode": "normal"}, 64, (ASYNC, GUIDE)),
    Scenario("down (breaker open)", {"mode": "refuse"}, 64, (ASYNC, GUIDE)),
)
BARE_ROUTE = "bare route: async service"
CEILING = f"ceiling: {servers.BARE_ASGI.name}"
# Against the per-request variant: the same work as the sync twin, one upstream call each.
TARGETS = [
    Target("healthy: async (call per request) / sync guide",
           "healthy: async, call per request", "healthy: sync Django", 1.5),
    Target("slow 100 ms, 200: async (call per request) / tuned",
           "slow 100 ms, 200: async, call per request", "slow 100 ms, 200: sync Django tuned",
           5.0),
    Target("down: async /api/tips / async bare route", "down (breaker open): async service",
           BARE_ROUTE, 0.9),
]  # fmt: skip


def run(plan: Plan, progress: Progress = SILENT, stack: Stack | None = None) -> Outcome:
    """`plan.connections` is unused: each scenario names its own concurrency. Quick: healthy
    and down only, on the async service and the guide's sync twin."""
    servers.pin_to(servers.LOAD_CORE)
    scenarios = QUICK_SCENARIOS if plan.quick else SCENARIOS
    specs = {spec.name: spec for scenario in scenarios for spec in scenario.contenders}
    with stage("outbound", stack) as where:
        servers.pin_stack(where.stack)
        env = _service_env(where)
        control_url = where.stack.env["TIPS_UPSTREAM_CONTROL_URL"]
        with servers.serving([*specs.values(), servers.BARE_ASGI], env, where.work) as running, \
                UpstreamControl(control_url) as control:  # fmt: skip
            *served, ceiling = running
            contenders = {server.spec.name: server for server in served}
            rounds = _rounds(contenders, ceiling, control, scenarios=scenarios, plan=plan,
                             progress=progress)  # fmt: skip
    return _report(rounds, plan)


def _service_env(where: Stage) -> dict[str, str]:
    return where.env(
        CACHE_TTL="0",
        UPSTREAM_TIMEOUT=str(UPSTREAM_TIMEOUT),
        BREAKER_RESET_TIMEOUT=str(RESET_TIMEOUT),
        UPSTREAM_MAX_CONNECTIONS="256",
    )


def _rounds(contenders: dict[str, servers.RunningServer], ceiling: servers.RunningServer,
            control: UpstreamControl, *, scenarios: tuple[Scenario, ...], plan: Plan,
            progress: Progress) -> Rounds:  # fmt: skip
    """`contenders` by name: the servers of the scenarios (the ceiling is no tips server)."""
    rounds = Rounds("outbound", plan.rounds, progress)
    load = {"connections": 64, "duration": plan.duration, "warmup": plan.warmup}
    service = contenders[ASYNC.name]
    for number in rounds:
        with rounds.turn(BARE_ROUTE, service) as turn:
            turn.add(BARE_ROUTE, run_load_sync(f"{service.url}/health/live", **load))
        with rounds.turn(CEILING, ceiling) as turn:
            turn.add(CEILING, run_load_sync(f"{ceiling.url}/api/tips", **load))
        _warm(contenders)
        for scenario in scenarios:
            control.set_mode(**scenario.mode)  # type: ignore[arg-type]
            for spec in scenario.contenders:
                name = f"{scenario.name}: {spec.name}"
                with rounds.turn(name, contenders[spec.name]) as turn:
                    _measure(
                        turn, name, contenders[spec.name], control, scenario=scenario, plan=plan
                    )
        control.set_mode("normal")
        if number < rounds.count:
            _await_closed_breakers(contenders)
    return rounds


def _measure(turn: Turn, name: str, server: servers.RunningServer, control: UpstreamControl, *,
             scenario: Scenario, plan: Plan) -> None:  # fmt: skip
    # Hanging: the first wave, the one that waits for the timeout, is what is measured.
    pre = 0.0 if scenario.name == "hanging" else plan.warmup
    control.reset_stats()
    result = run_load_sync(f"{server.url}/api/tips", connections=scenario.connections,
                           duration=plan.duration, warmup=pre,
                           timeout=UPSTREAM_TIMEOUT * 3)  # fmt: skip
    turn.add(name, result, upstream_rps=control.stats()["requests"] / (plan.duration + pre))


def _warm(contenders: dict[str, servers.RunningServer]) -> None:
    """One answer from the healthy upstream in every server's cache: each then holds stale
    tips for the scenarios where the upstream fails (CACHE_TTL=0: never fresh)."""
    for server in contenders.values():
        httpx.get(f"{server.url}/api/tips", timeout=5).raise_for_status()


def _await_closed_breakers(contenders: dict[str, servers.RunningServer]) -> None:
    """Back to normal: wait out the open periods until every server answers live again."""
    deadline = time.monotonic() + RESET_TIMEOUT * 5
    for server in contenders.values():
        while time.monotonic() < deadline:
            body = httpx.get(f"{server.url}/api/tips", timeout=5).json()
            if body["source"] == "live":
                break
            time.sleep(0.2)


def _report(rounds: Rounds, plan: Plan) -> Outcome:
    medians = rounds.medians()
    rows = [m.row(name, _describe(name, m), "" if name == CEILING else CEILING)
            for name, m in medians.items()]  # fmt: skip
    found = [*verdicts(TARGETS, medians), *_stale_verdict(medians)]
    waiting = medians.get(f"hanging: {WAITING.name}")
    notes = [] if waiting is None else [
        f"hanging, waiting for the refresh instead (CACHE_STALE_BUDGET=off): "
        f"p99 {waiting.result.latencies_ms.p99:.0f} ms"]  # fmt: skip
    settings = {"upstream_timeout_s": UPSTREAM_TIMEOUT, "cache_ttl_s": 0,
                "stale_budget_s": STALE_BUDGET, "ceiling_connections": 64,
                "rps_by_round": rounds.rps_by_round()}  # fmt: skip
    title = (
        "bench outbound: GET /api/tips, CACHE_TTL=0 (no answer from cache while the upstream "
        "answers; the async service\nshares one upstream call among concurrent requests, its "
        f"per-request variant does not), {plan.rounds} rounds of {plan.duration:g} s, median "
        "round, each server on 1 core"
    )
    return finish("outbound", title, rows, found, plan=plan, settings=settings, notes=notes)


def _describe(name: str, measured: Measured) -> str:
    if name == CEILING:
        return f"{servers.BARE_ASGI.description}; 64 connections"
    if name == BARE_ROUTE:
        return "GET /health/live, 64 connections: the request path alone"
    return f"upstream calls {measured.extra.get('upstream_rps', 0):.0f}/s"


def _stale_verdict(medians: dict[str, Measured]) -> list[Verdict]:
    """Hanging with stale tips at hand: answered within the budget plus the server's own
    queueing at p99 (its bare route's)."""
    hanging = medians.get("hanging: async service")
    if hanging is None:
        return []
    p99 = hanging.result.latencies_ms.p99
    limit = STALE_BUDGET * 1000 + medians[BARE_ROUTE].result.latencies_ms.p99
    return [
        Verdict(
            "hanging, stale tips at hand: async p99",
            p99,
            limit,
            f"{p99:.0f} ms",
            f"<= {limit:.0f} ms (CACHE_STALE_BUDGET + bare route p99)",
            p99 <= limit,
        )
    ]
