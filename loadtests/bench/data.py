"""`bench data`: reads and writes through the service against a bare psycopg pool, and failover.

Throughput: `GET /api/orders/<id>` (served by the replica) and `POST /api/orders` (primary,
with its consistency token) through the async service on one core, against the same SQL on
a bare `AsyncConnectionPool` in one process on that same core (`loadtests.bench.bare_pool`):
the ceiling, with no HTTP, Django or routing. Both use the same pool size. The target
adds the request path's own cost (`/health/live` on the service, the bare route): the
service must reach 0.8 of 1 / (1/bare route + 1/bare pool), so what it adds besides the
path and the query (routing, checkout, timeouts, JSON) costs at most a quarter of them.

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
import time
from dataclasses import dataclass, field

import httpx

from devstack.stack import Stack
from loadtests.bench import servers
from loadtests.bench.generator import LoadResult, run_load_sync
from loadtests.bench.generator.result import Latencies
from loadtests.bench.plan import Plan
from loadtests.bench.progress import SILENT, Progress
from loadtests.bench.report import Outcome, finish
from loadtests.bench.rounds import Measured, Rounds, Turn
from loadtests.bench.seed import write_headers
from loadtests.bench.stage import stage
from loadtests.bench.targets import Verdict

SEED_ORDERS = 1000
READ_ID = SEED_ORDERS // 2
POOL_SIZE = 32  # the service's DATABASE_POOL_MAX_SIZE and the bare pool's size
ORDER_BODY = b'{"item":"bench","quantity":1}'
KILL_TO_PROMOTE = 1.5  # seconds without a primary before the replica is promoted
GAP_TARGET = 2.0
READERS = 8
BARE_ROUTE, CEILING = "bare route: async service", f"ceiling: {servers.BARE_ASGI.name}"
READS, BARE_READS = "reads: async service", "reads: bare psycopg pool"
WRITES, BARE_WRITES = "writes: async service", "writes: bare psycopg pool"
UNLIMITED_WRITES = "writes: async, no rate limit"
LIMITER_COST_TARGET = 0.10  # of the writes' throughput, the limiter's share at most
BLIND_READS = "reads: async, by lag alone"
TAIL_COST_TARGET = 0.05  # of the reads' throughput: latency routing and hedging together
CEILINGS = {BARE_ROUTE: CEILING, READS: BARE_READS, WRITES: BARE_WRITES}
COMPOSITE_TARGET = 0.8  # of 1 / (1/bare route + 1/bare pool): what the two costs add up to


def run(plan: Plan, progress: Progress = SILENT, stack: Stack | None = None) -> Outcome:
    """Quick: every measurement once, and the failover with shorter calm before and after.
    A stack it is given leaves with its replica promoted and its primary dead."""
    servers.pin_to(servers.LOAD_CORE)
    with stage("data", stack, orders=SEED_ORDERS) as where:
        servers.pin_stack(where.stack)
        env = where.env(DATABASE_POOL_MAX_SIZE=str(POOL_SIZE))
        specs = [servers.ASYNC_SERVICE, servers.BARE_ASGI, servers.ASYNC_UNLIMITED,
                 servers.ASYNC_LATENCY_BLIND]  # fmt: skip
        with servers.serving(specs, env, where.work) as running:
            rounds = _rounds(running, where.stack, plan, progress=progress)
            failover = _watch_failover(running[0], where.stack, plan, progress)
    return _report(rounds, failover, plan)


def _rounds(running: list[servers.RunningServer], stack: Stack, plan: Plan, *,
            progress: Progress) -> Rounds:  # fmt: skip
    """Each round: the bare route and its ceiling, reads and writes through the service and
    on the bare pool, reads without latency routing and hedging, and writes without the
    rate limiter (`running`: the service, the bare ASGI app and those two variants)."""
    service, ceiling, unlimited, blind = running
    rounds = Rounds("data", plan.rounds, progress)
    post = {"method": "POST", "headers": write_headers(stack), "body": ORDER_BODY}
    gets = {BARE_ROUTE: (service, "/health/live"), CEILING: (ceiling, "/health/live"),
            READS: (service, f"/api/orders/{READ_ID}"),
            BLIND_READS: (blind, f"/api/orders/{READ_ID}")}  # fmt: skip
    for _ in rounds:
        for name, (server, path) in gets.items():
            with rounds.turn(name, server) as turn:
                turn.add(name, run_load_sync(f"{server.url}{path}", **plan.load()))
        with rounds.turn(BARE_READS) as turn:
            _bare(turn, BARE_READS, "read", stack.services["replica"]["url"], plan)
        with rounds.turn(WRITES, service) as turn:
            turn.add(WRITES, run_load_sync(f"{service.url}/api/orders", **plan.load(), **post))
        with rounds.turn(UNLIMITED_WRITES, unlimited) as turn:
            load = run_load_sync(f"{unlimited.url}/api/orders", **plan.load(), **post)
            turn.add(UNLIMITED_WRITES, load)
        with rounds.turn(BARE_WRITES) as turn:
            _bare(turn, BARE_WRITES, "write", stack.env["DATABASE_URL"], plan)
    return rounds


def _bare(turn: Turn, name: str, kind: str, url: str, plan: Plan) -> None:
    """The ceiling, measured in its own process on the servers' core (its own peak RSS)."""
    argv = [sys.executable, "-m", "loadtests.bench.bare_pool", kind, "--url", url,
            "--id", str(READ_ID), "--concurrency", str(POOL_SIZE),
            "--duration", str(plan.duration), "--warmup", str(plan.warmup)]  # fmt: skip
    out = subprocess.run(
        servers.pinned(argv, servers.SERVER_CORE),
        cwd=servers.ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    data = json.loads(out.stdout)
    result = LoadResult(
        requests=data["requests"],
        duration=data["duration"],
        statuses={int(code): count for code, count in data["statuses"].items()},
        errors=data["errors"],
        latencies_ms=Latencies(**data["latencies_ms"]),
    )
    turn.add(name, result, peak_rss=data["peak_rss_bytes"])


def _watch_failover(service: servers.RunningServer, stack: Stack, plan: Plan,
                    progress: Progress) -> Failover:  # fmt: skip
    progress.show("data", service.spec.name, "failover")
    failover = asyncio.run(_failover(service.url, stack, calm=min(1.0, plan.duration)))
    done = f"{sum(failover.reads.values())} reads, {failover.read_errors} failed"
    progress.show("data", service.spec.name, "failover", done)
    return failover


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


async def _failover(url: str, stack: Stack, calm: float) -> Failover:
    """`calm`: seconds of load before the kill and after the first write accepted again."""
    seen = Failover()
    stop, resumed = asyncio.Event(), asyncio.Event()
    json_header = write_headers(stack)
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
        await asyncio.sleep(calm)
        seen.killed_at = time.monotonic()
        os.killpg(stack.children["primary"].pid, signal.SIGKILL)
        await asyncio.sleep(KILL_TO_PROMOTE)
        seen.promote_at = time.monotonic()
        await asyncio.to_thread(stack.promote, "replica")
        seen.promoted_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(resumed.wait(), timeout=30)
        await asyncio.sleep(calm)
        stop.set()
        await asyncio.gather(*tasks)
    return seen


async def _status(request: object) -> int:
    try:
        response = await request  # type: ignore[misc]
    except httpx.HTTPError:
        return 0
    return int(response.status_code)


def _report(rounds: Rounds, failover: Failover, plan: Plan) -> Outcome:
    medians = rounds.medians()
    setups = {
        BARE_ROUTE: "GET /health/live: the request path alone",
        CEILING: f"{servers.BARE_ASGI.description}",
        READS: f"GET /api/orders/{READ_ID}, replica, pool {POOL_SIZE}",
        BARE_READS: f"same SELECT, one process, {POOL_SIZE} tasks and connections",
        WRITES: f"POST /api/orders + token, primary, pool {POOL_SIZE}",
        BLIND_READS: "the same, DATABASE_LATENCY_ROUTING=0 and DATABASE_HEDGE=0",
        UNLIMITED_WRITES: "the same, RATE_LIMIT_KEY=off (API key still checked)",
        BARE_WRITES: "same INSERT + token SELECT, one process",
    }
    rows = [m.row(name, setups[name], CEILINGS.get(name, "")) for name, m in medians.items()]
    settings = {
        "pool_size": POOL_SIZE,
        "rps_by_round": rounds.rps_by_round(),
        "failover": {"gap_s": failover.gap, "outage_s": failover.outage,
                     "read_errors": failover.read_errors, "reads": failover.reads,
                     "writes": failover.writes, "kill_to_promote_s": KILL_TO_PROMOTE},
    }  # fmt: skip
    title = (
        f"bench data: orders through the async service (1 core) against a bare psycopg pool "
        f"(1 core), {plan.connections} connections, {plan.rounds} rounds of {plan.duration:g} "
        "s, median round"
    )
    found = [*_composite_verdicts(medians), *_cost_verdicts(medians),
             *_failover_verdicts(failover)]  # fmt: skip
    return finish(
        "data", title, rows, found, plan=plan, settings=settings, notes=_notes(medians, failover)
    )


def composite(medians: dict[str, Measured], bare_pool: str) -> float | None:
    """The ceiling of a route that runs the request path and then a query: 1 / (1/bare
    route + 1/bare pool), both measured on the same core in the same run (None if not)."""
    route, pool = medians.get(BARE_ROUTE), medians.get(bare_pool)
    if route is None or pool is None or not route.result.rps or not pool.result.rps:
        return None
    return 1 / (1 / route.result.rps + 1 / pool.result.rps)


def _composite_verdicts(medians: dict[str, Measured]) -> list[Verdict]:
    found = []
    for row, bare_pool, what in ((READS, BARE_READS, "reads"), (WRITES, BARE_WRITES, "writes")):
        ceiling = composite(medians, bare_pool)
        if ceiling is None or row not in medians:
            continue
        share = medians[row].result.goodput / ceiling
        found.append(Verdict(f"{what}: service / (bare route + bare pool)", share,
                             COMPOSITE_TARGET, f"{share:.2f} of {ceiling:.0f}",
                             f">= {COMPOSITE_TARGET:g}", share >= COMPOSITE_TARGET))  # fmt: skip
    return found


def _cost_verdicts(medians: dict[str, Measured]) -> list[Verdict]:
    """What two features cost their route, each 1 - with / without it in the same run:
    latency routing and hedged reads on the order read (nothing slow), and the per-key rate
    limiter (a Redis round trip per write) on the order write."""
    found = []
    for name, row, without, target in (
        ("reads: latency routing and hedging's cost", READS, BLIND_READS, TAIL_COST_TARGET),
        ("writes: rate limiter's cost", WRITES, UNLIMITED_WRITES, LIMITER_COST_TARGET),
    ):
        measured, bare = medians.get(row), medians.get(without)
        if measured is None or bare is None or not bare.result.goodput:
            continue
        cost = 1 - measured.result.goodput / bare.result.goodput
        found.append(Verdict(name, cost, target,
                             f"{cost:.1%} ({measured.result.goodput:.0f} vs "
                             f"{bare.result.goodput:.0f} req/s)",
                             f"<= {target:.0%}", cost <= target))  # fmt: skip
    return found


def _notes(medians: dict[str, Measured], failover: Failover) -> list[str]:
    reads = medians[READS].result.rps / medians[BARE_READS].result.rps
    writes = medians[WRITES].result.rps / medians[BARE_WRITES].result.rps
    outage = "n/a" if failover.outage is None else f"{failover.outage:.2f} s"
    return [
        f"service / bare pool alone (no target): reads {reads:.2f}x, writes {writes:.2f}x",
        "",
        f"failover (kill primary, promote replica {KILL_TO_PROMOTE:g} s later, "
        f"{READERS} readers + 1 writer):",
        f"  write outage from the kill {outage}; promotion itself took "
        f"{failover.promoted_at - failover.promote_at:.2f} s",
        f"  reads {sum(failover.reads.values())}; writes by status "
        f"{dict(sorted(failover.writes.items()))}",
    ]


def _failover_verdicts(failover: Failover) -> list[Verdict]:
    gap = failover.gap
    return [
        Verdict("failover: write gap after the promotion", gap, GAP_TARGET,
                "none in 30 s" if gap is None else f"{gap:.2f} s", f"< {GAP_TARGET:g} s",
                gap is not None and gap < GAP_TARGET),
        Verdict("failover: reads failed", failover.read_errors, 0, str(failover.read_errors),
                "0", failover.read_errors == 0),
    ]  # fmt: skip
