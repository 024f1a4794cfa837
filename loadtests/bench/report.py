"""Bench output: a table on stdout, ratios against targets, and a JSON file per part."""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.loadgen import LoadResult

REPORT_DIR = Path(__file__).resolve().parents[2] / "reports" / "bench"


@dataclass(frozen=True)
class Row:
    name: str
    description: str
    result: LoadResult


@dataclass(frozen=True)
class Target:
    """`numerator / denominator` (by rows' req/s) must reach `minimum`."""

    label: str
    numerator: str
    denominator: str
    minimum: float

    def ratio(self, rows: dict[str, Row]) -> float:
        return rows[self.numerator].result.rps / max(rows[self.denominator].result.rps, 1e-9)


@dataclass(frozen=True)
class LatencyTarget:
    """`row`'s p99 must stay at or under `limit_ms`, or under `factor` x `baseline`'s p99.

    A row that got no good answer to more than 1 % of its requests (timeouts, errors, non-2xx)
    misses it whatever its p99: the answered requests alone would hide the slowest ones.
    """

    label: str
    row: str
    limit_ms: float = 0.0
    baseline: str = ""  # a row name: then the limit is `factor` x its p99
    factor: float = 1.0

    def limit(self, rows: dict[str, Row]) -> float:
        if not self.baseline:
            return self.limit_ms
        return self.factor * rows[self.baseline].result.latencies_ms.p99

    def p99(self, rows: dict[str, Row]) -> float:
        """The row's p99 in ms; infinite when over 1 % of its requests failed."""
        result = rows[self.row].result
        failed = result.error_count + _non_2xx(result)
        if result.requests == 0 or failed > 0.01 * (result.requests + result.error_count):
            return math.inf
        return result.latencies_ms.p99

    def met(self, rows: dict[str, Row]) -> bool:
        return self.p99(rows) <= self.limit(rows)


def render(
    title: str, rows: list[Row], targets: list[Target], limits: Sequence[LatencyTarget] = ()
) -> str:
    by_name = {row.name: row for row in rows}
    width = max(len(row.name) for row in rows) + 2
    header = f"{'':<{width}}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  setup"
    lines = [title, "", header]
    for row in rows:
        r = row.result
        lines.append(
            f"{row.name:<{width}}{r.rps:>10.0f}{r.latencies_ms.p50:>9.2f}"
            f"{r.latencies_ms.p99:>9.2f}{r.error_count + _non_2xx(r):>8}  {row.description}"
        )
    lines.append("")
    for target in targets:
        ratio = target.ratio(by_name)
        verdict = "met" if ratio >= target.minimum else "MISSED"
        lines.append(
            f"{target.label:<46}{ratio:>6.2f}x  (target >= {target.minimum:g}x: {verdict})"
        )
    lines.extend(_limit_line(limit, by_name) for limit in limits)
    return "\n".join(lines)


def _limit_line(target: LatencyTarget, rows: dict[str, Row]) -> str:
    p99 = target.p99(rows)
    shown = f"{p99:.1f} ms" if math.isfinite(p99) else "failed"
    verdict = "met" if target.met(rows) else "MISSED"
    return f"{target.label:<46}  p99 {shown}  (target <= {target.limit(rows):.1f} ms: {verdict})"


def write(
    part: str,
    rows: list[Row],
    targets: list[Target],
    settings: dict[str, Any],
    limits: Sequence[LatencyTarget] = (),
) -> Path:
    by_name = {row.name: row for row in rows}
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    path = REPORT_DIR / f"{part}.json"
    document = {
        "part": part,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "settings": settings,
        "servers": [{"name": r.name, "setup": r.description, **r.result.to_dict()} for r in rows],
        "ratios": [
            {"label": t.label, "ratio": round(t.ratio(by_name), 3), "target": t.minimum}
            for t in targets
        ],
    }
    if limits:
        document["latency_targets"] = [_limit_json(t, by_name) for t in limits]
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _limit_json(target: LatencyTarget, rows: dict[str, Row]) -> dict[str, Any]:
    p99 = target.p99(rows)
    return {"label": target.label, "p99_ms": round(p99, 3) if math.isfinite(p99) else None,
            "limit_ms": round(target.limit(rows), 3), "met": target.met(rows)}  # fmt: skip


def median_round(results: list[LoadResult]) -> LoadResult:
    """The round with the median throughput (its latencies belong to that same round)."""
    return sorted(results, key=lambda result: result.rps)[len(results) // 2]


def _non_2xx(result: LoadResult) -> int:
    return sum(count for status, count in result.statuses.items() if not 200 <= status < 300)


def _cpus() -> int:
    import os  # noqa: PLC0415 - only for the report header

    return os.cpu_count() or 1
