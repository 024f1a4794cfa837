"""Run the closed loop: one worker per connection, each reconnecting until the window ends."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Coroutine, Mapping
from time import perf_counter
from typing import Any

from loadtests.bench.generator.connection import Connection
from loadtests.bench.generator.request import build_target
from loadtests.bench.generator.result import LoadResult
from loadtests.bench.generator.state import RunState

CONNECT_BACKOFF = 0.01  # a dead server must not turn the generator into a busy loop
_DRAIN_TIMEOUT = 2.0


async def run_load(
    url: str,
    *,
    connections: int,
    duration: float,
    warmup: float = 0.0,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 - per request, not for the whole call
    max_requests: int | None = None,
) -> LoadResult:
    """Drive `connections` closed-loop workers against `url` for `warmup + duration` seconds.

    Stops early once `max_requests` responses were counted. Raises ValueError on bad
    arguments and OSError when the host name does not resolve.
    """
    _check(connections, duration, warmup, timeout, max_requests)
    target = build_target(url, method=method, headers=headers, body=body)
    address = await _resolve(target.host, target.port, timeout)
    tls = ssl.create_default_context() if target.tls else None
    state = RunState(
        target, warmup=warmup, duration=duration, timeout=timeout, max_requests=max_requests
    )
    loop = asyncio.get_running_loop()
    workers = [loop.create_task(_worker(state, address, tls)) for _ in range(connections)]
    deadline = loop.call_later(warmup + duration, state.finish_on_schedule)
    watchdog = _Watchdog(state, interval=min(max(timeout / 4, 0.005), 0.25))
    try:
        await asyncio.shield(state.finished)
    finally:
        deadline.cancel()
        watchdog.stop()
        state.finish(perf_counter())
        await _shutdown(state, workers)
    return state.result()


def run_load_sync(
    url: str,
    *,
    connections: int,
    duration: float,
    warmup: float = 0.0,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
    max_requests: int | None = None,
) -> LoadResult:
    """`run_load` on a fresh event loop, uvloop when it is installed."""
    return _run(
        run_load(
            url,
            connections=connections,
            duration=duration,
            warmup=warmup,
            method=method,
            headers=headers,
            body=body,
            timeout=timeout,
            max_requests=max_requests,
        )
    )


def _run(main: Coroutine[Any, Any, LoadResult]) -> LoadResult:
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _check(
    connections: int, duration: float, warmup: float, timeout: float, max_requests: int | None
) -> None:
    if connections < 1 or (max_requests is not None and max_requests < 1):
        raise ValueError("connections and max_requests must be at least 1")
    if duration <= 0 or warmup < 0 or timeout <= 0:
        raise ValueError("duration and timeout must be positive and warmup not negative")


async def _resolve(host: str, port: int, connect_timeout: float) -> str:
    """Resolve once, not per reconnect; with several addresses (localhost: ::1 and
    127.0.0.1) keep the first that accepts so a one-family server is not "refused"."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if len(addresses) == 1:
        return addresses[0]
    for address in addresses:
        try:
            async with asyncio.timeout(connect_timeout):
                _, writer = await asyncio.open_connection(address, port)
        except OSError:
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return address
    return addresses[0]


async def _worker(state: RunState, address: str, tls: ssl.SSLContext | None) -> None:
    """Keep one connection alive for the whole run, reconnecting whenever it ends."""
    loop = asyncio.get_running_loop()
    while not state.stopped:
        conn = Connection(state, loop.create_future())
        try:
            async with asyncio.timeout(state.timeout):
                await _connect(conn, address, state.target.port, tls, state.target.host)
        except OSError:  # refused, unreachable, TLS failure, or TimeoutError
            state.record_error("connect", perf_counter())
            await asyncio.sleep(CONNECT_BACKOFF)
            continue
        await conn.closed
        if not conn.served and not state.stopped:
            await asyncio.sleep(CONNECT_BACKOFF)  # closed or failed before any answer


async def _connect(
    conn: Connection, address: str, port: int, tls: ssl.SSLContext | None, host: str
) -> None:
    loop = asyncio.get_running_loop()
    hostname = host if tls is not None else None
    await loop.create_connection(lambda: conn, address, port, ssl=tls, server_hostname=hostname)


async def _shutdown(state: RunState, workers: list[asyncio.Task[None]]) -> None:
    """Abort every socket and wait until each is really closed, so none leaks past the run."""
    for conn in list(state.conns):
        conn.abort()
    for task in workers:
        task.cancel()
    outcomes = await asyncio.gather(*workers, return_exceptions=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(_DRAIN_TIMEOUT):
            await state.drained()
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome


class _Watchdog:
    """One periodic sweep for overdue requests instead of a timer per request."""

    def __init__(self, state: RunState, *, interval: float) -> None:
        self._state = state
        self._interval = interval
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        deadline = perf_counter() - self._state.timeout
        for conn in list(self._state.conns):
            conn.expire(deadline)
        self._handle = self._loop.call_later(self._interval, self._sweep)

    def stop(self) -> None:
        self._handle.cancel()
