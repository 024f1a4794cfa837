"""A small core: `import resilience_async` needs the standard library alone, each primitive
imports only its own integration, and a missing integration's error names its extra.

Each check runs in a fresh interpreter (the test process has imported everything already).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers import fresh_python

INTEGRATIONS = (
    "aiobreaker",
    "aiohttp",
    "django",
    "httpx",
    "prometheus_client",
    "psycopg",
    "psycopg_pool",
    "redis",
    "uvicorn",
)
REPORT = """
import json
print(json.dumps(sorted(sys.modules)))
"""


def run(code: str, *, hidden: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return fresh_python(code, hidden=hidden)


def loaded_after(code: str, *, hidden: tuple[str, ...] = ()) -> set[str]:
    """The integrations (top-level packages) imported once `code` has run."""
    done = run(code + REPORT, hidden=hidden)
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stdout.splitlines()[-1])
    return {name.split(".")[0] for name in modules} & set(INTEGRATIONS)


def modules_after(code: str) -> set[str]:
    done = run(code + REPORT)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_package_imports_no_integration() -> None:
    """Not even aiobreaker: a name's module is imported when the name is first used."""
    assert loaded_after("import resilience_async") == set()


def test_the_core_primitives_import_no_database_http_or_redis_client() -> None:
    """The breaker, the cache, the bulkhead and the retry policy need aiobreaker alone."""
    code = "from resilience_async import CircuitBreaker, FallbackCache, Bulkhead, RetryPolicy"
    loaded = loaded_after(code)
    assert loaded & {"psycopg", "psycopg_pool", "aiohttp", "httpx"} == set()
    # aiobreaker itself imports redis when it is installed (for its own Redis storage, in a
    # try/except): whatever redis is loaded here, aiobreaker loaded it, not the library.
    redis_loaded = {m for m in modules_after(code) if m.split(".")[0] == "redis"}
    assert redis_loaded == {m for m in modules_after("import aiobreaker") if m.startswith("redis")}


def test_the_core_primitives_work_without_redis_installed() -> None:
    """A breaker, a cache (local tier only) and a rate limiter (its local buckets) are
    built and called with redis uninstalled."""
    code = """
import asyncio
from resilience_async import (
    Bulkhead, CircuitBreaker, FallbackCache, RateLimiter, RateLimitPolicy, RetryPolicy,
)

async def main():
    breaker = CircuitBreaker(name="b")
    cache = FallbackCache(redis=None)
    async with Bulkhead("b", max_concurrent=1):
        result = await cache.get("k", lambda: breaker.call_async(asyncio.sleep, 0, "v"),
                                 ttl=1, stale_ttl=1)
    assert result.value == "v", result
    assert RetryPolicy().attempts == 3
    async with RateLimiter(redis=None) as limiter:
        decision = await limiter.acquire("k", RateLimitPolicy("p", limit=1, window=1))
    assert decision.allowed and not decision.shared, decision

asyncio.run(main())
"""
    assert "redis" not in loaded_after(code, hidden=("redis",))


@pytest.mark.parametrize(
    ("hidden", "code", "extra", "needed_by"),
    [
        (
            "psycopg",
            "from resilience_async import Database",
            "postgres",
            "resilience_async.Database",
        ),
        (
            "psycopg",
            "import resilience_async as r; r.Monitor",
            "postgres",
            "resilience_async.Monitor",
        ),
        ("httpx", "from resilience_async import ResilientClient", "http", "async.ResilientClient"),
        (
            "aiohttp",
            "from resilience_async import AiohttpTransport",
            "aiohttp",
            "async.AiohttpTransport",
        ),
        (
            "aiohttp",
            "from resilience_async import ResilientClient as C; C('up', 'http://up.invalid')",
            "aiohttp",
            "ResilientClient's default transport (AiohttpTransport)",
        ),
        (
            "redis",
            "from resilience_async import RedisBreakerState; RedisBreakerState(object())",
            "redis",
            "resilience_async.RedisBreakerState",
        ),
        (
            "redis",
            "from resilience_async import RateLimiter; RateLimiter(redis=object())",
            "redis",
            "resilience_async.RateLimiter",
        ),
        (
            "prometheus_client",
            "import resilience_async.prometheus",
            "prometheus",
            "async.prometheus",
        ),
        ("django", "import resilience_async.django", "django", "resilience_async.django"),
        ("uvicorn", "import resilience_async.uvicorn", "uvicorn", "resilience_async.uvicorn"),
    ],
)
def test_a_missing_integration_names_the_extra_that_installs_it(
    hidden: str, code: str, extra: str, needed_by: str
) -> None:
    done = run(code, hidden=(hidden,))
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ModuleNotFoundError: "), done.stderr  # an ImportError, as before
    assert f"install resilient-django[{extra}]" in last
    assert f"{needed_by} needs" in last
    assert f"needs {hidden}" in last


def test_a_name_met_through_another_is_named_after_the_namespace_too() -> None:
    """The cache imports the error tree: its errors say `resilience_async.X` all the same."""
    code = """
from resilience_async import FallbackCache
from resilience_async._errors import FallbackUnavailableError
assert FallbackUnavailableError.__module__ == "resilience_async", FallbackUnavailableError
"""
    done = run(code)
    assert done.returncode == 0, done.stderr
