"""`bench data`: reads and writes through the service against a bare psycopg pool, and failover.

Throughput: `GET /api/orders/<id>` (served by the replica) and `POST /api/orders` (primary,
with its consistency token) through the async service on one core, against the same SQL on
a bare `AsyncConnectionPool` in one process on that same core (`loadtests.bench.bare_pool`):
the ceiling, with no HTTP, Django or routing. Both use the same pool size.

Failover: readers and a writer run against the service while the primary is killed and,
`KILL_TO_PROMOTE` seconds later, the replica promoted; measured are the writes' gap after
the promotion, the whole write outage, and every read that failed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from loadtests.bench import servers
from loadtests.bench.report import Row, Target, median_round, render, write
from loadtests.bench.seed import migrate_and_seed
from loadtests.loadgen import LoadResult, run_load_sync
from loadtests.loadgen.result import Latencies
from loadtests.stack import Stack

SEED_ORDERS = 1000
READ_ID = SEED_ORDERS // 2
POOL_SIZE = 32  # the service's DATABASE_POOL_MAX_SIZE and the bare pool's size
ORDER_BODY = b'{"item":"bench","quantity":1}'
KILL_TO_PROMOTE = 1.5  # seconds without a primary before the replica is promoted
GAP_TARGET = 2.0
READERS = 8
TARGETS = [
    Target("reads: service / bare pool (1 core each)", "reads: async service",
           "reads: bare psycopg pool", 0.6),
]  # fmt: skip


def run(*, duration: float, warmup: float, connections: int, rounds: int) -> str:
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    servers.pin_to(servers.LOAD_CORE)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as scratch:
        work = Path(scratch)
        (work / "metrics").mkdir()
        with Stack(state_dir=work / "stack") as stack:
            migrate_and_seed(stack, SEED_ORDERS)
            servers.pin_stack(stack)
            env = {
                **stack.env,
                "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
                "LOG_LEVEL": "error",
                "DATABASE_POOL_MAX_SIZE": str(POOL_SIZE),
            }
            service = servers.start(servers.ASYNC_SERVICE, env, work)
            try:
                load = {"connections": connections, "duration": duration, "warmup": warmup}
                results = _rounds(service, stack, rounds, load)
                failover = asyncio.run(_failover(service.url, stack))
            finally:
                service.child.stop(timeout=10)
    return _report(results, failover, load, rounds)


def _rounds(
    service: servers.RunningServer, stack: Stack, rounds: int, load: dict[str, float]
) -> dict[str, list[LoadResult]]:
    """Each round: the bare route, reads and writes through the service, then the ceilings."""
    results: dict[str, list[LoadResult]] = {}
    post = {"method": "POST", "headers": {"Content-Type": "application/json"}, "body": ORDER_BODY}
    duration, warmup = load["duration"], load["warmup"]
    for _ in range(rounds):
        measured = {
            "bare route: async service": run_load_sync(f"{service.url}/health/live", **load),  # type: ignore[arg-type]
            "reads: async service": run_load_sync(f"{service.url}/api/orders/{READ_ID}", **load),  # type: ignore[arg-type]
            "reads: bare psycopg pool": _bare("read", stack.services["replica"]["url"],
                                              duration, warmup),
            "writes: async service": run_load_sync(f"{service.url}/api/orders", **load, **post),  # type: ignore[arg-type]
            "writes: bare psycopg pool": _bare("write", stack.env["DATABASE_URL"],
                                               duration, warmup),
        }  # fmt: skip
        for name, result in measured.items():
            results.setdefault(name, []).append(result)
    return results


def _bare(kind: str, url: str, duration: float, warmup: float) -> LoadResult:
    """The ceiling, measured in its own process on the servers' core."""
    argv = [sys.executable, "-m", "loadtests.bench.bare_pool", kind, "--url", url,
            "--id", str(READ_ID), "--concurrency", str(POOL_SIZE), "--duration", str(duration),
            "--warmup", str(warmup)]  # fmt: skip
    if (os.cpu_count() or 1) > servers.SERVER_CORE:
        argv = ["taskset", "-c", str(servers.SERVER_CORE), *argv]
    out = subprocess.run(argv, cwd=servers.ROOT, check=True, capture_output=True, text=True)
    data = json.loads(out.stdout)
    return LoadResult(
        requests=data["requests"],
        duration=data["duration"],
        statuses={int(code): count for code, count in data["statuses"].items()},
        errors=data["errors"],
        latencies_ms=Latencies(**data["latencies_ms"]),
    )


@dataclass
class Failover:
    """What the clients saw while the primary died and the replica took over."""

    killed_at: float = 0.0
    promote_at: float = 0.0
    promoted_at: float = 0.0
    first_write_after: float | None = None  # start of the first accepted write after promote
    writes: dict[int, int] = field(default_factory=dict)  # by status (0: no response)
    reads: dict[int, int] = field(default_factory=dict)

    @property
    def read_errors(self) -> int:
        return sum(count for status, count in self.reads.items() if status != 200)

    @property
    def gap(self) -> float | None:
        """Seconds from the promotion request to the first write accepted after it."""
        if self.first_write_after is None:
            return None
        return self.first_write_after - self.promote_at

    @property
    def outage(self) -> float | None:
        """Seconds from the kill to the first write accepted again."""
        if self.first_write_after is None:
            return None
        return self.first_write_after - self.killed_at


