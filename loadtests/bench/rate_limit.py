"""The cost of `RateLimiter.acquire`: microseconds and Redis round trips per call.

    python -m loadtests.bench.rate_limit [--url redis://127.0.0.1:6379/0] [--calls 20000]

Without `--url`, starts a redis-server of its own on a free port (and stops it after). One
process, one uvloop loop. Prints one table row per measure, each the best of `--rounds`:

    ping              a bare PING on the same client: one round trip, the floor
    evalsha           a bare EVALSHA of a script doing nothing, with the same arguments
    acquire (shared)  one call at a time, decided in Redis
    acquire (local)   one call at a time on this process's buckets (no Redis)
    acquire x64       64 calls in flight: acquires per second

with wall and CPU microseconds per call, and the commands the client sent per acquire
(Redis's commandstats: EVALSHA and EVAL, the commands its script ran left out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from functools import partial

import uvloop
from redis.asyncio import Redis

from devstack.stack.ports import free_port
from devstack.stack.waits import redis_pings
from resilience_async import RateLimiter, RateLimitPolicy

# Never refuses during a run: the cost measured is the decision's, whatever it decides.
POLICY = RateLimitPolicy("bench", limit=10**6, window=1)
IN_FLIGHT = 64


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server (no persistence) on a free port: its URL."""
    binary = shutil.which("redis-server") or "redis-server"
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
            "no", "--loglevel", "warning"]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not redis_pings(url)():
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"redis-server did not start on {url}")
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


async def per_call(call: Callable[[], Awaitable[object]], calls: int) -> tuple[float, float]:
    """Wall and CPU microseconds per call, one call at a time."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await call()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - cpu) / calls * 1e6,
    )


async def throughput(limiter: RateLimiter, calls: int) -> float:
    """Acquires per second with IN_FLIGHT calls at a time."""
    each = calls // IN_FLIGHT

    async def worker(n: int) -> None:
        for _ in range(each):
            await limiter.acquire(f"addr:{n}", POLICY)

    start = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(IN_FLIGHT)))
    return each * IN_FLIGHT / (time.perf_counter() - start)


async def sent(client: Redis) -> int:
    """Script calls the server has had (EVALSHA and EVAL) so far."""
    stats = await client.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval")
    )


async def measure(url: str, calls: int, rounds: int) -> list[tuple[str, str, str, str]]:
    """The table's rows: name, wall us per call (or acquires/s), CPU us, scripts per call."""
    client = Redis.from_url(url)
    best: dict[str, tuple[float, float]] = {}
    scripts = 0.0
    # A generous timeout: the figures are the decision's cost, not the fallback's on a
    # machine busy elsewhere.
    async with RateLimiter(redis=client, namespace="bench", redis_timeout=1.0) as shared:
        local = RateLimiter(redis=None)
        nothing = await client.script_load("return {1, 0}")
        for _ in range(rounds):
            keep_best(best, "ping", await per_call(client.ping, calls))
            script = partial(client.evalsha, nothing, 1, "bench:bare", 10**6, 10**12)
            keep_best(best, "evalsha", await per_call(script, calls))
            before = await sent(client)
            figures = await per_call(lambda: shared.acquire("key:1", POLICY), calls)
            scripts = max(scripts, (await sent(client) - before) / calls)
            keep_best(best, "acquire (shared)", figures)
            keep_best(
                best, "acquire (local)", await per_call(lambda: local.acquire("k", POLICY), calls)
            )
        rate = max([await throughput(shared, calls) for _ in range(rounds)])
        if shared.fallback or shared.stats()["local"]:
            raise RuntimeError("Redis failed during the run: the figures are not all shared")
    await client.aclose()
    rows = [(name, f"{wall:.1f}", f"{cpu:.1f}", "") for name, (wall, cpu) in best.items()]
    rows[2] = (*rows[2][:3], f"{scripts:.2f}")
    return [*rows, (f"acquire x{IN_FLIGHT}", f"{rate:,.0f}/s", "", "")]


def keep_best(
    best: dict[str, tuple[float, float]], name: str, figures: tuple[float, float]
) -> None:
    if name not in best or figures[0] < best[name][0]:
        best[name] = figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a Redis to use (default: start one)")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(redis_server())
        table = uvloop.run(measure(url, args.calls, args.rounds))
    print(f"{'':18} {'wall us/call':>13} {'CPU us/call':>12} {'scripts/call':>13}")
    for name, wall, cpu, trips in table:
        print(f"{name:18} {wall:>13} {cpu:>12} {trips:>13}")


if __name__ == "__main__":
    main()
