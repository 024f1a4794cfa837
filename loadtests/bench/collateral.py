"""`bench collateral`: what a stuck upstream does to the endpoints that never call it.

While 200 connections load `GET /api/tips` and the upstream hangs, and again while it
answers only after 2 s, a few closed-loop clients (4 connections each, 1 s timeout) measure
`GET /health/live` and `GET /api/orders/<id>` on the same server at the same time. The same
two are measured with the upstream healthy (the same tips load) and with no tips load at
all. A sync server whose threads all wait on the upstream has none left for anything else;
an event loop should. While the upstream hangs, each window opens once the upstream holds
one of the server's calls: the hang has taken hold, whatever the machine's pace.

The servers are `bench outbound`'s: the async service, its per-request variant
(`CACHE_SINGLE_FLIGHT=0`: 200 upstream calls, the sync twins' work, not one shared call),
the guide's sync twin and the tuned sync twin. Each server runs pinned to one core, in
turn; the load generator and the dependencies share the other.

The service's settings, except what the comparison needs (every server gets the same):

- `CACHE_TTL=0`: every tips request asks the upstream, so every one of them waits.
- `CACHE_STALE_BUDGET=off`: the async service waits for its refresh as the sync twins do;
  at its default it would answer stale tips after 150 ms (`bench outbound` measures that),
  and its tips requests would no longer be stuck.
- `UPSTREAM_TIMEOUT=3`: above the slow upstream's 2 s, so those answers arrive (with the
  default 2 s they would race the timeout); a hung call holds its request 3 s.
- `BREAKER_FAIL_MAX`, `BREAKER_WINDOW`, `BREAKER_MIN_CALLS` out of reach: the breakers stay
  closed. Open, they end the hang, each at another moment (the tuned twin's 64 timeouts at
  once trip it after one timeout, the guide's one-at-a-time worker after five), so the
  window would mix two states; what is measured is what a hang does while it lasts (before
  a breaker trips, or when too few calls hang to trip it). A slow upstream never trips one.
- `UPSTREAM_MAX_CONNECTIONS=256`: the per-request variant's 200 calls each get a connection
  (at the default 100, half would fail after the 0.5 s pool wait), as the tuned twin's pool.
- `LOG_LEVEL=error`: a warning per timed-out call would cost the measured core.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import uvloop

from devstack.stack import Stack, StackError
from devstack.upstream import AsyncUpstreamControl, UpstreamControl
from loadtests.bench import servers
from loadtests.bench.generator import LoadResult, run_load
from loadtests.bench.plan import Plan
from loadtests.bench.progress import SILENT, Progress
from loadtests.bench.report import Outcome, finish
from loadtests.bench.rounds import Measured, Rounds, Turn
from loadtests.bench.stage import Stage, stage
from loadtests.bench.targets import LatencyTarget, verdicts

TIPS_CONNECTIONS = 200
SIDE_CONNECTIONS = 4  # per side endpoint: light, so what is measured is latency
SIDE_TIMEOUT = 1.0  # a Kubernetes probe's default timeoutSeconds: later is a failed probe
UPSTREAM_TIMEOUT = 3.0
SLOW_MS = 2000
SEED_ORDERS = 100
ORDER_ID = SEED_ORDERS // 2
OUT_OF_REACH = str(10**6)
HOLD_WITHIN = 10.0  # seconds for a server's first tips call to reach the hung upstream
LIVE, ORDER, TIPS = "/health/live", "/api/orders/<id>", "/api/tips"
ASYNC, PER_REQUEST = servers.ASYNC_SERVICE, servers.ASYNC_PER_REQUEST
CONTENDERS = (ASYNC, PER_REQUEST, servers.SYNC_DJANGO, servers.SYNC_TUNED)
QUICK_CONTENDERS = (ASYNC, servers.SYNC_DJANGO)
# The floor under every p99 (the ceiling of every req/s): the side load on a bare ASGI app.
CEILING = f"ceiling: {servers.BARE_ASGI.name}, {SIDE_CONNECTIONS} connections"


@dataclass(frozen=True)
class Condition:
    name: str
    mode: dict[str, Any]  # the upstream's
    tips_load: bool = True
    held: bool = False  # the window opens once the upstream holds one of the server's calls


IDLE = Condition("no tips load", {"mode": "normal"}, tips_load=False)
HEALTHY = Condition("healthy", {"mode": "normal"})
HANGING = Condition("hanging", {"mode": "hang"}, held=True)
SLOW = Condition("slow 2 s", {"mode": "slow", "delay_ms": SLOW_MS})
CONDITIONS = (IDLE, HEALTHY, HANGING, SLOW)
QUICK_CONDITIONS = (IDLE, HANGING)
QUICK_MIN_WINDOW = 1.0  # s


def key(condition: Condition, spec: servers.ServerSpec, endpoint: str) -> str:
    return f"{condition.name}: {spec.name} {endpoint}"


SHORT = {ASYNC.name: "async service", PER_REQUEST.name: "async per request"}
LIMITS = [
    LatencyTarget(f"{SHORT[spec.name]}, hanging: {LIVE}", key(HANGING, spec, LIVE), limit_ms=50)
    for spec in (ASYNC, PER_REQUEST)
] + [
    LatencyTarget(f"{SHORT[spec.name]}, hanging: orders vs healthy", key(HANGING, spec, ORDER),
                  baseline=key(HEALTHY, spec, ORDER), factor=2.0)
    for spec in (ASYNC, PER_REQUEST)
]  # fmt: skip


def run(plan: Plan, progress: Progress = SILENT, stack: Stack | None = None) -> Outcome:
    """`plan.connections` is unused: the tips load is 200 connections, the side loads 4 each.
    Quick: no tips load and hanging only, on the async service and the guide's sync twin."""
    servers.pin_to(servers.LOAD_CORE)
    contenders = QUICK_CONTENDERS if plan.quick else CONTENDERS
    conditions = QUICK_CONDITIONS if plan.quick else CONDITIONS
    with stage("collateral", stack, orders=SEED_ORDERS) as where:
        servers.pin_stack(where.stack)
        env = _service_env(where)
        control_url = where.stack.env["TIPS_UPSTREAM_CONTROL_URL"]
        with servers.serving([*contenders, servers.BARE_ASGI], env, where.work) as running, \
                UpstreamControl(control_url) as control:  # fmt: skip
            rounds = _rounds(running, control, conditions, plan, progress)
    return _report(rounds, plan)


