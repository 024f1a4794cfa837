"""The extra upstream calls check: the upstream's own count against the tips requests."""

from __future__ import annotations

from loadtests.scenario import analysis, upstream_calls

T0 = 1_000_000.0


def analysed(tips_during: int) -> analysis.Analysis:
    """A 10 s run whose fault holds from 2 s to 8 s, `tips_during` tips requests in it."""
    records = [{"intended": T0 + 2 + i * 5 / tips_during, "endpoint": "tips", "status": 200,
                "latency": 0.05} for i in range(tips_during)]  # fmt: skip
    records.append({"intended": T0 + 9, "endpoint": "tips", "status": 200, "latency": 0.05})
    window = analysis.FaultWindow("upstream tail", "upstream_mode", "upstream", 2.0, 8.0)
    return analysis.analyse(records, t0=T0, duration=10, faults=[window], slos=[])


def test_calls_beyond_one_per_tips_request_are_the_extra() -> None:
    """107 calls for 100 tips requests: 7 % extra, within 10 %; past it, failed."""
    counted = {"upstream tail": (40, 147)}
    (verdict,) = upstream_calls.checks(0.1, counted, analysed(100))
    assert (verdict["measured"], verdict["passed"]) == (0.07, True)
    assert verdict["detail"] == "107 upstream calls for 100 tips requests during 'upstream tail'"
    (verdict,) = upstream_calls.checks(0.05, counted, analysed(100))
    assert verdict["passed"] is False


def test_no_limit_no_check_and_no_count_fails() -> None:
    """Without a limit nothing is checked; a fault whose end was not counted fails the run."""
    assert upstream_calls.checks(None, {"upstream tail": (0, 10)}, analysed(10)) == []
    (verdict,) = upstream_calls.checks(0.1, {"upstream tail": (0, None)}, analysed(10))
    assert (verdict["measured"], verdict["passed"]) == ("unknown", False)
