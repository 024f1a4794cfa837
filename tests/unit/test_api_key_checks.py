"""ApiKeys.authenticate: the header's forms, the digest check, and what is cached for how
long (over a database seam that says which server answered)."""

from __future__ import annotations

from typing import Any

import pytest

from app.keys import ApiKeys, KeyRevoked, Unauthorized, _Row, digest_of, new_key
from resilience_async import ReadResult


class Rows:
    """The `read` seam of a Database: answers from a table, says which server served."""

    def __init__(self, server: str = "replica-1") -> None:
        self.rows: dict[str, _Row] = {}
        self.server = server
        self.reads = 0

    async def read(self, query: Any, *, token: str | None = None) -> ReadResult[Any]:
        self.reads += 1
        return ReadResult(self._found, self.server)

    _found: _Row | None = None


def keys_over(rows: Rows, ttl: float = 5.0) -> ApiKeys:
    return ApiKeys(database=rows, cache_ttl=ttl)  # type: ignore[arg-type]


def row(digest: str, **changes: Any) -> _Row:
    fields = {"key_id": 7, "name": "billing", "current": True, "digest": digest,
              "previous_digest": "", "previous_valid": False, "revoked": False,
              "rate_limit": None, "rate_window": None, **changes}  # fmt: skip
    return _Row(**fields)


@pytest.mark.parametrize("header", [None, ""])
async def test_no_header_is_401_without_invalid_token(header: str | None) -> None:
    with pytest.raises(Unauthorized) as raised:
        await keys_over(Rows()).authenticate(header)
    assert "invalid_token" not in raised.value.headers["WWW-Authenticate"]


@pytest.mark.parametrize("header", ["Bearer", "Bearer x", "Basic abc", "rdk_12345678_" + "a" * 43])
async def test_a_header_without_a_key_is_401_invalid_token(header: str) -> None:
    rows = Rows()
    with pytest.raises(Unauthorized) as raised:
        await keys_over(rows).authenticate(header)
    assert 'error="invalid_token"' in raised.value.headers["WWW-Authenticate"]
    assert rows.reads == 0  # refused before any query


async def test_a_known_key_is_cached_and_a_wrong_secret_refused() -> None:
    key, _, digest = new_key()
    rows = Rows()
    rows._found = row(digest, rate_limit=5, rate_window=60.0)
    keys = keys_over(rows)
    caller = await keys.authenticate(f"bearer  {key}")
    assert (caller.name, caller.rate_limit, caller.rate_window) == ("billing", 5, 60.0)
    await keys.authenticate(f"Bearer {key}")
    assert rows.reads == 1
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")  # same prefix, another secret
    with pytest.raises(Unauthorized):
        await keys.authenticate(f"Bearer {forged}")


async def test_a_key_a_replica_does_not_know_is_asked_again() -> None:
    """The key may be newer than the replica's replay: nothing is kept."""
    key, _, digest = new_key()
    rows = Rows(server="replica-1")
    keys = keys_over(rows)
    with pytest.raises(Unauthorized):
        await keys.authenticate(f"Bearer {key}")
    rows._found = row(digest)
    assert (await keys.authenticate(f"Bearer {key}")).name == "billing"
    assert rows.reads == 2


async def test_a_key_the_primary_does_not_know_is_kept_unknown_a_second_at_most() -> None:
    key, _, _ = new_key()
    rows = Rows(server="primary")
    keys = keys_over(rows, ttl=0.0)
    for _ in range(3):
        with pytest.raises(Unauthorized):
            await keys.authenticate(f"Bearer {key}")
    assert rows.reads == 3  # ttl 0: nothing kept


@pytest.mark.parametrize(
    ("changes", "refused"),
    [({"revoked": True}, KeyRevoked), ({"current": False, "previous_valid": False}, KeyRevoked),
     ({"current": False, "previous_valid": True}, None)],
    ids=["revoked", "rotated-past-grace", "rotated-within-grace"],
)  # fmt: skip
async def test_revoked_and_rotated_keys(changes: dict[str, Any], refused: type | None) -> None:
    key, _, _ = new_key()
    rows = Rows()
    # A rotated key is found by its old prefix and checked against the previous digest.
    if "current" in changes:
        rows._found = row("0" * 64, previous_digest=digest_of(key), **changes)
    else:
        rows._found = row(digest_of(key), **changes)
    if refused is None:
        assert (await keys_over(rows).authenticate(f"Bearer {key}")).name == "billing"
    else:
        with pytest.raises(refused):
            await keys_over(rows).authenticate(f"Bearer {key}")
