"""Advisory sharing of "open" between processes through redis.asyncio, off the call path.

A breaker that opens publishes `SET <key> "<open-until> <origin>" PX <ttl>`, the wall-clock
time (time.time) until which it is open; a background task per breaker polls the key and
opens the local breaker when another process opened it. Wall clock only crosses processes:
each breaker turns the remaining seconds into its own monotonic clock at once.

Redis is advisory: calls never await it, every command is bounded by a short timeout, and
while it is unreachable each process keeps its local state, logs once, and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from resilience_async._extras import extra_needed
from resilience_async._resource import AsyncResource

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger("resilience_async.breaker")


@functools.cache
def sharing_errors() -> tuple[type[Exception], ...]:
    """What a failed round of Redis commands may raise: the client's errors, socket errors,
    our own command timeout, and a value another program wrote in a shape we don't know.

    redis is imported here, when the first `RedisBreakerState` is made: a breaker that shares
    nothing (and the cache that uses one) never needs redis installed.
    """
    from redis.exceptions import RedisError  # noqa: PLC0415 - only when sharing

    return (RedisError, OSError, TimeoutError, ValueError)


class RedisBreakerState(AsyncResource):
    """Where breakers of several processes share their open periods; one per Redis.

    Each breaker given it polls its own key once the breaker is entered (`async with
    breaker:`). Entering the state opens nothing (the client is the caller's); `aclose()`
    stops the polling of every breaker sharing through it, so one close ends them all.

    Args:
        client: a redis.asyncio client (owned, and closed, by the caller).
        key_prefix: prepended to each breaker's name to make its key.
        poll_interval: seconds between two reads of a breaker's key.
        timeout: seconds one Redis command may take before it is given up.
        wall_clock: the clock shared between processes (seconds since the epoch).
    """

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = "resilience:breaker:",
        poll_interval: float = 0.5,
        timeout: float = 0.25,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.client = client
        with extra_needed("resilience_async.RedisBreakerState"):
            self.errors = sharing_errors()
        self.key_prefix = key_prefix
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.wall_clock = wall_clock
        self._links: set[SharedLink] = set()  # the breakers polling now

    async def aclose(self) -> None:
        """Stop every breaker's polling; the Redis client stays open (it is the caller's)."""
        for link in list(self._links):
            await link.aclose()

    def key(self, breaker: str) -> str:
        return f"{self.key_prefix}{breaker}"

    async def publish(self, breaker: str, value: str, ttl: float) -> None:
        async with asyncio.timeout(self.timeout):
            await self.client.set(self.key(breaker), value, px=max(1, round(ttl * 1000)))

    async def read(self, breaker: str) -> str | None:
        async with asyncio.timeout(self.timeout):
            value = await self.client.get(self.key(breaker))
        return value.decode() if isinstance(value, bytes) else value

    async def clear(self, breaker: str) -> None:
        async with asyncio.timeout(self.timeout):
            await self.client.delete(self.key(breaker))


@dataclass(frozen=True, slots=True, eq=False)
class _Write:
    """A write to make: the key set to open until a wall-clock time, or deleted (None)."""

    open_until: float | None


class SharedLink:
    """One breaker's side of the sharing: pending writes and the polling task.

    Args:
        shared: the Redis holding the keys.
        breaker: the breaker's name.
        on_peer_open: called with the seconds left when another process opened the breaker.
        on_peer_clear: called when the key a peer wrote is gone (it closed, or it expired).
    """

    def __init__(
        self,
        shared: RedisBreakerState,
        breaker: str,
        *,
        on_peer_open: Callable[[float], None],
        on_peer_clear: Callable[[], None],
    ) -> None:
        self._shared = shared
        self._breaker = breaker
        self._on_peer_open = on_peer_open
        self._on_peer_clear = on_peer_clear
        self._origin = uuid.uuid4().hex[:12]
        self._pending: _Write | None = None  # the latest write wanted, not yet made
        self._applied: str | None = None  # the last peer value acted on
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failing = False

    def opened(self, duration: float) -> None:
        """The breaker opened here for `duration` seconds: publish it soon."""
        self._want(_Write(self._shared.wall_clock() + duration))

    def closed(self) -> None:
        """The breaker closed here: delete the key soon."""
        self._want(_Write(None))

    def _want(self, write: _Write) -> None:
        self._pending = write
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        """Start polling on the running loop (idempotent)."""
        if self._task is None:
            self._closing = False
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name=f"breaker-share:{self._breaker}")
            self._shared._links.add(self)

    async def aclose(self) -> None:
        """Stop polling; a write still pending is dropped (the key expires on its own)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._shared._links.discard(self)
        # The flag, not only the cancel: redis.asyncio may swallow a cancellation that lands
        # while one of its commands is timing out (redis/redis-py#2028, #2551); the loop then
        # ends at its next turn, at most one command timeout plus one poll interval later.
        self._closing = True
        task.cancel()
        if self._wake is not None:
            self._wake.set()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._flush()
                await self._poll()
            except self._shared.errors as exc:
                self._trouble(exc)
            else:
                self._recovered()
            await self._nap()

    async def _nap(self) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._shared.poll_interval):
                await self._wake.wait()
        self._wake.clear()

    async def _flush(self) -> None:
        pending = self._pending
        if pending is None:
            return
        until = pending.open_until
        if until is None:
            await self._shared.clear(self._breaker)
        elif (ttl := until - self._shared.wall_clock()) > 0:
            await self._shared.publish(self._breaker, f"{until:.6f} {self._origin}", ttl)
        if self._pending is pending:  # else a newer write came meanwhile: keep it
            self._pending = None

    async def _poll(self) -> None:
        value = await self._shared.read(self._breaker)
        if value is None:
            if self._applied is not None:
                self._applied = None
                self._on_peer_clear()
            return
        until, _, origin = value.partition(" ")
        if origin == self._origin or value == self._applied:
            return
        remaining = float(until) - self._shared.wall_clock()
        self._applied = value
        if remaining > 0:
            self._on_peer_open(remaining)

    def _trouble(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            logger.warning(
                "shared breaker state unavailable; keeping local state",
                extra={"breaker": self._breaker, "error": f"{type(exc).__name__}: {exc}"},
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("shared breaker state available again", extra={"breaker": self._breaker})
