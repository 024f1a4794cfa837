"""How many calls the demo upstream got per tips request while an `upstream_mode` fault held.

A hedge or a retry sends a request's call twice: this is what it cost the upstream. The
injector reads the upstream's own request counter (`GET /stats`) when the fault begins and
ends; the tips requests are the load's own, by intended time, in the same window. With the
tips cache kept out of the way (every request a call), a ratio of 1 is no extra call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from loadtests.scenario.analysis import Analysis

NAME = "max_extra_upstream_calls"


def checks(
    limit: float | None, counted: Mapping[str, tuple[int, int | None]], analysis: Analysis
) -> list[dict[str, Any]]:
    """One verdict per `upstream_mode` fault (none without a limit): the upstream's calls
    beyond one per tips request, as a fraction of those requests."""
    if limit is None:
        return []
    verdicts = []
    for fault, (began, ended) in counted.items():
        tips = analysis.stat("tips", f"during:{fault}").count
        if ended is None or tips == 0:
            detail = f"no upstream count or no tips requests during {fault!r}"
            verdicts.append(
                {"name": NAME, "measured": "unknown", "limit": limit, "passed": False,
                 "detail": detail}
            )  # fmt: skip
            continue
        calls = ended - began
        extra = calls / tips - 1
        verdicts.append({
            "name": NAME, "measured": round(extra, 4), "limit": limit, "passed": extra <= limit,
            "detail": f"{calls} upstream calls for {tips} tips requests during {fault!r}",
        })  # fmt: skip
    return verdicts
