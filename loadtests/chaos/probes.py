"""Chaos Toolkit probes: what users of the running stack see, measured from outside.

    {"type": "probe", "name": "...", "tolerance": 200, "provider": {"type": "python",
     "module": "loadtests.chaos.probes", "func": "readiness"}}

A service that does not answer is a measurement (status 0, a failed request), not a
probe failure, so the hypothesis says "deviated" rather than "the probe broke".
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict
from typing import Any

import httpx

from devstack.faults import database
from loadtests.chaos import targets

log = logging.getLogger("chaostoolkit")


def readiness(
    *, timeout: float = 2.0, url: str | None = None, stack_dir: str | None = None
) -> dict[str, Any]:
    """GET /health/ready: `{"status": <HTTP status, 0 if none>, "health": "pass"|"warn"|
    "fail"|None, "checks": {"redis:responseTime": "warn", ...}}`. A tolerance of 200 compares
    the HTTP status; `{"type": "regex", "target": "health", "pattern": ...}` the verdict."""
    base = url or targets.served_url(stack_dir)
    try:
        answer = httpx.get(f"{base}/health/ready", timeout=timeout)
    except httpx.HTTPError as exc:
        return {"status": 0, "health": None, "error": f"{type(exc).__name__}: {exc}"}
    try:
        body = answer.json()
    except ValueError:
        body = {}
    checks = body.get("checks", {})
    return {
        "status": answer.status_code,
        "health": body.get("status"),
        "checks": {name: each[0].get("status") for name, each in checks.items() if each},
    }


def error_rate(
    *,
    path: str = "/api/tips",
    requests: int = 20,
    timeout: float = 2.0,
    method: str = "GET",
    body: dict[str, Any] | None = None,
    url: str | None = None,
    stack_dir: str | None = None,
) -> float:
    """Send `requests` requests to `path` (GETs; or `method` with the JSON `body`), one after
    another, each bounded by `timeout` seconds; the fraction that failed (no answer, a 5xx)."""
    if requests < 1:
        raise ValueError(f"requests: at least 1, not {requests}")
    base = url or targets.served_url(stack_dir)
    statuses: Counter[int] = Counter()
    with httpx.Client(base_url=base, timeout=timeout) as client:
        for _ in range(requests):
            try:
                statuses[client.request(method, path, json=body).status_code] += 1
            except httpx.HTTPError:
                statuses[0] += 1
    failed = sum(n for status, n in statuses.items() if status == 0 or status >= 500)
    log.info("%s %s x%d: statuses %s", method, path, requests, dict(sorted(statuses.items())))
    return failed / requests


def replica_lag(replica: str = "replica", stack_dir: str | None = None) -> dict[str, Any]:
    """The replica's replay lag: `{"seconds": ..., "bytes": ..., "paused": ...}`."""
    return asdict(database.replica_lag(targets.database_url(replica, stack_dir)))
