"""Bench reports: latency targets, absolute or against a baseline row, in the table and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.bench import report
from loadtests.bench.report import LatencyTarget, Row
from loadtests.loadgen import LoadResult
from loadtests.loadgen.result import ERROR_KINDS, Latencies


def row(name: str, p99: float, *, answered: int = 1000, timeouts: int = 0) -> Row:
    errors = {**dict.fromkeys(ERROR_KINDS, 0), "timeout": timeouts}
    result = LoadResult(answered, 5.0, {200: answered} if answered else {}, errors,
                        Latencies(p50=p99 / 2, p90=p99, p99=p99, max=p99))  # fmt: skip
    return Row(name, "", result)


def by_name(*rows: Row) -> dict[str, Row]:
    return {r.name: r for r in rows}


def test_an_absolute_target_is_met_at_or_under_its_limit() -> None:
    rows = by_name(row("fast", 50.0), row("slow", 50.1))

    assert LatencyTarget("fast", "fast", limit_ms=50).met(rows)
    assert not LatencyTarget("slow", "slow", limit_ms=50).met(rows)


def test_a_relative_target_scales_the_baseline_rows_p99() -> None:
    rows = by_name(row("healthy", 10.0), row("hanging", 19.0))
    target = LatencyTarget("x", "hanging", baseline="healthy", factor=2.0)

    assert target.limit(rows) == 20.0
    assert target.met(rows)


def test_more_than_one_percent_failed_misses_whatever_the_p99() -> None:
    rows = by_name(row("few", 1.0, timeouts=10), row("many", 1.0, timeouts=11),
                   row("none answered", 0.0, answered=0))  # fmt: skip

    assert LatencyTarget("few", "few", limit_ms=50).met(rows)
    assert not LatencyTarget("many", "many", limit_ms=50).met(rows)
    assert not LatencyTarget("none", "none answered", limit_ms=50).met(rows)


def test_the_table_and_the_json_carry_each_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "REPORT_DIR", tmp_path)
    rows = [row("ok", 12.0), row("starved", 0.0, answered=0, timeouts=20)]
    limits = [LatencyTarget("ok p99", "ok", limit_ms=50),
              LatencyTarget("starved p99", "starved", limit_ms=50)]  # fmt: skip

    table = report.render("title", rows, [], limits)
    written = json.loads(report.write("part", rows, [], {}, limits).read_text())

    assert "p99 12.0 ms  (target <= 50.0 ms: met)" in table
    assert "p99 failed  (target <= 50.0 ms: MISSED)" in table
    assert written["latency_targets"] == [
        {"label": "ok p99", "p99_ms": 12.0, "limit_ms": 50.0, "met": True},
        {"label": "starved p99", "p99_ms": None, "limit_ms": 50.0, "met": False},
    ]
