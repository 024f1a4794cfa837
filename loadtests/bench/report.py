"""Bench output: a table on stdout, ratios against targets, and a JSON file per part."""

from __future__ import annotations

import json
import platform
import time
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


def render(title: str, rows: list[Row], targets: list[Target]) -> str:
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
    return "\n".join(lines)


def write(part: str, rows: list[Row], targets: list[Target], settings: dict[str, Any]) -> Path:
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
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def median_round(results: list[LoadResult]) -> LoadResult:
    """The round with the median throughput (its latencies belong to that same round)."""
    return sorted(results, key=lambda result: result.rps)[len(results) // 2]


def _non_2xx(result: LoadResult) -> int:
    return sum(count for status, count in result.statuses.items() if not 200 <= status < 300)


def _cpus() -> int:
    import os  # noqa: PLC0415 - only for the report header

    return os.cpu_count() or 1
