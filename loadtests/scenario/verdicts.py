"""The verdict table printed after a run: each SLO and invariant, measured against its limit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loadtests.scenario._words import format_value
from loadtests.scenario.analysis import Analysis

_GAP = "  "


def verdict_table(analysis: Analysis, invariants: Sequence[dict[str, Any]]) -> str:
    """SLOs (measured, limit, PASS/FAIL), invariants likewise, then PASSED or FAILED: n of m."""
    slos = [_slo_row(verdict) for verdict in analysis.verdicts]
    checks = [_invariant_row(invariant) for invariant in invariants]
    header = ["SLO", "measured", "limit", "result"]
    rows = [header, *slos, ["invariant", "measured", "limit", "result"], *checks]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [_line(row, widths) for row in [header, *slos]]
    if checks:
        lines += ["", *(_line(row, widths) for row in rows[len(slos) + 1 :])]
    verdicts = [v["passed"] for v in analysis.verdicts] + [c["passed"] for c in invariants]
    failed = verdicts.count(False)
    overall = f"FAILED: {failed} of {len(verdicts)} checks" if failed else "PASSED"
    return "\n".join([*lines, "", overall])


def _line(row: list[str], widths: list[int]) -> str:
    cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
    return _GAP.join(cells + row[len(widths) :]).rstrip()


def _slo_row(verdict: dict[str, Any]) -> list[str]:
    metric, measured = verdict["metric"], verdict["measured"]
    if measured is None:
        never = metric == "first_write" or (metric == "recovery" and verdict["count"])
        shown = "never" if never else "no requests"
    else:
        shown = format_value(metric, measured)
        if metric == "error_rate" and "errors" in verdict:
            shown += f" ({verdict['errors']} of {verdict['count']})"
        elif metric not in ("recovery", "first_write"):
            shown += f" (n={verdict['count']})"
    row = [verdict["slo"], shown, f"<= {format_value(metric, verdict['limit'])}", _result(verdict)]
    return row + ([verdict["note"]] if verdict.get("note") else [])


def _invariant_row(invariant: dict[str, Any]) -> list[str]:
    row = [
        str(invariant["name"]),
        str(invariant["measured"]),
        f"<= {invariant['limit']}",
        _result(invariant),
    ]
    return row + ([str(invariant["detail"])] if invariant.get("detail") else [])


def _result(check: dict[str, Any]) -> str:
    return "PASS" if check["passed"] else "FAIL"
