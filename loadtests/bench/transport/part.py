"""`bench transport`: the service's tips client on httpx's own transport against `AiohttpTransport`.

`ResilientClient` sends httpx's requests through aiohttp's pool (`AiohttpTransport`) for its
CPU per request with many requests in flight; this part is the evidence, and its target says
what the transport must show to keep its place. Each contender is a client process
(`client.py`) pinned to the server core, running the client the service builds (its
breaker, retry budget, bulkhead and timeouts: `contenders.py`) with `plan.connections`
requests in flight for the plan's window after a warmup. The upstream (`canned.py`, on the
load generator's core) answers the tips upstream's body ready-made, so the client is what is
measured; the upstream's own CPU over each window is reported, and held to half its core, to
show that it did not set the pace. Per
contender: req/s, the client's CPU per request (user + system over the window), p50/p99,
errors, the client's peak RSS; the ratios aiohttp / httpx from the median rounds of one run.
The ceiling is the same exchange on raw asyncio streams, in the same kind of process.

A full run also measures httpx's transport with `sniffio` hidden (httpcore tries to import it
on its request path): what dropping that dependency would change. Quick: not that variant.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.stack import Stack
from loadtests.bench import servers
from loadtests.bench.plan import Plan
from loadtests.bench.progress import SILENT, Progress
from loadtests.bench.report import Outcome, finish
from loadtests.bench.rounds import Measured, Rounds
from loadtests.bench.targets import Verdict
from loadtests.bench.transport.process import run_client


@dataclass(frozen=True)
class Contender:
    """A row: the client process's contender (`client.py`) and what it hides."""

    name: str
    client: str  # httpx, aiohttp or raw
    description: str
    hidden: tuple[str, ...] = ()


HTTPX = Contender(
    "httpx transport",
    "httpx",
    "httpx.AsyncHTTPTransport (httpcore's pool), 100 connections, all kept alive",
)
AIOHTTP = Contender(
    "aiohttp transport",
    "aiohttp",
    "AiohttpTransport (the service's), 100 connections, all kept alive",
)
NO_SNIFFIO = Contender(
    "httpx transport, no sniffio",
    "httpx",
    "httpx's transport as above, sniffio hidden as if not installed",
    ("sniffio",),
)
CEILING = Contender("ceiling: raw asyncio client", "raw",
                    "the ceiling: the same GET on asyncio streams, the body's JSON decoded; "
                    "no HTTP library, no breaker")  # fmt: skip
CONTENDERS = (HTTPX, AIOHTTP, NO_SNIFFIO, CEILING)
QUICK_CONTENDERS = (HTTPX, AIOHTTP, CEILING)
UPSTREAM = servers.ServerSpec(
    "canned upstream",
    "raw asyncio on uvloop: the tips upstream's answer, ready-made",
    (sys.executable, "-m", "loadtests.bench.transport.canned", "--port", "{port}"),
    core=servers.LOAD_CORE,
)
US = 1e6


@dataclass(frozen=True)
class EarnsItsPlace:
    """The aiohttp transport must beat httpx's by `min_rps` in req/s, or need at most
    `max_cpu` of its CPU per request: otherwise httpx's own transport will do."""

    min_rps: float = 1.2
    max_cpu: float = 0.8
    label: str = "aiohttp / httpx transport: req/s, CPU per request"

    def verdict(self, medians: Mapping[str, Measured]) -> Verdict | None:
        if HTTPX.name not in medians or AIOHTTP.name not in medians:
            return None
        rps, cpu = ratios(medians[AIOHTTP.name], medians[HTTPX.name])
        met = rps >= self.min_rps or cpu <= self.max_cpu
        return Verdict(self.label, rps, self.min_rps, f"{rps:.2f}x, {cpu:.2f}x",
                       f">= {self.min_rps:g}x or <= {self.max_cpu:g}x", met)  # fmt: skip


@dataclass(frozen=True)
class UpstreamHeadroom:
    """The upstream used at most `max_core` of its core under every contender: the client,
    not the upstream, set the pace."""

    max_core: float = 0.5
    label: str = "upstream's core under the busiest contender"

    def verdict(self, medians: Mapping[str, Measured]) -> Verdict | None:
        shares = [medians[c.name].extra["upstream_core"] for c in CONTENDERS
                  if c is not CEILING and c.name in medians]  # fmt: skip
        if not shares:
            return None
        busiest = max(shares)
        return Verdict(self.label, busiest, self.max_core, f"{busiest:.2f} core",
                       f"<= {self.max_core:g} core", busiest <= self.max_core)  # fmt: skip


TARGETS = (EarnsItsPlace(), UpstreamHeadroom())


def run(plan: Plan, progress: Progress = SILENT, stack: Stack | None = None) -> Outcome:
    """`stack` is unused: this part needs no dependency but its own upstream."""
    servers.pin_to(servers.LOAD_CORE)
    contenders = QUICK_CONTENDERS if plan.quick else CONTENDERS
    with tempfile.TemporaryDirectory(prefix="bench-transport-") as scratch, \
            servers.serving([UPSTREAM], {}, Path(scratch)) as (upstream,):  # fmt: skip
        rounds = _rounds(contenders, upstream, plan, progress, Path(scratch))
    return report(rounds.medians(), plan, rounds)


