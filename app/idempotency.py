"""Idempotency keys (draft-ietf-httpapi-idempotency-key-header) for the API's creates.

A create with a key inserts its row and the key's row in one statement, so both commit or
neither does; a key that exists already makes that statement fail with a unique violation
(a concurrent request with the same key waits for the first to commit, then fails so). The
failed request then answers what the key names: the same resource when the request is the
same, a 422 when it is not. A key older than its lifetime names nothing and starts afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from psycopg.errors import UniqueViolation

from app.errors import IdempotencyKeyReused
from resilience_async import Connection

T = TypeVar("T")

_FIND = """
SELECT fingerprint, resource_id, created_at < now() - make_interval(secs => %s)
FROM idempotency_keys WHERE scope = %s AND key = %s
"""
_FORGET = """
DELETE FROM idempotency_keys
WHERE scope = %s AND key = %s AND created_at < now() - make_interval(secs => %s)
"""


@dataclass(frozen=True, slots=True)
class Created(Generic[T]):
    """A create's outcome: the resource, and whether an earlier request created it."""

    value: T
    replayed: bool = False


def fingerprint(request: dict[str, Any]) -> str:
    """A digest of the request's meaning: the same request sent twice has the same one."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def create_once(
    conn: Connection,
    *,
    scope: str,
    key: str,
    digest: str,
    ttl: float,
    insert: Callable[[], Awaitable[T]],
    load: Callable[[str], Awaitable[T | None]],
) -> Created[T]:
    """`insert()` (which also inserts the key's row), or what the key named before.

    Raises:
        IdempotencyKeyReused: the key came with another request, or its resource is gone.
    """
    for _ in range(2):
        try:
            return Created(await insert())
        except UniqueViolation:
            pass  # the key is known: the first request committed (concurrent ones waited)
        cursor = await conn.execute(_FIND, (ttl, scope, key))
        row = await cursor.fetchone()
        if row is None:  # expired and forgotten by a concurrent request: claim it again
            continue
        known_digest, resource_id, expired = row
        if expired:  # a key past its lifetime names nothing any more: start afresh
            await conn.execute(_FORGET, (scope, key, ttl))
            continue
        if known_digest != digest:
            raise IdempotencyKeyReused(key)
        existing = await load(resource_id)
        if existing is None:  # deleted since; the key's promise cannot be kept
            raise IdempotencyKeyReused(key, f"names {resource_id}, which no longer exists")
        return Created(existing, replayed=True)
    raise IdempotencyKeyReused(key)
