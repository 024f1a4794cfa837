"""The real `locust` CLI with loadtests/locustfile.py: no coordinated omission, distributed
runs, and a smoke run against the real service.

Most runs stand the service in with `FakeApi`, a tiny aiohttp server on 127.0.0.1 that answers
at once, except for one window during which it holds every request, and can refuse the first
attempt of some order writes with a 503.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from devstack.stack import Stack
from devstack.stack.ports import free_port
from tests.helpers import forget_reports
from tests.servers import ROOT, run_web

pytestmark = pytest.mark.integration

LOCUST = str(Path(sys.executable).with_name("locust"))
LOCUSTFILE = str(ROOT / "loadtests" / "locustfile.py")
FULL_MIX = "tips=1,order_create=2,order_read=1,report_create=1,report_poll=1"
FULL_MIX_ENDPOINTS = {part.split("=")[0] for part in FULL_MIX.split(",")}


class FakeApi:
    """The service's five endpoints, answered from memory, with an optional stall.

    Args:
        stall_after: seconds after the first request when the stall starts (None: never).
        stall_for: how long every request that arrives in the stall is held.
        refuse_every: answer 503 to the first attempt of every n-th new order key (0: none).
    """

    def __init__(
        self, *, stall_after: float | None = None, stall_for: float = 2.0, refuse_every: int = 0
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stall: tuple[float, float] | None = None  # unix times, set at the first request
        self._stall_after, self._stall_for = stall_after, stall_for
        self._refuse_every = refuse_every
        self._keys: dict[str, int] = {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    def __enter__(self) -> FakeApi:
        self._thread.start()
        assert self._ready.wait(10), "the fake API did not start"
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        app = web.Application(middlewares=[self._stalls])
        app.add_routes([
            web.get("/api/tips", self._tips),
            web.post("/api/orders", self._order_create),
            web.get("/api/orders/{id}", self._read),
            web.post("/api/reports", self._report_create),
            web.get("/api/reports/{id}", self._read),
        ])  # fmt: skip
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    @web.middleware
    async def _stalls(self, request: web.Request, handler: Any) -> web.StreamResponse:
        now = time.time()
        if self.stall is None and self._stall_after is not None:
            start = now + self._stall_after
            self.stall = (start, start + self._stall_for)
        if self.stall is not None and self.stall[0] <= now < self.stall[1]:
            await asyncio.sleep(self.stall[1] - now)
        return await handler(request)

    async def _tips(self, _: web.Request) -> web.Response:
        return web.json_response({"tips": ["drink water"], "source": "live"})

    async def _order_create(self, request: web.Request) -> web.Response:
        order = await request.json()
        key = request.headers["Idempotency-Key"]
        if key not in self._keys:
            self._keys[key] = len(self._keys) + 1
            if self._refuse_every and self._keys[key] % self._refuse_every == 0:
                return web.json_response({"error": {"code": "no_primary"}}, status=503)
        token = {"consistency_token": "0/16B3748"}
        return web.json_response({"id": self._keys[key], **order, **token}, status=201)

    async def _report_create(self, _: web.Request) -> web.Response:
        body = {"id": str(uuid.uuid4()), "status": "queued", "consistency_token": "0/16B3748"}
        return web.json_response(body, status=202)

    async def _read(self, request: web.Request) -> web.Response:
        assert request.headers["X-Consistency-Token"] == "0/16B3748"
        return web.json_response({"id": request.match_info["id"]})


@contextmanager
def locust(log: Path, *args: str, api_key: str = "") -> Iterator[subprocess.Popen[bytes]]:
    """A locust process on the locustfile (writing with `api_key`, as `API_KEY` from the
    stack's env file); killed on the way out if it still runs."""
    env = {**os.environ, "API_KEY": api_key}
    with log.open("ab") as out:
        process = subprocess.Popen([LOCUST, "-f", LOCUSTFILE, *args], cwd=ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def finished(process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Wait for a locust process to end by itself, and check that it ended well."""
    returncode = process.wait(timeout)
    text = log.read_text()
    assert returncode == 0, f"locust exited {returncode}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]


def headless(host: str, records: Path, *, users: int, seconds: int, **options: str) -> list[str]:
    args = ["--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s"]
    args += ["--host", host, "--records-dir", str(records), "--only-summary", "-L", "WARNING"]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    return args


def read_records(records: Path) -> dict[str, list[dict[str, Any]]]:
    """Every records file's lines, by file name."""
    return {
        path.name: [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(records.glob("*.jsonl"))
    }


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


def locust_csv(prefix: Path) -> dict[str, str]:
    """The Aggregated row of locust's --csv stats (rewritten every second, not at the end)."""
    with Path(f"{prefix}_stats.csv").open() as file:
        return next(row for row in csv.DictReader(file) if row["Name"] == "Aggregated")


def locust_json(prefix: Path) -> tuple[int, list[float]]:
    """Request count and response times (ms, rounded as locust keeps them) of --json-file,
    which locust writes at the very end."""
    (entry,) = json.loads(Path(f"{prefix}.json").read_text())
    times = [float(ms) for ms, count in entry["response_times"].items() for _ in range(count)]
    return entry["num_requests"], times


def test_a_stalled_server_shows_as_latency_not_as_a_gap(tmp_path: Path) -> None:
    """Requests keep their schedule through a 2-s stall; their latency runs from then."""
    rate, records, log = 40, tmp_path / "records", tmp_path / "locust.log"
    with FakeApi(stall_after=2.5, stall_for=2.0) as api:
        args = headless(api.url, records, users=10, seconds=7, start_rate=str(rate),
                        stages=f"7:{rate}", mix="tips=1", csv=str(tmp_path / "stats"),
                        json_file=str(tmp_path / "stats"))  # fmt: skip
        with locust(log, *args) as process:
            finished(process, log)
    assert api.stall is not None
    start, end = api.stall
    (lines,) = read_records(records).values()
    intended = sorted(r["intended"] for r in lines if start - 1 <= r["intended"] < end + 1)
    during = [t for t in intended if start <= t < end]
    assert rate * 2 - 3 <= len(during) <= rate * 2 + 3  # the schedule went on: no gap
    assert max(b - a for a, b in itertools.pairwise(intended)) < 3 / rate
    assert any(r["sent"] - r["intended"] > 1 for r in lines)  # late ones went back-to-back
    latencies = [r["latency"] for r in lines]
    assert percentile(latencies, 0.99) >= 1.5
    assert statistics.median(latencies) < 0.25
    count, times = locust_json(tmp_path / "stats")  # locust's own stats agree
    assert count == len(lines)
    assert percentile(times, 0.99) >= 1500
    assert statistics.median(times) < 250
    table = locust_csv(tmp_path / "stats")
    assert float(table["99%"]) >= 1500
    assert float(table["50%"]) < 250


def test_requests_held_past_the_request_timeout_fail_with_no_status(tmp_path: Path) -> None:
    """--request-timeout bounds a request: held by the stall, it ends as status 0."""
    records, log = tmp_path / "records", tmp_path / "locust.log"
    with FakeApi(stall_after=1.0, stall_for=2.0) as api:
        args = headless(api.url, records, users=2, seconds=4, start_rate="10", mix="tips=1",
                        request_timeout="0.3", exit_code_on_error="0")  # fmt: skip
        with locust(log, *args) as process:
            finished(process, log)
    assert api.stall is not None
    (lines,) = read_records(records).values()
    held = [r for r in lines if api.stall[0] <= r["sent"] < api.stall[1] - 0.5]
    assert held
    assert all(r["status"] == 0 and "timed out" in r["error"] for r in held), held
    after = [r["status"] for r in lines if r["sent"] >= api.stall[1]]
    assert after
    assert set(after) == {200}


def test_two_workers_share_one_schedule_and_the_masters_options(tmp_path: Path) -> None:
    """Options given to the master reach both workers; together they keep the total rate."""
    rate, records, port = 30, tmp_path / "records", str(free_port())
    logs = [tmp_path / name for name in ("master.log", "worker-0.log", "worker-1.log")]
    with FakeApi(refuse_every=3) as api, ExitStack() as processes:
        master_args = [
            "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
            "--expect-workers", "2", "--exit-code-on-error", "0",
            *headless(api.url, records, users=6, seconds=6, start_rate=str(rate),
                      stages=f"6:{rate}", mix=FULL_MIX, seed="7"),
        ]  # fmt: skip
        master = processes.enter_context(locust(logs[0], *master_args))
        workers = [
            processes.enter_context(locust(log, "--worker", "--master-port", port))
            for log in logs[1:]
        ]
        for process, log in zip([master, *workers], logs, strict=True):
            finished(process, log)
    by_file = read_records(records)
    assert len(by_file) == 2  # one per worker; the master runs no users
    everything = [record for lines in by_file.values() for record in lines]
    first = min(r["intended"] for r in everything)
    window = (first + 1, first + 4)  # all users spawned, none stopped yet
    for lines in by_file.values():
        assert {r["endpoint"] for r in lines} == FULL_MIX_ENDPOINTS
        assert _rate(lines, window) == pytest.approx(rate / 2, rel=0.25)
        _assert_reads_are_of_own_orders(lines)
        _assert_refused_orders_were_retried_with_their_key(lines)
    assert _rate(everything, window) == pytest.approx(rate, rel=0.15)


def _rate(lines: list[dict[str, Any]], window: tuple[float, float]) -> float:
    inside = [r for r in lines if window[0] <= r["intended"] < window[1]]
    return len(inside) / (window[1] - window[0])


def _assert_reads_are_of_own_orders(lines: list[dict[str, Any]]) -> None:
    created = {r["id"] for r in lines if r["endpoint"] == "order_create" and r["status"] == 201}
    read = {r["id"] for r in lines if r["endpoint"] == "order_read"}
    assert read <= created
    expected = {"tips": 200, "order_read": 200, "report_create": 202, "report_poll": 200}
    assert all(r["status"] == expected[r["endpoint"]] for r in lines if r["endpoint"] in expected)


def _assert_refused_orders_were_retried_with_their_key(lines: list[dict[str, Any]]) -> None:
    creates = [r for r in lines if r["endpoint"] == "order_create"]
    refused = [r for r in creates if r["status"] == 503]
    assert refused, "the fake API refused no order: nothing was retried"
    assert all(r["attempt"] == 1 and r["error"] == "HTTP 503 no_primary" for r in refused)
    retried = {r["key"]: r for r in creates if r["attempt"] == 2}
    assert all(r["status"] == 201 for r in retried.values())
    # A refusal in the last second may not have come due before the test stopped.
    last = max(r["end"] for r in lines)
    assert all(r["key"] in retried for r in refused if r["end"] < last - 1.5)


def test_every_endpoint_of_the_real_service_answers_the_locustfile(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Tips, order writes and reads with their tokens, report submissions and polls: all 2xx."""
    records, log = tmp_path / "records", tmp_path / "locust.log"
    with run_web(healthy_stack, tmp_path) as server:
        args = headless(server.url, records, users=4, seconds=4, start_rate="20", mix=FULL_MIX)
        with locust(log, *args, api_key=server.api_key) as process:
            finished(process, log)
    (lines,) = read_records(records).values()
    forget_reports(healthy_stack, [r["id"] for r in lines if r["endpoint"] == "report_create"])
    assert {r["endpoint"] for r in lines} == FULL_MIX_ENDPOINTS
    assert [r for r in lines if not 200 <= r["status"] < 300] == []
    assert all(r["key"] and r["attempt"] == 1 for r in lines if r["endpoint"] == "order_create")