def _service_env(where: Stage) -> dict[str, str]:
    return where.env(
        CACHE_TTL="0",
        CACHE_STALE_BUDGET="off",
        UPSTREAM_TIMEOUT=str(UPSTREAM_TIMEOUT),
        BREAKER_FAIL_MAX=OUT_OF_REACH,
        BREAKER_WINDOW=OUT_OF_REACH,
        BREAKER_MIN_CALLS=OUT_OF_REACH,
        UPSTREAM_MAX_CONNECTIONS="256",
    )


def _rounds(running: list[servers.RunningServer], control: UpstreamControl,
            conditions: tuple[Condition, ...], plan: Plan,
            progress: Progress) -> Rounds:  # fmt: skip
    rounds = Rounds("collateral", plan.rounds, progress)
    *contenders, ceiling = running
    for _ in rounds:
        with rounds.turn(CEILING, ceiling) as turn:
            _measure(turn, ceiling, IDLE, plan, names={LIVE: CEILING})
        for condition in conditions:
            for server in contenders:
                with rounds.turn(f"{condition.name}: {server.spec.name}", server) as turn:
                    _turn(turn, server, control, condition, plan)
    return rounds


def _turn(turn: Turn, server: servers.RunningServer, control: UpstreamControl,
          condition: Condition, plan: Plan) -> None:  # fmt: skip
    """One server's turn, then the upstream healthy again until the server answers: a sync
    server still works through the tips requests its clients gave up on (each one a stuck
    call while the upstream fails), and none of that may fall into the next server's turn."""
    control.set_mode(**condition.mode)
    try:
        names = {end: key(condition, server.spec, end) for end in (LIVE, ORDER, TIPS)}
        _measure(turn, server, condition, plan, names, control_url=control.url)
    finally:
        control.set_mode("normal")
        _settle(server)


def _measure(turn: Turn, server: servers.RunningServer, condition: Condition, plan: Plan,
             names: dict[str, str], *, control_url: str | None = None) -> None:  # fmt: skip
    """The side loads and (unless idle) the tips load, on one loop, over the same window;
    each endpoint named in `names` is recorded under its name. A `held` condition's window
    opens once the upstream holds one of the server's calls (see `_held`)."""
    window = functools.partial(run_load, duration=_seconds(plan), warmup=plan.warmup)
    loads = {
        LIVE: window(f"{server.url}/health/live", connections=SIDE_CONNECTIONS,
                     timeout=SIDE_TIMEOUT),
        ORDER: window(f"{server.url}/api/orders/{ORDER_ID}", connections=SIDE_CONNECTIONS,
                      timeout=SIDE_TIMEOUT),
    }  # fmt: skip
    if condition.tips_load:
        # Generous: a tips request that gives up and reconnects would lighten the load.
        loads[TIPS] = window(f"{server.url}/api/tips", connections=TIPS_CONNECTIONS,
                             timeout=UPSTREAM_TIMEOUT * 3)  # fmt: skip
    hold = (server.url, control_url) if condition.held and control_url else None
    measured = _run(_gather(*loads.values(), hold=hold))
    for endpoint, result in zip(loads, measured, strict=True):
        if endpoint in names:
            turn.add(names[endpoint], result)


def _seconds(plan: Plan) -> float:
    """A window's length: at least `QUICK_MIN_WINDOW` in a quick run, where the side loads
    share the opening moments with 200 tips connections being opened (on a busy machine, a
    0.3 s window could end before the async service's first answer came back)."""
    return max(plan.duration, QUICK_MIN_WINDOW) if plan.quick else plan.duration


