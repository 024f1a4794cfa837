"""API keys for writes: made and managed by `manage.py apikeys`, stored as digests, checked by
the real service: 401 without a valid key, 403 for a revoked one, reads open by default."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.stack import Stack
from tests.helpers import assert_error, kill, metric
from tests.servers import ROOT, WebServer, run_web

pytestmark = pytest.mark.integration

ORDER = {"item": "keyed tea", "quantity": 1}


@pytest.fixture(scope="module")
def web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    # No caching of what a key's row says: a revocation shows on the next request.
    with run_web(stack, tmp_path_factory.mktemp("web"), API_KEY_CACHE_TTL="0") as server:
        yield server


def apikeys(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", "apikeys", *args], cwd=ROOT,
                          env={**os.environ, **stack.env}, capture_output=True, text=True,
                          check=False, timeout=60)  # fmt: skip


def new_key(stack: Stack, *args: str) -> tuple[str, str]:
    """A fresh key's name and the key."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    made = apikeys(stack, "create", name, "--quiet", *args)
    assert made.returncode == 0, made.stderr
    return name, made.stdout.strip()


def write(web: WebServer, key: str | None, path: str = "/api/orders",
          item: str = ORDER["item"]) -> httpx.Response:  # fmt: skip
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    body = {**ORDER, "item": item} if path == "/api/orders" else {}
    with httpx.Client(base_url=web.url, timeout=10) as client:
        return client.post(path, json=body, headers=headers)


def orders_of(stack: Stack, item: str) -> int:
    with psycopg.connect(stack.services["primary"]["url"], autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM orders WHERE item = %s", (item,)).fetchone()[0]


@pytest.mark.parametrize("path", ["/api/orders", "/api/reports"])
def test_a_write_without_a_key_is_401_with_the_bearer_challenge(
    healthy_stack: Stack, web: WebServer, path: str
) -> None:
    response = write(web, None, path)
    assert_error(response, 401, "Authorization")
    assert response.json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not-a-key", "Token rdk_0000aaaa_" + "x" * 43,
     "Bearer rdk_0000aaaa_" + "x" * 43],
    ids=["basic", "empty-bearer", "junk", "other-scheme", "unknown-key"],
)  # fmt: skip
def test_a_malformed_or_unknown_key_is_401_invalid_token(
    healthy_stack: Stack, web: WebServer, authorization: str
) -> None:
    with httpx.Client(base_url=web.url, timeout=10) as client:
        response = client.post("/api/orders", json=ORDER, headers={"Authorization": authorization})
    assert_error(response, 401, "Authorization")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_key_writes_is_stored_as_a_digest_and_listed_without_it(
    healthy_stack: Stack, web: WebServer
) -> None:
    name, key = new_key(healthy_stack, "--limit", "100/60")
    assert web.client.post("/api/orders", json=ORDER).status_code == 201  # the stack's own key
    created = write(web, key)
    assert created.status_code == 201, created.text
    lowercase_scheme = httpx.post(f"{web.url}/api/orders", json=ORDER, timeout=10,
                                  headers={"Authorization": f"bearer {key}"})  # fmt: skip
    assert lowercase_scheme.status_code == 201  # RFC 9110: the scheme is case-insensitive
    with psycopg.connect(healthy_stack.services["primary"]["url"], autocommit=True) as conn:
        stored = conn.execute("SELECT row_to_json(k)::text FROM api_keys k WHERE name = %s",
                              (name,)).fetchone()  # fmt: skip
    assert stored is not None
    assert key not in stored[0]
    assert key.split("_")[2] not in stored[0]  # not even the secret part
    listed = apikeys(healthy_stack, "list", "--json")
    entry = next(e for e in json.loads(listed.stdout) if e["name"] == name)
    assert entry["limit"] == "100/60"
    assert entry["revoked_at"] is None
    assert key not in listed.stdout


def test_a_revoked_key_is_403_and_writes_nothing(healthy_stack: Stack, web: WebServer) -> None:
    name, key = new_key(healthy_stack)
    assert write(web, key).status_code == 201
    revoked = apikeys(healthy_stack, "revoke", name)
    assert revoked.returncode == 0, revoked.stderr
    response = write(web, key)
    problem = assert_error(response, 403, "Authorization")
    assert problem["code"] == "key_revoked"
    assert name in problem["detail"]


def test_rotation_keeps_the_old_key_for_its_grace_then_refuses_it(
    healthy_stack: Stack, web: WebServer
) -> None:
    name, old = new_key(healthy_stack)
    rotated = apikeys(healthy_stack, "rotate", name, "--grace", "3600", "--quiet")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new != old
    assert write(web, old).status_code == 201  # within its grace period
    assert write(web, new).status_code == 201
    again = apikeys(healthy_stack, "rotate", name, "--quiet")  # no grace: the last one ends now
    newest = again.stdout.strip()
    assert write(web, newest).status_code == 201
    assert_error(write(web, new), 403, "Authorization")
    assert write(web, old).status_code == 401  # two rotations ago: no longer known at all


