"""`bench http`: a bare route on this project's request path against stock Django, one core each.

The route is `GET /health/live` (touches no dependency): what is measured is the cost of the
request path itself (server, handler, middleware, view, response). Each server is pinned to
the same core and the load generator to the other; the servers take turns, for several
rounds, and each one's median round is reported, so a noisy moment cannot decide a ratio.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from loadtests.bench import servers
from loadtests.bench.report import Row, Target, median_round, render, write
from loadtests.bench.slowloris import SlowClients
from loadtests.loadgen import LoadResult, run_load_sync
from loadtests.stack import Stack

CONTENDERS = (servers.ASYNC_SERVICE, servers.STOCK_ASGI, servers.SYNC_DJANGO)
SLOW_CLIENTS = 1000
BESIEGED = f"async service, {SLOW_CLIENTS} slow clients"
TARGETS = [
    Target("async service / stock Django ASGI", "async service", "stock Django ASGI", 5.0),
    Target("async service / sync Django (gunicorn)", "async service", "sync Django", 1.5),
    Target(f"with {SLOW_CLIENTS} slow clients / without", BESIEGED, "async service", 0.9),
]


def run(*, duration: float, warmup: float, connections: int, rounds: int) -> str:
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    servers.pin_to(servers.LOAD_CORE)
    with tempfile.TemporaryDirectory(prefix="bench-http-") as scratch:
        work = Path(scratch)
        (work / "metrics").mkdir()
        # The async service opens its pools at start-up: give it real dependencies.
        with Stack(state_dir=work / "stack") as stack:
            env = {
                **stack.env,
                "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
                "LOG_LEVEL": "warning",
            }
            running = [servers.start(spec, env, work) for spec in CONTENDERS]
            try:
                results = _rounds(running, rounds, duration, warmup, connections)
            finally:
                for server in running:
                    server.child.stop(timeout=10)
    rows = [
        Row(s.spec.name, s.spec.description, median_round(results[s.spec.name])) for s in running
    ]
    rows.append(Row(BESIEGED, "the async service while slowloris clients hold connections",
                    median_round(results[BESIEGED])))  # fmt: skip
    by_round = {name: [round(r.rps) for r in rs] for name, rs in results.items()}
    settings = {
        "route": "/health/live",
        "duration_s": duration,
        "warmup_s": warmup,
        "connections": connections,
        "rounds": rounds,
        "rps_by_round": by_round,
    }
    path = write("http", rows, TARGETS, settings)
    title = (
        f"bench http: GET /health/live, {connections} connections, {rounds} rounds of "
        f"{duration:g} s per server (median round shown), server on 1 core"
    )
    spread = "\n".join(
        f"  {name:<34}rounds: {', '.join(map(str, rps))} req/s" for name, rps in by_round.items()
    )
    return f"{render(title, rows, TARGETS)}\n\n{spread}\n\nwritten to {path}"


def _rounds(
    running: list[servers.RunningServer],
    rounds: int,
    duration: float,
    warmup: float,
    connections: int,
) -> dict[str, list[LoadResult]]:
    results: dict[str, list[LoadResult]] = {server.spec.name: [] for server in running}
    results[BESIEGED] = []
    service = next(s for s in running if s.spec is servers.ASYNC_SERVICE)
    for _ in range(rounds):
        for server in running:
            result = run_load_sync(
                f"{server.url}/health/live",
                connections=connections,
                duration=duration,
                warmup=warmup,
            )
            results[server.spec.name].append(result)
        # The same load while slow clients hold connections, their headers never finished.
        with SlowClients(service.url, SLOW_CLIENTS):
            besieged = run_load_sync(f"{service.url}/health/live", connections=connections,
                                     duration=duration, warmup=warmup)  # fmt: skip
        results[BESIEGED].append(besieged)
    return results
