"""API keys: who may write, checked on the event loop in one indexed read per key per TTL.

A key is `rdk_<prefix>_<secret>`: the prefix (8 hex characters) finds its row, the SHA-256
of the whole key is compared with the stored digest in constant time, and the key itself is
never stored. Keys are made and managed by `manage.py apikeys` (create, list, rotate,
revoke); each has a name and, optionally, its own rate limit.

What a row says is kept `cache_ttl` seconds per prefix, so a revocation takes effect within
that time and a flood of requests with one key costs one query per period. A prefix the
primary does not know is kept as unknown for at most a second (a bounded table); one a
replica does not know is not kept at all: the key may be newer than the replica's replay.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from app.errors import ApiError
from resilience_async import Connection, Database

KEY_PREFIX = "rdk_"
_KEY = re.compile(r"rdk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+) *")
_MAX_CACHED = 10_000
_SELECT = """
SELECT id, name, prefix = %(prefix)s, digest, previous_digest,
       coalesce(previous_valid_until > now(), false), revoked_at IS NOT NULL,
       rate_limit, rate_window
FROM api_keys WHERE prefix = %(prefix)s OR previous_prefix = %(prefix)s
LIMIT 1
"""


def new_key() -> tuple[str, str, str]:
    """A fresh key, its prefix and its digest (only the last two are stored)."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, digest_of(key)


def digest_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Caller:
    """The holder of a valid key: its name, and its own limit when it has one."""

    key_id: int
    name: str
    rate_limit: int | None = None
    rate_window: float | None = None


class Unauthorized(ApiError):
    """No key, or not one of ours: 401 with the challenge RFC 6750 asks for."""

    status = 401
    code = "unauthorized"

    def __init__(self, message: str, *, invalid: bool) -> None:
        challenge = 'Bearer realm="api"' + (', error="invalid_token"' if invalid else "")
        self.headers = {"WWW-Authenticate": challenge}
        super().__init__(message, field="Authorization")


class KeyRevoked(ApiError):
    """A key that was ours, revoked (or rotated and past its grace period): 403."""

    status = 403
    code = "key_revoked"

    def __init__(self, name: str) -> None:
        super().__init__(f"the API key {name!r} was revoked", field="Authorization")


@dataclass(frozen=True, slots=True)
class _Row:
    key_id: int
    name: str
    current: bool  # the prefix is the key's current one, not the one before a rotation
    digest: str
    previous_digest: str
    previous_valid: bool
    revoked: bool
    rate_limit: int | None
    rate_window: float | None


class ApiKeys:
    """Checks `Authorization: Bearer <key>` against the keys in the database.

    Args:
        database: the service's `Database` (a replica may answer: keys change rarely).
        cache_ttl: seconds what a prefix's row says is kept (and a revocation may lag).
    """

    def __init__(self, *, database: Database, cache_ttl: float) -> None:
        self._database = database
        self._cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, _Row | None]] = {}

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller the header's key belongs to.

        Raises:
            Unauthorized: no key, a malformed one, or one that is not ours.
            KeyRevoked: a revoked key, or a rotated one past its grace period.
            ResilienceError: the key is not cached and no database server can be asked.
        """
        if not authorization:
            raise Unauthorized("send an API key: Authorization: Bearer <key>", invalid=False)
        bearer = _BEARER.fullmatch(authorization)
        match = None if bearer is None else _KEY.fullmatch(bearer[1])
        if match is None:
            raise Unauthorized("the Authorization header holds no API key", invalid=True)
        key = match[0]
        row = await self._row(match[1])
        if row is None:
            raise Unauthorized("unknown API key", invalid=True)
        expected = row.digest if row.current else row.previous_digest
        if not hmac.compare_digest(digest_of(key), expected):
            raise Unauthorized("unknown API key", invalid=True)
        if row.revoked or not (row.current or row.previous_valid):
            raise KeyRevoked(row.name)
        return Caller(row.key_id, row.name, row.rate_limit, row.rate_window)

    async def _row(self, prefix: str) -> _Row | None:
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is not None and cached[0] > now:
            return cached[1]
        read = await self._database.read(lambda conn: _select(conn, prefix))
        if read.value is None and read.server != "primary":
            return None
        ttl = self._cache_ttl if read.value is not None else min(self._cache_ttl, 1.0)
        if len(self._cache) >= _MAX_CACHED:
            self._cache = {p: entry for p, entry in self._cache.items() if entry[0] > now}
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
        self._cache[prefix] = (now + ttl, read.value)
        return read.value


async def _select(conn: Connection, prefix: str) -> _Row | None:
    cursor = await conn.execute(_SELECT, {"prefix": prefix})
    row: Any = await cursor.fetchone()
    return None if row is None else _Row(*row)
