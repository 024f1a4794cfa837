"""The ceiling for `bench data`: the service's queries on a bare psycopg async pool.

    python -m loadtests.bench.bare_pool read|write --url URL --id N --concurrency 32 \
        --duration 5 --warmup 1

One process, one event loop, `concurrency` tasks each running the query in a loop on an
`AsyncConnectionPool` (no HTTP, no Django, no routing): what the data path could do at most
on one core. Prints one JSON object: requests, duration, statuses, errors, latencies_ms and
peak_rss_bytes (this process's peak RSS: the pool's, as the servers' is theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable

import uvloop
from psycopg_pool import AsyncConnectionPool

from loadtests.bench.generator.result import ERROR_KINDS, LoadResult, summarize

READ_SQL = "SELECT id, item, quantity, created_at FROM orders WHERE id = %s"
WRITE_SQL = (
    "INSERT INTO orders (item, quantity) VALUES (%s, %s) RETURNING id, item, quantity, created_at"
)
TOKEN_SQL = "SELECT pg_current_wal_insert_lsn()::text"  # noqa: S105 - SQL


async def measure(
    kind: str, *, url: str, order_id: int, concurrency: int, duration: float, warmup: float
) -> LoadResult:
    pool = AsyncConnectionPool(
        url, min_size=concurrency, max_size=concurrency, kwargs={"autocommit": True}, open=False
    )
    await pool.open(wait=True)
    query = _read(pool, order_id) if kind == "read" else _write(pool)
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration

    async def worker() -> None:
        nonlocal errors
        while (began := time.perf_counter()) < stop_at:
            try:
                await query()
            except Exception:
                errors += began >= measure_from
                continue
            if began >= measure_from:
                latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await pool.close()
    return LoadResult(
        requests=len(latencies),
        duration=duration,
        statuses={200: len(latencies)},
        errors={kind: (errors if kind == "connect" else 0) for kind in ERROR_KINDS},
        latencies_ms=summarize(latencies),
    )


def _read(pool: AsyncConnectionPool, order_id: int) -> Callable[[], Awaitable[object]]:
    async def read() -> object:
        async with pool.connection() as conn:
            cursor = await conn.execute(READ_SQL, (order_id,))
            return await cursor.fetchone()

    return read


def _write(pool: AsyncConnectionPool) -> Callable[[], Awaitable[object]]:
    async def write() -> object:
        async with pool.connection() as conn:
            cursor = await conn.execute(WRITE_SQL, ("bench", 1))
            row = await cursor.fetchone()
            token = await (await conn.execute(TOKEN_SQL)).fetchone()
            return row, token

    return write


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("read", "write"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--id", type=int, default=1, help="the order id reads ask for")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    result = uvloop.run(
        measure(
            args.kind,
            url=args.url,
            order_id=args.id,
            concurrency=args.concurrency,
            duration=args.duration,
            warmup=args.warmup,
        )
    )
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({**result.to_dict(), "peak_rss_bytes": peak_rss}))


if __name__ == "__main__":
    main()
