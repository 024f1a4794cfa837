"""API keys for writes: made and managed by `manage.py apikeys`, stored as digests, checked by
the real service: 401 without a valid key, 403 for a revoked one, reads open by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.stack import Stack
from tests.helpers import assert_error
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


def write(web: WebServer, key: str | None, path: str = "/api/orders") -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=web.url, timeout=10) as client:
        return client.post(path, json=ORDER if path == "/api/orders" else {}, headers=headers)


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
