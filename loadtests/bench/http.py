"""`bench http`: a bare route on this project's request path against stock Django, one core each.

The route is `GET /health/live` (touches no dependency): what is measured is the cost of the
request path itself (server, handler, middleware, view, response). Each server is pinned to
the same core and the load generator to the other; the servers take turns, for several
rounds, and each one's median round is reported, so a noisy moment cannot decide a ratio.
A bare ASGI app on the same core takes its turn too: the ceiling every row reads against.
"""

from __future__ import annotations

from devstack.stack import Stack
from loadtests.bench import servers
from loadtests.bench.generator import run_load_sync
from loadtests.bench.plan import Plan
from loadtests.bench.progress import SILENT, Progress
from loadtests.bench.report import Outcome, finish
from loadtests.bench.rounds import Rounds
from loadtests.bench.slowloris import SlowClients
from loadtests.bench.stage import stage
from loadtests.bench.targets import Target, verdicts

CEILING = servers.BARE_ASGI
CONTENDERS = (servers.ASYNC_SERVICE, servers.STOCK_ASGI, servers.SYNC_DJANGO, CEILING)
QUICK_CONTENDERS = (servers.ASYNC_SERVICE, servers.SYNC_DJANGO, CEILING)
SLOW_CLIENTS = 1000
BESIEGED = f"async service, {SLOW_CLIENTS} slow clients"
TARGETS = [
    Target("async service / stock Django ASGI", "async service", "stock Django ASGI", 5.0),
    Target("async service / sync Django (gunicorn)", "async service", "sync Django", 2.5),
    Target(f"with {SLOW_CLIENTS} slow clients / without", BESIEGED, "async service", 0.9),
]


def run(plan: Plan, progress: Progress = SILENT, stack: Stack | None = None) -> Outcome:
    """Quick: no stock Django and no slow clients."""
    servers.pin_to(servers.LOAD_CORE)
    specs = QUICK_CONTENDERS if plan.quick else CONTENDERS
    # The async service opens its pools at start-up: give it real dependencies.
    with stage("http", stack) as where, \
            servers.serving(specs, where.env("warning"), where.work) as running:  # fmt: skip
        rounds = _rounds(running, plan, progress)
    return _report(rounds, plan)


def _rounds(running: list[servers.RunningServer], plan: Plan, progress: Progress) -> Rounds:
    rounds = Rounds("http", plan.rounds, progress)
    service = next(s for s in running if s.spec is servers.ASYNC_SERVICE)
    for _ in rounds:
        for server in running:
            with rounds.turn(server.spec.name, server) as turn:
                turn.add(server.spec.name,
                         run_load_sync(f"{server.url}/health/live", **plan.load()))  # fmt: skip
        if plan.quick:
            continue
        # The same load while slow clients hold connections, their headers never finished.
        with SlowClients(service.url, SLOW_CLIENTS), rounds.turn(BESIEGED, service) as turn:
            turn.add(BESIEGED, run_load_sync(f"{service.url}/health/live", **plan.load()))
    return rounds


def _report(rounds: Rounds, plan: Plan) -> Outcome:
    medians = rounds.medians()
    setups = {spec.name: spec.description for spec in CONTENDERS}
    setups[BESIEGED] = "the async service while slowloris clients hold connections"
    rows = [m.row(name, setups[name], "" if name == CEILING.name else CEILING.name)
            for name, m in medians.items()]  # fmt: skip
    by_round = rounds.rps_by_round()
    settings = {
        "route": "/health/live",
        "rps_by_round": by_round,
    }
    title = (
        f"bench http: GET /health/live, {plan.connections} connections, {plan.rounds} rounds of "
        f"{plan.duration:g} s per server (median round shown), server on 1 core"
    )
    spread = [f"  {name:<34}rounds: {', '.join(map(str, rps))} req/s"
              for name, rps in by_round.items()]  # fmt: skip
    found = verdicts(TARGETS, medians)
    return finish("http", title, rows, found, plan=plan, settings=settings, notes=["", *spread])