async def _failover(url: str, stack: Stack) -> Failover:
    seen = Failover()
    stop, resumed = asyncio.Event(), asyncio.Event()
    json_header = {"Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def reader() -> None:
            while not stop.is_set():
                status = await _status(client.get(f"/api/orders/{READ_ID}"))
                seen.reads[status] = seen.reads.get(status, 0) + 1

        async def writer() -> None:
            while not stop.is_set():
                started = time.monotonic()
                post = client.post("/api/orders", content=ORDER_BODY, headers=json_header)
                status = await _status(post)
                seen.writes[status] = seen.writes.get(status, 0) + 1
                if status == 201 and seen.promote_at and started >= seen.promote_at:
                    seen.first_write_after = seen.first_write_after or started
                    resumed.set()
                await asyncio.sleep(0.01)

        tasks = [asyncio.create_task(reader()) for _ in range(READERS)]
        tasks.append(asyncio.create_task(writer()))
        await asyncio.sleep(1.0)
        seen.killed_at = time.monotonic()
        os.killpg(stack.children["primary"].pid, signal.SIGKILL)
        await asyncio.sleep(KILL_TO_PROMOTE)
        seen.promote_at = time.monotonic()
        await asyncio.to_thread(stack.promote, "replica")
        seen.promoted_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resumed.wait(), timeout=30)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*tasks)
    return seen


async def _status(request: object) -> int:
    try:
        response = await request  # type: ignore[misc]
    except httpx.HTTPError:
        return 0
    return int(response.status_code)


def _report(
    results: dict[str, list[LoadResult]], failover: Failover, load: dict[str, float], rounds: int
) -> str:
    duration, warmup, connections = load["duration"], load["warmup"], int(load["connections"])
    medians = {name: median_round(runs) for name, runs in results.items()}
    setups = {
        "bare route: async service": "GET /health/live: the request path alone",
        "reads: async service": f"GET /api/orders/{READ_ID}, replica, pool {POOL_SIZE}",
        "reads: bare psycopg pool": f"same SELECT, one process, {POOL_SIZE} tasks and connections",
        "writes: async service": f"POST /api/orders + token, primary, pool {POOL_SIZE}",
        "writes: bare psycopg pool": "same INSERT + token SELECT, one process",
    }  # fmt: skip
    rows = [Row(name, setups[name], result) for name, result in medians.items()]
    path_cost = 1 / medians["bare route: async service"].rps
    composite = 1 / (1 / medians["reads: bare psycopg pool"].rps + path_cost)
    reads = medians["reads: async service"].rps
    writes_ratio = medians["writes: async service"].rps / medians["writes: bare psycopg pool"].rps
    gap = failover.gap
    gap_text = "none within 30 s" if gap is None else f"{gap:.2f} s"
    gap_verdict = "met" if gap is not None and gap < GAP_TARGET else "MISSED"
    reads_verdict = "met" if failover.read_errors == 0 else "MISSED"
    outage = "n/a" if failover.outage is None else f"{failover.outage:.2f} s"
    extra = [
        f"writes: service / bare pool {writes_ratio:.2f}x (no target)",
        f"reads: service / (bare pool + bare route) {reads / composite:.2f} of "
        f"{composite:.0f} req/s: what is left once the request path's own cost is counted",
        "",
        f"failover (kill primary, promote replica {KILL_TO_PROMOTE:g} s later, "
        f"{READERS} readers + 1 writer):",
        f"  write gap after promotion {gap_text} (target < {GAP_TARGET:g} s: {gap_verdict})",
        f"  write outage from the kill {outage}; promotion itself took "
        f"{failover.promoted_at - failover.promote_at:.2f} s",
        f"  reads {sum(failover.reads.values())}, errors {failover.read_errors} "
        f"(target 0: {reads_verdict}); writes by status {dict(sorted(failover.writes.items()))}",
    ]
    settings = {
        "duration_s": duration, "warmup_s": warmup, "connections": connections,
        "rounds": rounds, "pool_size": POOL_SIZE,
        "rps_by_round": {n: [round(r.rps) for r in rs] for n, rs in results.items()},
        "failover": {"gap_s": gap, "outage_s": failover.outage,
                     "read_errors": failover.read_errors, "reads": failover.reads,
                     "writes": failover.writes, "kill_to_promote_s": KILL_TO_PROMOTE},
    }  # fmt: skip
    path = write("data", rows, TARGETS, settings)
    title = (
        f"bench data: orders through the async service (1 core) against a bare psycopg pool "
        f"(1 core), {connections} connections, {rounds} rounds of {duration:g} s, median round"
    )
    return f"{render(title, rows, TARGETS)}\n" + "\n".join(extra) + f"\n\nwritten to {path}"
