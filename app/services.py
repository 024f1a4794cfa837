"""Business logic. Views parse and render; these functions decide, over the resources
that `project/resources.py` built (clients, caches, pools), and raise `ResilienceError`s.
"""

from __future__ import annotations

import functools
from typing import Any

from project.resources import require
from resilience_async.cache import CacheResult
from resilience_async.errors import UpstreamError
from resilience_async.http import ResilientClient

# Served when the upstream fails and nothing is cached: evergreen, honest, never an error.
FALLBACK_TIPS: list[dict[str, Any]] = [
    {"id": 0, "text": "Set a timeout on every call that leaves the process."},
    {"id": -1, "text": "Live tips are unavailable right now; these are built in."},
]


async def tips() -> CacheResult[list[dict[str, Any]]]:
    """The upstream's tips: live, or cached, or stale while it fails, or the built-in ones."""
    resources = require()
    return await resources.tips_cache.get(
        "tips",
        functools.partial(_load_tips, resources.tips_client),
        ttl=resources.cache_ttl,
        stale_ttl=resources.cache_stale_ttl,
        fallback=FALLBACK_TIPS,
        breaker=resources.tips_breaker,
    )


async def _load_tips(client: ResilientClient) -> list[dict[str, Any]]:
    body = await client.get_json("/tips")
    tips = body.get("tips") if isinstance(body, dict) else None
    if not isinstance(tips, list):
        raise UpstreamError(client.name, "answered JSON without a list of tips")
    return tips
