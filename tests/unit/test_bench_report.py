"""Bench reports: every target ends as a verdict (met or MISSED) in the table and the JSON, and
each row reads against its ceiling, with its server's peak RSS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.bench import plan, report
from loadtests.bench.generator import LoadResult
from loadtests.bench.generator.result import ERROR_KINDS, Latencies
from loadtests.bench.report import Row
from loadtests.bench.targets import LatencyTarget, Target, verdicts


def row(name: str, p99: float = 10.0, *, answered: int = 1000, timeouts: int = 0,
        peak_rss: int | None = None, ceiling: str = "") -> Row:  # fmt: skip
    errors = {**dict.fromkeys(ERROR_KINDS, 0), "timeout": timeouts}
    result = LoadResult(answered, 5.0, {200: answered} if answered else {}, errors,
                        Latencies(p50=p99 / 2, p90=p99, p99=p99, max=p99))  # fmt: skip
    return Row(name, "", result, peak_rss, ceiling)


def by_name(*rows: Row) -> dict[str, Row]:
    return {r.name: r for r in rows}


@pytest.fixture
def report_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(report, "REPORT_DIR", tmp_path)
    return tmp_path


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


def test_a_ratio_target_is_met_at_its_minimum_and_missed_below() -> None:
    rows = by_name(row("a", answered=1500), row("b", answered=1000), row("c", answered=1499))

    met, missed = verdicts([Target("a/b", "a", "b", 1.5), Target("c/b", "c", "b", 1.5)], rows)

    assert (met.figure, met.target, met.met) == ("1.50x", ">= 1.5x", True)
    assert (missed.figure, missed.met, missed.word) == ("1.50x", False, "MISSED")


def test_a_target_whose_rows_were_not_measured_gives_no_verdict() -> None:
    """A quick run leaves scenarios out: their targets are neither met nor missed."""
    rows = by_name(row("a"))

    found = verdicts([Target("a/b", "a", "b", 1.0)], rows) + verdicts(
        [LatencyTarget("b", "b", limit_ms=5), LatencyTarget("a", "a", baseline="b")], rows
    )

    assert found == []


def test_the_table_shows_each_verdict_the_ceiling_and_the_peak_rss() -> None:
    rows = [row("service", answered=250, peak_rss=80 * 2**20, ceiling="bare"),
            row("starved", 0.0, answered=0, timeouts=20), row("bare", answered=1000)]  # fmt: skip
    found = verdicts([LatencyTarget("ok p99", "service", limit_ms=50),
                      LatencyTarget("starved p99", "starved", limit_ms=50)],
                     by_name(*rows))  # fmt: skip

    table = report.render("title", rows, found).splitlines()

    service, _, bare = table[3:6]
    assert service.split()[:3] == ["service", "50", "0.25"]
    assert service.split()[6] == "80"  # MiB
    assert bare.split()[:3] == ["bare", "200", "ceiling"]
    assert "p99 10.0 ms  (target <= 50.0 ms: met)" in table[-2]
    assert "p99 failed  (target <= 50.0 ms: MISSED)" in table[-1]


def test_a_part_without_targets_says_so() -> None:
    assert "targets: none for this part" in report.render("title", [row("a")], [])


def test_the_json_keeps_the_verdicts_ceilings_rss_and_the_text(report_dir: Path) -> None:
    rows = [row("service", answered=250, peak_rss=123, ceiling="bare"), row("bare")]
    found = verdicts([Target("service/bare", "service", "bare", 0.5)], by_name(*rows))

    outcome = report.finish("part", "title", rows, found, plan=plan.FULL, settings={"x": 1},
                            notes=["a note"])  # fmt: skip

    written = json.loads(outcome.path.read_text())
    assert outcome.path == report_dir / "part.json"
    assert written["verdicts"] == [
        {"label": "service/bare", "value": 0.25, "limit": 0.5, "figure": "0.25x",
         "target": ">= 0.5x", "met": False}
    ]  # fmt: skip
    service, bare = written["servers"]
    assert (service["peak_rss_bytes"], service["ceiling"], service["of_ceiling"]) == (
        123, "bare", 0.25)  # fmt: skip
    assert (bare["is_ceiling"], service["is_ceiling"]) == (True, False)
    assert written["settings"] == {"plan": vars(plan.FULL), "x": 1}
    assert written["text"].endswith("a note")
    assert {"python", "django", "uvicorn", "gunicorn", "postgresql", "redis"} <= set(
        written["machine"]["versions"]
    )
    assert outcome.missed == list(found)


def test_a_quick_run_writes_beside_the_figures_not_over_them(report_dir: Path) -> None:
    outcome = report.finish("part", "t", [row("a")], [], plan=plan.QUICK, settings={})

    assert outcome.path == report_dir / "quick" / "part.json"