async def _gather(*loads: Coroutine[Any, Any, LoadResult],
                  hold: tuple[str, str] | None = None) -> list[LoadResult]:  # fmt: skip
    """The loads, together; with `hold` (the server's URL, the upstream's control URL),
    once the upstream holds one of the server's calls."""
    async with contextlib.AsyncExitStack() as stack:
        if hold is not None:
            await _held(stack, *hold)
        return list(await asyncio.gather(*loads))


async def _held(stack: contextlib.AsyncExitStack, url: str, control_url: str) -> None:
    """Send the server one tips request and return once the upstream holds it (it is
    cancelled when `stack` closes).

    Without it, a one-worker sync server may answer a side request or two before its
    worker takes its first tips request, when the tips load's connections arrive after the
    side loads' (a loaded machine, a short warmup): the window would show a hang that had
    not yet taken hold.
    """
    client = await stack.enter_async_context(httpx.AsyncClient(trust_env=False))
    control = await stack.enter_async_context(AsyncUpstreamControl(control_url))
    holding = (await control.stats())["in_flight"]
    call = asyncio.create_task(client.get(f"{url}{TIPS}", timeout=UPSTREAM_TIMEOUT * 3))
    stack.callback(call.cancel)
    deadline = time.monotonic() + HOLD_WITHIN
    while (await control.stats())["in_flight"] <= holding:
        if call.done() or time.monotonic() > deadline:
            raise StackError(f"the upstream held no call from {url} within {HOLD_WITHIN:g} s")
        await asyncio.sleep(0.01)


def _run(main: Coroutine[Any, Any, list[LoadResult]]) -> list[LoadResult]:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _settle(server: servers.RunningServer, within: float = 30.0) -> None:
    """Wait until `server` answers its bare route again."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/health/live", timeout=SIDE_TIMEOUT).status_code == 200:
                return
        time.sleep(0.1)
    raise StackError(f"{server.spec.name} did not answer again within {within:g} s")


def _report(rounds: Rounds, plan: Plan) -> Outcome:
    medians = rounds.medians()
    rows = [
        m.row(name, _describe(name, m.result, medians), "" if name == CEILING else CEILING)
        for name, m in medians.items()
        if not name.endswith(TIPS)
    ]
    settings = {
        "tips_connections": TIPS_CONNECTIONS,
        "side_connections": SIDE_CONNECTIONS, "side_timeout_s": SIDE_TIMEOUT,
        "upstream_timeout_s": UPSTREAM_TIMEOUT, "slow_ms": SLOW_MS, "cache_ttl_s": 0,
        "stale_budget": "off", "breakers": "closed", "order_id": ORDER_ID,
        "tips_load": {n: m.result.to_dict() for n, m in medians.items() if n.endswith(TIPS)},
        "rps_by_round": rounds.rps_by_round(),
    }  # fmt: skip
    title = (
        f"bench collateral: {LIVE} and GET /api/orders/{ORDER_ID} ({SIDE_CONNECTIONS} "
        f"connections each, {SIDE_TIMEOUT:g} s timeout) while {TIPS_CONNECTIONS} connections "
        f"load {TIPS}\n(CACHE_TTL=0, CACHE_STALE_BUDGET=off, UPSTREAM_TIMEOUT="
        f"{UPSTREAM_TIMEOUT:g} s, breakers kept closed), {plan.rounds} rounds of "
        f"{_seconds(plan):g} s, median round, each server on 1 core"
    )
    found = verdicts(LIMITS, medians)
    return finish(
        "collateral", title, rows, found, plan=plan, settings=settings, notes=_against_idle(medians)
    )


def _describe(name: str, result: LoadResult, medians: dict[str, Measured]) -> str:
    if name == CEILING:
        return f"{servers.BARE_ASGI.description}; the side load alone, no tips load"
    text = f"timeouts {result.errors['timeout']}"
    tips = medians.get(name.removesuffix(LIVE) + TIPS) if name.endswith(LIVE) else None
    if tips is not None:
        load = tips.result
        text += (f"; the tips load: {load.rps:.0f} req/s, p50 {load.latencies_ms.p50:.0f} ms, "
                 f"{load.error_count} errors")  # fmt: skip
    return text


def _against_idle(medians: dict[str, Measured]) -> list[str]:
    """The stricter comparison: p99 while hanging against the same server with no tips load
    (the healthy baseline carries the tips load, which keeps the server's core busy)."""
    lines = []
    for spec in (ASYNC, PER_REQUEST):
        for endpoint in (LIVE, ORDER):
            hanging = medians.get(key(HANGING, spec, endpoint))
            idle = medians.get(key(IDLE, spec, endpoint))
            if hanging is None or idle is None:
                continue
            p99, idle_p99 = hanging.result.latencies_ms.p99, idle.result.latencies_ms.p99
            lines.append(f"hanging: {spec.name} {endpoint} p99 {p99:.1f} ms = "
                         f"{p99 / max(idle_p99, 1e-9):.1f}x its p99 with no tips load "
                         f"({idle_p99:.1f} ms; no target)")  # fmt: skip
    return lines