def _rounds(contenders: Sequence[Contender], upstream: servers.RunningServer, plan: Plan,
            progress: Progress, logs: Path) -> Rounds:  # fmt: skip
    rounds = Rounds("transport", plan.rounds, progress)
    for _ in rounds:
        for contender in contenders:
            with rounds.turn(contender.name) as turn:
                ran = run_client(contender.client, upstream.url, upstream_pid=upstream.child.pid,
                                 concurrency=plan.connections, warmup=plan.warmup,
                                 duration=plan.duration, hidden=contender.hidden,
                                 log=logs / f"{contender.client}-client.log")  # fmt: skip
                result = ran.result
                window = max(result.duration, 1e-9)
                turn.add(contender.name, result, peak_rss=ran.figures["peak_rss_bytes"],
                         cpu_us_per_request=US * ran.cpu / max(result.requests, 1),
                         client_core=ran.cpu / window,
                         upstream_core=ran.upstream_cpu / window)  # fmt: skip
    return rounds


def ratios(numerator: Measured, denominator: Measured) -> tuple[float, float]:
    """(req/s, CPU per request) of `numerator` over `denominator`."""
    rps = numerator.result.rps / max(denominator.result.rps, 1e-9)
    cpu = numerator.extra["cpu_us_per_request"] / max(denominator.extra["cpu_us_per_request"],
                                                       1e-9)  # fmt: skip
    return rps, cpu


def report(medians: Mapping[str, Measured], plan: Plan, rounds: Rounds | None = None) -> Outcome:
    """The table (each row against the ceiling), the CPU table, the ratios and verdicts."""
    described = {c.name: c.description for c in CONTENDERS}
    ordered = [c.name for c in CONTENDERS if c.name in medians]
    rows = [medians[name].row(name, described[name], "" if name == CEILING.name else CEILING.name)
            for name in ordered]  # fmt: skip
    found = [v for target in TARGETS if (v := target.verdict(medians)) is not None]
    title = (
        f"bench transport: the tips client (breaker, retries, bulkhead) on each transport, "
        f"{plan.connections} requests in flight, {plan.rounds} rounds of {plan.duration:g} s "
        "(median round shown),\nclient process on 1 core, the canned upstream on the other"
    )
    settings = {"concurrency": plan.connections, "upstream": UPSTREAM.description,
                "cpu": {name: dict(medians[name].extra) for name in ordered},
                "ratios": _ratios(medians)}  # fmt: skip
    spread = []
    if rounds is not None:
        settings["rps_by_round"] = rounds.rps_by_round()
        settings["cpu_us_by_round"] = cpu_by_round(rounds)
        spread = ["", *(f"  {name:<34}rounds: {', '.join(map(str, rps))} req/s, "
                        f"{', '.join(map(str, settings['cpu_us_by_round'][name]))} µs CPU/req"
                        for name, rps in settings["rps_by_round"].items())]  # fmt: skip
    notes = ["", *cpu_table(medians, ordered), "", *ratio_lines(medians), *spread]
    return finish("transport", title, rows, found, plan=plan, settings=settings, notes=notes)


def cpu_by_round(rounds: Rounds) -> dict[str, list[int]]:
    """Each row's client CPU per request (µs), round by round."""
    return {name: [round(m.extra["cpu_us_per_request"]) for m in runs]
            for name, runs in rounds.results.items()}  # fmt: skip


def cpu_table(medians: Mapping[str, Measured], names: Sequence[str]) -> list[str]:
    """The client's CPU per request, and how much of its core each process used."""
    width = max(len(name) for name in names) + 2
    lines = [f"{'':<{width}}{'CPU µs/req':>11}{'client core':>13}{'upstream core':>15}"]
    for name in names:
        extra = medians[name].extra
        lines.append(f"{name:<{width}}{extra['cpu_us_per_request']:>11.0f}"
                     f"{extra['client_core']:>13.2f}{extra['upstream_core']:>15.2f}")  # fmt: skip
    return lines


def ratio_lines(medians: Mapping[str, Measured]) -> list[str]:
    """Each comparison measured, as one line: req/s and CPU per request."""
    return [f"{label}: req/s {rps:.2f}x, CPU per request {cpu:.2f}x"
            for label, (rps, cpu) in _pairs(medians)]  # fmt: skip


def _ratios(medians: Mapping[str, Measured]) -> dict[str, dict[str, float]]:
    return {label: {"rps": round(rps, 4), "cpu_per_request": round(cpu, 4)}
            for label, (rps, cpu) in _pairs(medians)}  # fmt: skip


def _pairs(medians: Mapping[str, Measured]) -> list[tuple[str, tuple[float, float]]]:
    pairs = ((AIOHTTP, HTTPX, "aiohttp / httpx transport"),
             (NO_SNIFFIO, HTTPX, "httpx transport, sniffio hidden / importable"))  # fmt: skip
    return [(label, ratios(medians[a.name], medians[b.name]))
            for a, b, label in pairs if a.name in medians and b.name in medians]  # fmt: skip
