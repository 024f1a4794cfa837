"""Waiting for a started process to serve: one poll loop, and the probes it polls."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psycopg
import redis

from devstack.stack.child import Child, tail


class StackError(RuntimeError):
    """A service could not start or did not become ready; the message says which and why."""


def wait_until(
    child: Child, ready: Callable[[], bool], *, what: str, timeout: float = 30.0
) -> None:
    """Poll `ready()` until true; fail at once, with the end of its log, if `child` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise StackError(
                f"{child.name} exited with {child.returncode()}: {tail(child.log_path)}"
            )
        if ready():
            return
        time.sleep(0.05)
    raise StackError(f"{child.name} not ready within {timeout:.0f} s: {what}")


def http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def redis_pings(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    return probe


def postgres_accepts(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with psycopg.connect(url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    return probe