def test_the_command_refuses_bad_input_naming_it(healthy_stack: Stack) -> None:
    name, _ = new_key(healthy_stack)
    duplicate = apikeys(healthy_stack, "create", name)
    assert duplicate.returncode != 0
    assert "exists" in duplicate.stderr
    bad_limit = apikeys(healthy_stack, "create", "other", "--limit", "lots")
    assert bad_limit.returncode != 0
    assert "--limit" in bad_limit.stderr
    missing = apikeys(healthy_stack, "revoke", "nobody-by-that-name")
    assert missing.returncode != 0
    assert "no API key named" in missing.stderr


def test_reads_are_open_unless_the_setting_closes_them(
    healthy_stack: Stack, web: WebServer, tmp_path: Path
) -> None:
    assert httpx.get(f"{web.url}/api/orders", timeout=10).status_code == 200
    with run_web(healthy_stack, tmp_path, API_READS_NEED_KEY="1") as closed:
        anonymous = httpx.get(f"{closed.url}/api/orders", timeout=10)
        keyed = closed.client.get("/api/orders")
        document = closed.client.get("/api/openapi.json").json()
    assert_error(anonymous, 401, "Authorization")
    assert keyed.status_code == 200
    assert document["paths"]["/api/orders"]["get"]["security"] == [{"apiKey": []}]


# --- rate limits ------------------------------------------------------------------------------


def test_past_its_limit_a_key_gets_429_with_the_headers_and_writes_nothing(
    healthy_stack: Stack, web: WebServer
) -> None:
    """A key of 3 per minute: three writes, then 429 with Retry-After and the IETF
    RateLimit-Policy / RateLimit fields; the refused writes are not made."""
    name, key = new_key(healthy_stack, "--limit", "3/60")
    answers = [write(web, key, item=name) for _ in range(5)]
    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    refused = answers[3]
    problem = assert_error(refused, 429, None)
    assert problem["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 20  # a token returns every 20 s
    assert refused.headers["RateLimit-Policy"] == '"key";q=3;w=60'
    assert refused.headers["RateLimit"] == f'"key";r=0;t={refused.headers["Retry-After"]}'
    assert orders_of(healthy_stack, name) == 3


def test_one_keys_limit_is_shared_by_every_server_process(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Two uvicorn workers, one Redis: a key of 4 per minute makes 4 writes in all."""
    _, key = new_key(healthy_stack, "--limit", "4/60")
    with run_web(healthy_stack, tmp_path, workers=2) as two:
        statuses = []
        for _ in range(12):  # a new connection each: the kernel spreads them over both
            statuses.append(write(two, key).status_code)
    assert sorted(statuses) == [201] * 4 + [429] * 8


def test_client_addresses_are_limited_when_the_setting_asks(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    with run_web(healthy_stack, tmp_path, RATE_LIMIT_ADDRESS="5/60") as limited:
        statuses = [httpx.get(f"{limited.url}/api/tips", timeout=10).status_code
                    for _ in range(7)]  # fmt: skip
        refused = httpx.get(f"{limited.url}/api/orders", timeout=10)
        live = httpx.get(f"{limited.url}/health/live", timeout=10)
    assert statuses == [200] * 5 + [429] * 2
    assert refused.status_code == 429
    assert refused.headers["RateLimit-Policy"] == '"address";q=5;w=60'
    assert live.status_code == 200  # health is never limited


def test_with_redis_paused_writes_go_on_within_the_limit_of_each_process(
    healthy_stack: Stack, web: WebServer
) -> None:
    """Redis stopped (SIGSTOP): the limiter decides in process, failing open; no request
    turns into an error."""
    _, key = new_key(healthy_stack, "--limit", "1000/60")
    redis = healthy_stack.children["redis"]
    kill(redis, signal.SIGSTOP)
    try:
        answers = [write(web, key) for _ in range(10)]
        reads = [web.client.get("/api/orders") for _ in range(5)]
        exposition = web.get("/metrics").text
    finally:
        kill(redis, signal.SIGCONT)
    assert [a.status_code for a in answers] == [201] * 10, [a.text for a in answers]
    assert [r.status_code for r in reads] == [200] * 5
    assert metric(exposition, "rate_limit_fallback", limiter="api") == 1.0
    local = metric(exposition, "rate_limit_decisions_total", limiter="api", policy="key",
                   decision="allowed", store="local")  # fmt: skip
    assert local is not None
    assert local >= 9  # the first may have waited out the timeout, then been decided locally
