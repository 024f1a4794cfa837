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
from loadtests.bench.report import Row, Target, median_round, render, write
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


ASYNC, GUIDE, TUNED = servers.ASYNC_SERVICE, servers.SYNC_DJANGO, servers.SYNC_TUNED
SCENARIOS = (
    Scenario("healthy", {"mode": "normal"}, 64, (ASYNC, GUIDE, TUNED)),
    Scenario("slow 100 ms, 64", {"mode": "slow", "delay_ms": 100}, 64, (ASYNC, GUIDE, TUNED)),
    Scenario("slow 100 ms, 200", {"mode": "slow", "delay_ms": 100}, 200, (ASYNC, GUIDE, TUNED)),
    Scenario("down (breaker open)", {"mode": "refuse"}, 64, (ASYNC, GUIDE)),
    Scenario("hanging", {"mode": "hang"}, 64, (ASYNC,)),
)
TARGETS = [
    Target("healthy: async / sync guide", "healthy: async service", "healthy: sync Django", 1.5),
    Target("slow 100 ms, 200: async / sync tuned", "slow 100 ms, 200: async service",
           "slow 100 ms, 200: sync Django tuned", 5.0),
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
            contenders = {
                spec.name: servers.start(spec, env, work) for spec in (ASYNC, GUIDE, TUNED)
            }
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


def _rounds(contenders: dict[str, servers.RunningServer], control: UpstreamControl, rounds: int,
            duration: float, warmup: float) -> dict[str, list[LoadResult]]:  # fmt: skip
    results: dict[str, list[LoadResult]] = {}
    async_url = contenders[ASYNC.name].url
    for _ in range(rounds):
        bare = run_load_sync(f"{async_url}/health/live", connections=64, duration=duration,
                             warmup=warmup)  # fmt: skip
        results.setdefault("bare route: async service", []).append(bare)
        for scenario in SCENARIOS:
            control.set_mode(**scenario.mode)  # type: ignore[arg-type]
            for spec in scenario.contenders:
                url = f"{contenders[spec.name].url}/api/tips"
                # Hanging: the first wave that waits for the timeout is what is measured.
                pre = 0.0 if scenario.name == "hanging" else warmup
                result = run_load_sync(url, connections=scenario.connections, duration=duration,
                                       warmup=pre, timeout=UPSTREAM_TIMEOUT * 3)  # fmt: skip
                results.setdefault(f"{scenario.name}: {spec.name}", []).append(result)
        control.set_mode("normal")
        _await_closed_breakers(contenders)
    return results


def _await_closed_breakers(contenders: dict[str, servers.RunningServer]) -> None:
    """Back to normal: wait out the open periods until every server answers live again."""
    deadline = time.monotonic() + RESET_TIMEOUT * 5
    for server in contenders.values():
        while time.monotonic() < deadline:
            body = httpx.get(f"{server.url}/api/tips", timeout=5).json()
            if body["source"] == "live":
                break
            time.sleep(0.2)


def _report(results: dict[str, list[LoadResult]], duration: float, warmup: float,
            rounds: int) -> str:  # fmt: skip
    rows = [Row(key, "", median_round(rs)) for key, rs in results.items()]
    by_name = {row.name: row for row in rows}
    hanging = by_name["hanging: async service"].result
    limit_ms = UPSTREAM_TIMEOUT * 1.1 * 1000
    verdict = "met" if hanging.latencies_ms.p99 <= limit_ms else "MISSED"
    extra = (f"hanging: async p99 {hanging.latencies_ms.p99:.0f} ms "
             f"(target <= timeout + 10% = {limit_ms:.0f} ms: {verdict})")  # fmt: skip
    by_round = {key: [round(r.rps) for r in rs] for key, rs in results.items()}
    settings = {"duration_s": duration, "warmup_s": warmup, "rounds": rounds,
                "upstream_timeout_s": UPSTREAM_TIMEOUT, "cache_ttl_s": 0,
                "rps_by_round": by_round}  # fmt: skip
    path = write("outbound", rows, TARGETS, settings)
    title = (f"bench outbound: GET /api/tips (CACHE_TTL=0: every request asks the upstream), "
             f"{rounds} rounds of {duration:g} s, median round, server on 1 core")  # fmt: skip
    return f"{render(title, rows, TARGETS)}\n{extra}\n\nwritten to {path}"
