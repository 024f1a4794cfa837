"""`bench scale`'s verdicts, `bench data`'s composite ceiling, and the scale chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.bench import chart, data, scale
from loadtests.bench.generator import LoadResult
from loadtests.bench.generator.result import ERROR_KINDS, Latencies
from loadtests.bench.rounds import Measured
from loadtests.bench.targets import Verdict

ROUTE = "GET /x"


def measured(ok: int, *, refused: int = 0, timeouts: int = 0, ok_p99: float = 100.0,
             refused_p99: float = 5.0) -> Measured:  # fmt: skip
    """One second's worth: `ok` 2xx, `refused` 503s, `timeouts` unanswered."""
    statuses = {200: ok, **({503: refused} if refused else {})}
    errors = {**dict.fromkeys(ERROR_KINDS, 0), "timeout": timeouts}
    apart = refused > 0
    return Measured(LoadResult(
        ok + refused, 1.0, statuses, errors, Latencies(1.0, 2.0, ok_p99, ok_p99),
        ok_latencies_ms=Latencies(1.0, 2.0, ok_p99, ok_p99) if apart else None,
        non_2xx_latencies_ms=Latencies(1.0, 2.0, refused_p99, refused_p99) if apart else None,
    ))  # fmt: skip


def rows(at16: Measured, at256: Measured, at1024: Measured) -> dict[str, Measured]:
    return {scale.key(ROUTE, 16): at16, scale.key(ROUTE, 256): at256,
            scale.key(ROUTE, 1024): at1024}  # fmt: skip


def by_label(found: list[Verdict]) -> dict[str, bool]:
    return {verdict.label.removeprefix(ROUTE + " @ "): verdict.met for verdict in found}


def test_a_route_that_keeps_its_goodput_and_refuses_fast_meets_every_target() -> None:
    found = scale.route_verdicts(
        ROUTE,
        (16, 256, 1024),
        rows(measured(1000), measured(950), measured(850, refused=300, refused_p99=50.0)),
    )

    assert by_label(found) == {"256: goodput / peak": True, "256: failed requests": True,
                               "1024: goodput / peak": True, "1024: refusals": True}  # fmt: skip


def test_one_failure_at_256_or_too_little_goodput_is_missed() -> None:
    found = scale.route_verdicts(
        ROUTE, (16, 256, 1024), rows(measured(1000), measured(990, timeouts=1), measured(700))
    )

    assert by_label(found) == {"256: goodput / peak": True, "256: failed requests": False,
                               "1024: goodput / peak": False, "1024: refusals": True}  # fmt: skip


def test_refusals_slower_than_the_answers_or_requests_unanswered_are_missed() -> None:
    slow = scale.route_verdicts(
        ROUTE,
        (16, 256, 1024),
        rows(measured(1000), measured(1000), measured(900, refused=10, refused_p99=2000.0)),
    )
    unanswered = scale.route_verdicts(
        ROUTE, (16, 256, 1024), rows(measured(1000), measured(1000), measured(900, timeouts=1))
    )

    assert by_label(slow)["1024: refusals"] is False
    assert by_label(unanswered)["1024: refusals"] is False


def test_a_refusal_at_the_door_is_not_a_failed_request() -> None:
    """A 503 at 256 is the in-flight limit at work, counted apart, not a failure."""
    found = scale.route_verdicts(
        ROUTE, (16, 256, 1024), rows(measured(1000), measured(950, refused=40), measured(900))
    )
    failed = next(v for v in found if v.label.endswith("256: failed requests"))
    assert failed.met
    assert failed.figure == "0 (40 refused)"


def test_the_tail_at_1024_is_held_to_three_times_the_p99_at_16() -> None:
    met = scale.tail_verdicts(
        ROUTE, (16, 256, 1024),
        rows(measured(1000, ok_p99=10.0), measured(1000), measured(900, ok_p99=30.0)),
    )  # fmt: skip
    missed = scale.tail_verdicts(
        ROUTE, (16, 256, 1024),
        rows(measured(1000, ok_p99=10.0), measured(1000), measured(900, ok_p99=31.0)),
    )  # fmt: skip
    assert [v.met for v in met] == [True]
    assert [v.met for v in missed] == [False]
    assert scale.tail_verdicts(ROUTE, (16, 256), {}) == []


def test_the_peak_is_the_best_level_whichever_it_is() -> None:
    found = scale.route_verdicts(
        ROUTE, (16, 256, 1024), rows(measured(500), measured(1000), measured(850))
    )
    kept = {v.label: v.value for v in found}
    assert kept[f"{ROUTE} @ 256: goodput / peak"] == 1.0
    assert kept[f"{ROUTE} @ 1024: goodput / peak"] == pytest.approx(0.85)


def test_a_quick_run_s_levels_judge_only_what_they_measured() -> None:
    found = scale.route_verdicts(
        ROUTE,
        (16, 256),
        {scale.key(ROUTE, 16): measured(1000), scale.key(ROUTE, 256): measured(900)},
    )
    assert [v.label for v in found] == [f"{ROUTE} @ 256: goodput / peak",
                                       f"{ROUTE} @ 256: failed requests"]  # fmt: skip


def test_the_data_ceiling_adds_the_request_path_s_cost_to_the_query_s() -> None:
    medians = {data.BARE_ROUTE: measured(10_000), data.BARE_READS: measured(5_000)}
    assert data.composite(medians, data.BARE_READS) == pytest.approx(1 / (1e-4 + 2e-4))
    assert data.composite(medians, data.BARE_WRITES) is None


def test_the_scale_chart_draws_each_route_s_curve(tmp_path: Path) -> None:
    curves = {"ceiling": {"16": 30000, "256": 29000}, ROUTE: {"16": 1000, "256": 950},
              f"{ROUTE}, pool 10": {"16": 900, "256": 700}}  # fmt: skip
    report = tmp_path / "scale.json"
    report.write_text(json.dumps({
        "part": "scale", "at": "2026-12-01T05:00:00Z",
        "settings": {"levels": [16, 256], "goodput_by_level": curves, "read_route": ROUTE,
                     "defaults": {"pool_size": 20, "pool_waiters": 1000, "in_flight": 1000}},
    }))  # fmt: skip

    assert chart.draw(report).read_bytes().startswith(b"\x89PNG")
