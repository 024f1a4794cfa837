"""Bench output: a table on stdout with its verdicts, and a JSON file per part.

Each row reads against its ceiling (the same load on a bare ASGI app on the same core, or
for `bench data`'s queries the bare pool) and carries its server's peak RSS under that load.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.bench import machine
from loadtests.bench.generator import LoadResult
from loadtests.bench.plan import Plan
from loadtests.bench.targets import Verdict, non_2xx

REPORT_DIR = Path(__file__).resolve().parents[2] / "reports" / "bench"
MIB = 2**20


@dataclass(frozen=True)
class Row:
    """One line of a part's table.

    Args:
        peak_rss: bytes, the server's whole process tree at its peak under this load.
        ceiling: the name of the row this one reads as a fraction of (by req/s).
    """

    name: str
    description: str
    result: LoadResult
    peak_rss: int | None = None
    ceiling: str = ""


@dataclass(frozen=True)
class Outcome:
    """What a part returns: the text it prints, its verdicts, and its JSON file."""

    part: str
    text: str
    verdicts: tuple[Verdict, ...]
    path: Path

    @property
    def missed(self) -> list[Verdict]:
        return [verdict for verdict in self.verdicts if not verdict.met]


def finish(part: str, title: str, rows: list[Row], verdicts: Sequence[Verdict], *, plan: Plan,
           settings: dict[str, Any], notes: Sequence[str] = ()) -> Outcome:  # fmt: skip
    """Render the table (and any notes after it), write the JSON, return the outcome."""
    text = "\n".join([render(title, rows, verdicts), *notes])
    settings = {"plan": dataclasses.asdict(plan), **settings}
    path = write(part, rows, verdicts, settings, text, directory=report_dir(plan))
    return Outcome(part, f"{text}\n\nwritten to {path}", tuple(verdicts), path)


def report_dir(plan: Plan) -> Path:
    """`reports/bench/`; a quick run's in `reports/bench/quick/`, the figures left alone."""
    return REPORT_DIR / "quick" if plan.quick else REPORT_DIR


def render(title: str, rows: Sequence[Row], verdicts: Sequence[Verdict]) -> str:
    width = max(len(row.name) for row in rows) + 2
    header = (f"{'':<{width}}{'req/s':>9}{'of ceiling':>12}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'errors':>8}{'RSS MiB':>9}  setup")  # fmt: skip
    lines = [title, "", header]
    for row in rows:
        r = row.result
        lines.append(
            f"{row.name:<{width}}{r.rps:>9.0f}{of_ceiling_text(row, rows):>12}"
            f"{r.latencies_ms.p50:>9.2f}{r.latencies_ms.p99:>9.2f}"
            f"{r.error_count + non_2xx(r):>8}{_mib(row.peak_rss):>9}  {row.description}"
        )
    lines.append("")
    lines.append("targets:" if verdicts else "targets: none for this part")
    lines.extend(f"  {verdict.line()}" for verdict in verdicts)
    return "\n".join(lines)


def of_ceiling(row: Row, rows: Sequence[Row]) -> float | None:
    """`row`'s req/s as a fraction of its ceiling row's; None without one."""
    ceiling = next((r for r in rows if r.name == row.ceiling), None)
    if ceiling is None:
        return None
    return row.result.rps / max(ceiling.result.rps, 1e-9)


def of_ceiling_text(row: Row, rows: Sequence[Row]) -> str:
    if any(other.ceiling == row.name for other in rows):
        return "ceiling"
    fraction = of_ceiling(row, rows)
    return "" if fraction is None else f"{fraction:.2f}"


def write(part: str, rows: Sequence[Row], verdicts: Sequence[Verdict], settings: dict[str, Any],
          text: str = "", *, directory: Path | None = None) -> Path:  # fmt: skip
    directory = directory or REPORT_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{part}.json"
    document = {
        "part": part,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine.facts(),
        "settings": settings,
        "servers": [_row_json(row, rows) for row in rows],
        "verdicts": [verdict.to_dict() for verdict in verdicts],
        "text": text,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def _row_json(row: Row, rows: Sequence[Row]) -> dict[str, Any]:
    fraction = of_ceiling(row, rows)
    return {"name": row.name, "setup": row.description, **row.result.to_dict(),
            "peak_rss_bytes": row.peak_rss, "ceiling": row.ceiling or None,
            "of_ceiling": None if fraction is None else round(fraction, 4),
            "is_ceiling": any(other.ceiling == row.name for other in rows)}  # fmt: skip


def median_round(results: list[LoadResult]) -> LoadResult:
    """The round with the median throughput (its latencies belong to that same round)."""
    return sorted(results, key=lambda result: result.rps)[len(results) // 2]


def _mib(size: int | None) -> str:
    return "" if size is None else f"{size / MIB:.0f}"
