"""The worker process's connections to the primary: one small pool, opened on first use.

Workers are threads (Dramatiq's), so this is psycopg's sync pool; the primary URL may list
several hosts with `target_session_attrs=read-write`, so a promoted replica is found.
"""

from __future__ import annotations

import threading

from psycopg_pool import ConnectionPool

_CONNECTION_OPTIONS = {
    "autocommit": True,
    "connect_timeout": 2,
    "application_name": "resilience-worker",
}
_lock = threading.Lock()
_pools: dict[str, ConnectionPool] = {}


def pool(url: str, *, size: int = 4) -> ConnectionPool:
    """The process's pool for `url` (created once; safe from any worker thread)."""
    with _lock:
        existing = _pools.get(url)
        if existing is None:
            existing = _pools[url] = ConnectionPool(
                url,
                min_size=1,
                max_size=size,
                timeout=10,
                reconnect_timeout=0,  # a lost slot is refilled on the next request, at once
                kwargs={
                    "autocommit": True,
                    "connect_timeout": 2,
                    "application_name": "resilience-worker",
                },
                check=ConnectionPool.check_connection,
                open=True,
            )
        return existing
