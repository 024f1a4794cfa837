"""`bench outbound`: GET /api/tips through breaker + client + cache, async against sync.

The async service and the guide's sync twin both ask the upstream on every request
(CACHE_TTL=0: the cache only serves when the upstream fails), so what is measured is the
outbound path. Each server runs pinned to one core; the load generator and the dependencies
(the demo upstream, Redis) share the other. Scenarios switch the real upstream's mode.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.bench import servers
from loadtests.bench.report import Row, Target, render, write
from loadtests.loadgen import LoadResult, run_load_sync
from loadtests.stack import Stack
from loadtests.upstream import UpstreamControl

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
# Against the per-request variant: the same work as the sync twin, one upstream call each.
TARGETS = [
    Target("healthy: async (call per request) / sync guide",
           "healthy: async, call per request", "healthy: sync Django", 1.5),
    Target("slow 100 ms, 200: async (call per request) / tuned",
           "slow 100 ms, 200: async, call per request", "slow 100 ms, 200: sync Django tuned",
           5.0),
    Target("down: async /api/tips / async bare route", "down (breaker open): async service",
           "bare route: async service", 0.9),
]  # fmt: skip


def run(*, duration: float, warmup: float, connections: int, rounds: int) -> str:
    """`connections` is unused: each scenario names its own concurrency."""
    servers.pin_to(servers.LOAD_CORE)
    with tempfile.TemporaryDirectory(prefix="bench-outbound-") as scratch:
        work = Path(scratch)
        (work / "metrics").mkdir()
        with Stack(state_dir=work / "stack") as stack:
            servers.pin_stack(stack)
            env = _service_env(stack, work)
            contenders = {spec.name: servers.start(spec, env, work) for spec in (*ALL, WAITING)}
            control = UpstreamControl(stack.env["TIPS_UPSTREAM_CONTROL_URL"])
            try:
                results = _rounds(contenders, control, rounds, duration, warmup)
            finally:
                control.close()
                for server in contenders.values():
                    server.child.stop(timeout=10)
    return _report(results, duration, warmup, rounds)


def _service_env(stack: Stack, work: Path) -> dict[str, str]:
    return {
        **stack.env,
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        "LOG_LEVEL": "error",
        "CACHE_TTL": "0",
        "UPSTREAM_TIMEOUT": str(UPSTREAM_TIMEOUT),
        "BREAKER_RESET_TIMEOUT": str(RESET_TIMEOUT),
        "UPSTREAM_MAX_CONNECTIONS": "256",
    }


@dataclass(frozen=True)
class Measured:
    """One server's turn: what the load generator saw, and what reached the upstream."""

    result: LoadResult
    upstream_rps: float


def _rounds(contenders: dict[str, servers.RunningServer], control: UpstreamControl, rounds: int,
            duration: float, warmup: float) -> dict[str, list[Measured]]:  # fmt: skip
    results: dict[str, list[Measured]] = {}
    async_url = contenders[ASYNC.name].url
    for _ in range(rounds):
        bare = run_load_sync(f"{async_url}/health/live", connections=64, duration=duration,
                             warmup=warmup)  # fmt: skip
        results.setdefault("bare route: async service", []).append(Measured(bare, 0.0))
        _warm(contenders)
        for scenario in SCENARIOS:
            control.set_mode(**scenario.mode)  # type: ignore[arg-type]
            for spec in scenario.contenders:
                measured = _measure(contenders[spec.name], control, scenario, duration, warmup)
                results.setdefault(f"{scenario.name}: {spec.name}", []).append(measured)
        control.set_mode("normal")
        _await_closed_breakers(contenders)
    return results


def _measure(server: servers.RunningServer, control: UpstreamControl, scenario: Scenario,
             duration: float, warmup: float) -> Measured:  # fmt: skip
    # Hanging: the first wave, the one that waits for the timeout, is what is measured.
    pre = 0.0 if scenario.name == "hanging" else warmup
    control.reset_stats()
    result = run_load_sync(f"{server.url}/api/tips", connections=scenario.connections,
                           duration=duration, warmup=pre, timeout=UPSTREAM_TIMEOUT * 3)  # fmt: skip
    return Measured(result, control.stats()["requests"] / (duration + pre))


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


def _report(results: dict[str, list[Measured]], duration: float, warmup: float,
            rounds: int) -> str:  # fmt: skip
    rows = []
    for key, measured in results.items():
        median = sorted(measured, key=lambda m: m.result.rps)[len(measured) // 2]
        note = f"upstream calls {median.upstream_rps:.0f}/s" if "bare" not in key else "reference"
        rows.append(Row(key, note, median.result))

    def p99(name: str) -> float:
        return next(row.result for row in rows if row.name == name).latencies_ms.p99

    # The budget, plus what the server's own queueing costs at p99: its bare route's.
    hanging, waiting = p99("hanging: async service"), p99(f"hanging: {WAITING.name}")
    limit_ms = STALE_BUDGET * 1000 + p99("bare route: async service")
    verdict = "met" if hanging <= limit_ms else "MISSED"
    extra = (f"hanging, stale tips at hand: async p99 {hanging:.0f} ms (target <= "
             f"CACHE_STALE_BUDGET + the bare route's p99 = {limit_ms:.0f} ms: {verdict}); "
             f"waiting for the refresh instead: p99 {waiting:.0f} ms")  # fmt: skip
    by_round = {key: [round(m.result.rps) for m in ms] for key, ms in results.items()}
    settings = {"duration_s": duration, "warmup_s": warmup, "rounds": rounds,
                "upstream_timeout_s": UPSTREAM_TIMEOUT, "cache_ttl_s": 0,
                "stale_budget_s": STALE_BUDGET,
                "rps_by_round": by_round}  # fmt: skip
    path = write("outbound", rows, TARGETS, settings)
    title = (
        "bench outbound: GET /api/tips, CACHE_TTL=0 (no answer from cache while the upstream "
        "answers; the async service\nshares one upstream call among concurrent requests, its "
        f"per-request variant does not), {rounds} rounds of {duration:g} s, median round, "
        "each server on 1 core"
    )
    return f"{render(title, rows, TARGETS)}\n{extra}\n\nwritten to {path}"
