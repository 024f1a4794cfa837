"""Records to series, percentiles and verdicts, on synthetic runs with known answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from loadtests.scenario.analysis import (
    Analysis,
    FaultWindow,
    analyse,
    percentile,
    recovery_seconds,
)
from loadtests.scenario.spec import ErrorSlo, FirstWriteSlo, LatencySlo, RecoverySlo, Slo
from loadtests.scenario.verdicts import verdict_table

T0 = 1_000_000.0
STEP = 0.25  # four requests a second per endpoint; exact in binary, so bucket edges are exact


def record(at: float, endpoint: str = "tips", status: int = 200, latency: float = 0.01) -> dict:
    """One request meant to be sent `at` seconds into the run."""
    return {
        "endpoint": endpoint,
        "intended": T0 + at,
        "sent": T0 + at,
        "end": T0 + at + latency,
        "latency": latency,
        "status": status,
        "error": None,
        "key": None,
        "attempt": 1,
        "id": None,
    }


def times(start: float, end: float, step: float = STEP) -> list[float]:
    count = round((end - start) / step)
    return [start + i * step for i in range(count)]


def window(name: str, start: float, end: float) -> FaultWindow:
    return FaultWindow(name, "toxic", "primary", start, end)


def run(
    records: list[dict[str, Any]],
    faults: list[FaultWindow],
    slos: list[Slo],
    duration: float = 30,
) -> Analysis:
    return analyse(records, t0=T0, duration=duration, faults=faults, slos=slos)


def test_percentiles_are_nearest_rank() -> None:
    """Each percentile is a value from the data: the smallest with q % at or below it."""
    values = [float(v) for v in range(1, 101)]

    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50, 95, 99, 100]
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2
    assert percentile([0.3], 99) == 0.3
    assert percentile([], 99) is None


def test_a_two_second_stall_shows_in_the_p99_of_its_phase() -> None:
    """Requests meant for 12-14 s all finish at 14.01 s: latency counts from the intended time."""
    records = [
        record(at, latency=14.01 - at if 12 <= at < 14 else 0.01) for at in times(0, 30, 0.1)
    ]
    slos: list[Slo] = [LatencySlo("*", "during:db stall", 0.5), LatencySlo("*", "before", 0.5)]

    result = run(records, [window("db stall", 10, 20)], slos)

    during = result.stat("*", "during:db stall")
    assert during.count == 100
    assert during.p99 == pytest.approx(14.01 - 12.1)  # rank 99 of 100: the second largest
    assert during.max == pytest.approx(2.01)
    assert during.p50 == pytest.approx(0.01)
    assert result.stat("*", "before").p99 == pytest.approx(0.01)
    assert result.stat("*", "after:db stall").p99 == pytest.approx(0.01)
    assert result.series.p99[12] == pytest.approx(2.01)
    assert result.series.p99[5] == pytest.approx(0.01)
    assert [(v["passed"], v["count"]) for v in result.verdicts] == [(False, 100), (True, 100)]
    assert result.verdicts[0]["measured"] == pytest.approx(1.91)


def test_a_p99_of_some_statuses_reads_those_answers_only() -> None:
    """`p99_statuses`: the served requests' p99 apart from the refusals' (held 0.8 s)."""
    records = [record(at, status=503, latency=0.8) if i % 2 else record(at, latency=0.02)
               for i, at in enumerate(times(10, 20, 0.1))]  # fmt: skip
    slos: list[Slo] = [LatencySlo("*", "during:surge", 0.1, (200,)),
                       LatencySlo("*", "during:surge", 0.5, (503,))]  # fmt: skip

    result = run(records, [window("surge", 10, 20)], slos)

    served, refused = result.verdicts
    assert (served["passed"], served["count"], served["measured"]) == (True, 50, 0.02)
    assert (refused["passed"], refused["count"], refused["measured"]) == (False, 50, 0.8)
    assert served["slo"] == "all endpoints p99 of 200 answers, during surge"


def test_a_request_belongs_to_the_phase_and_second_of_its_intended_time() -> None:
    """Sent late, a request still counts where it was meant to go; outside the run it is dropped."""
    late = record(9.95, latency=0.6) | {"sent": T0 + 10.5}
    records = [late, record(19.99), record(20.0), record(-0.5), record(30.0)]

    result = run(records, [window("x", 10, 20)], [])

    counts = [result.stat("*", phase).count for phase in ("before", "during:x", "after:x", "all")]
    assert counts == [1, 1, 1, 3]
    assert (result.requests, result.outside) == (3, 2)
    assert [result.series.total[second] for second in (9, 10, 19, 20)] == [1, 0, 1, 1]
    assert len(result.series.total) == 30


def test_errors_inside_a_fault_window_are_counted_per_endpoint_and_phase() -> None:
    """tips answers 503 during the window, order_read keeps answering 200."""
    records = [record(at, "tips", 503 if 10 <= at < 20 else 200) for at in times(0, 30)] + [
        record(at, "order_read") for at in times(0, 30)
    ]
    slos: list[Slo] = [
        ErrorSlo("tips", "during:upstream down", 0.0),
        ErrorSlo("order_read", "during:upstream down", 0.0),
        ErrorSlo("*", "during:upstream down", 0.5),
        ErrorSlo("tips", "during:upstream down", 0.0, error_statuses=(0,)),
    ]

    result = run(records, [window("upstream down", 10, 20)], slos)

    assert [(v["measured"], v["passed"], v["count"]) for v in result.verdicts] == [
        (1.0, False, 40),
        (0.0, True, 40),
        (0.5, True, 80),
        (0.0, True, 40),
    ]
    assert result.stat("tips", "before").error_rate == 0
    assert result.stat("tips", "during:upstream down").errors == 40
    series = result.series
    assert series.errors_by_status == {"503": [0] * 10 + [4] * 10 + [0] * 10}
    assert (series.sent["tips"][15], series.ok[15], series.total[15]) == (4, 4, 8)
    assert series.error_rate()[15] == 0.5
    assert series.error_rate("tips")[15] == 1.0
    assert series.error_rate("order_read")[15] == 0.0


def recovery_run(slo: RecoverySlo, errors_until: float, duration: float = 40) -> dict[str, Any]:
    """tips fails from 10 s until `errors_until`; the fault ends at 20 s."""
    records = [record(at, status=503 if 10 <= at < errors_until else 200) for at in times(0, 40)]
    result = run(records, [window("down", 10, 20)], [slo], duration=duration)
    return result.verdicts[0]


def test_a_group_counts_the_errors_of_its_endpoints_only() -> None:
    """The groups "reads", "idempotent_writes" and "other_writes" split the errors by what
    a retry may resend: failed report writes (no key) leave reads and order writes clean."""
    records = [record(at, endpoint) for at in times(0, 10)
               for endpoint in ("tips", "order_read", "order_create")]  # fmt: skip
    records += [record(at, "report_create", status=502 if at < 1 else 202) for at in times(0, 10)]
    slos: list[Slo] = [ErrorSlo(group, "all", 0.0)
                       for group in ("reads", "idempotent_writes", "other_writes")]  # fmt: skip
    result = run(records, [], slos, duration=10)
    measured = {v["endpoint"]: (v["measured"], v["count"], v["passed"]) for v in result.verdicts}
    assert measured == {
        "reads": (0.0, 80, True),
        "idempotent_writes": (0.0, 40, True),
        "other_writes": (0.1, 40, False),
    }
    assert result.stat("other_writes", "all").errors == 4
    assert "other_writes" not in result.series.sent  # the charts keep to real endpoints


@pytest.mark.parametrize(
    ("max_error_rate", "max_seconds", "measured", "passed"),
    [
        (0.0, 5, 3.0, True),  # buckets from the fault's end: 20-21, 21-22, 22-23 (half errors)
        (0.0, 2, 3.0, False),
        (0.5, 2, 2.0, True),  # the half-failing bucket is within the limit
    ],
)
def test_recovery_is_the_first_second_after_the_end_that_starts_a_clean_window(
    max_error_rate: float, max_seconds: float, measured: float, passed: bool
) -> None:
    """Errors go on 2.5 s after the fault ends: three buckets are above a 0 % limit."""
    slo = RecoverySlo("down", "*", max_error_rate, max_seconds, window=3)

    verdict = recovery_run(slo, errors_until=22.5)

    assert (verdict["measured"], verdict["passed"]) == (measured, passed)
    assert (verdict["metric"], verdict["phase"], verdict["limit"]) == (
        "recovery",
        "after:down",
        max_seconds,
    )
    assert verdict["count"] == 80


def test_a_service_that_never_recovers_fails() -> None:
    """Errors until the end of the run: no clean window, no recovery time."""
    verdict = recovery_run(RecoverySlo("down", "*", 0.0, 5), errors_until=40)

    assert (verdict["measured"], verdict["passed"]) == (None, False)
    assert verdict["note"] == "never recovered before the run ended"


def test_an_empty_window_is_not_a_recovery_unless_the_run_ends_in_it() -> None:
    """Silence after a fault proves nothing; a run that ends cuts the window short."""
    oks = [6.0, 7.0, 8.0, 12.0]
    assert recovery_seconds(oks, [False] * 4, span=20, window=3, max_error_rate=0) == 4
    offsets = [0.5, 7.5, 8.5, 9.5]
    errors = [True, True, False, False]
    assert recovery_seconds(offsets, errors, span=10, window=3, max_error_rate=0) == 8
    assert recovery_seconds([0.5], [True], span=10, window=3, max_error_rate=0) == 8
    assert recovery_seconds([0.5], [True], span=1, window=3, max_error_rate=0) is None


def test_a_phase_without_requests_passes_vacuously() -> None:
    """No order_read at all: its error SLO passes with count 0, its p99 with nothing measured."""
    slos: list[Slo] = [ErrorSlo("order_read", "all", 0.0), LatencySlo("order_read", "all", 0.1)]

    result = run([record(at) for at in times(0, 30)], [], slos)

    assert [(v["measured"], v["passed"], v["count"]) for v in result.verdicts] == [
        (None, True, 0),
        (None, True, 0),
    ]
    assert result.verdicts[0]["note"] == "no requests: passes vacuously"
    empty = result.stat("order_read", "all")
    assert (empty.count, empty.error_rate, empty.p99) == (0, None, None)
    assert result.stat("*", "before").count == 120  # no fault: "before" is the whole run


def test_a_fault_that_was_never_applied_fails_its_slos() -> None:
    """An SLO about a fault missing from the windows cannot pass."""
    slos: list[Slo] = [ErrorSlo("*", "during:ghost", 1.0), RecoverySlo("ghost", "*", 1.0, 60)]

    result = run([record(1.0)], [], slos)

    assert [(v["passed"], v["note"]) for v in result.verdicts] == [
        (False, "the fault was never applied"),
        (False, "the fault was never applied"),
    ]


def test_the_first_write_counts_from_the_fault_to_an_ack_after_the_new_leader() -> None:
    """Acks before the new leader ran (the old one, still up) do not count; none after, or
    no new leader at all, fails."""
    writes = [record(at, "order_create", status=503 if 10 <= at < 22 else 201)
              for at in times(0, 30)]  # fmt: skip
    changed = FaultWindow("leader killed", "kill", "leader", 10.0, 23.0, "pg-0", "pg-1", 21.5)
    lost = changed._replace(name="frozen", new_leader=None, new_leader_at=None)
    late = changed._replace(name="late", new_leader_at=29.9)
    slos: list[Slo] = [FirstWriteSlo("leader killed", 12.5), FirstWriteSlo("frozen", 30),
                       FirstWriteSlo("late", 30), FirstWriteSlo("late", 1)]  # fmt: skip
    late_slos = slos[2:]

    result = run(writes, [changed, lost], slos[:2])
    never = run(writes[:-1], [late], late_slos[:1])

    first, frozen = result.verdicts
    assert (first["measured"], first["passed"]) == (pytest.approx(12.01), True)
    assert first["note"] == "pg-0 -> pg-1, running 11.5 s after the fault"
    assert (frozen["measured"], frozen["passed"], frozen["note"]) == (
        None, False, "no new leader after pg-0")  # fmt: skip
    assert (never.verdicts[0]["passed"], never.verdicts[0]["note"]) == (
        False, "no write acknowledged after it")  # fmt: skip


EXPECTED_TABLE = """\
SLO                                                   measured         limit      result
tips error rate, before the faults                    0.00% (0 of 40)  <= 0.00%   PASS
all endpoints p99, during db slow                     800 ms (n=40)    <= 500 ms  FAIL
tips recovery after db slow (errors <= 0.0% for 3 s)  0 s              <= 5 s     PASS

invariant                                             measured         limit      result
orders_lost                                           0                <= 0       PASS    4 acked

FAILED: 1 of 4 checks"""


def test_the_verdict_table_lists_each_check_then_the_overall_line() -> None:
    """SLOs and invariants with measured value, limit and result; then FAILED: n of m."""
    records = [
        record(at, latency=0.8 if 10 <= at < 20 else 0.02, status=503 if at == 10 else 200)
        for at in times(0, 30)
    ]
    slos: list[Slo] = [
        ErrorSlo("tips", "before", 0.0),
        LatencySlo("*", "during:db slow", 0.5),
        RecoverySlo("db slow", "tips", 0.0, 5),
    ]
    invariants = [
        {"name": "orders_lost", "measured": 0, "limit": 0, "passed": True, "detail": "4 acked"},
    ]

    table = verdict_table(run(records, [window("db slow", 10, 20)], slos), invariants)

    assert table == EXPECTED_TABLE


def test_everything_passing_says_passed() -> None:
    """No failing check: the last line is PASSED."""
    table = verdict_table(run([record(1.0)], [], [ErrorSlo("*", "all", 0.0)]), [])

    assert table.splitlines()[-1] == "PASSED"
    assert table.splitlines()[1].endswith("PASS")


def test_the_analysis_is_plain_json() -> None:
    """as_dict holds only JSON types: the report writes it as is."""
    result = run([record(1.0, status=0)], [window("x", 5, 6)], [ErrorSlo("*", "all", 0.0)])

    document = json.loads(json.dumps(result.as_dict()))

    assert document["series"]["errors_by_status"]["0"][1] == 1
    assert document["faults"] == [
        {
            "name": "x",
            "kind": "toxic",
            "target": "primary",
            "start": 5,
            "end": 6,
            "old_leader": None,
            "new_leader": None,
            "new_leader_at": None,
        }
    ]
    assert set(document) >= {"series", "stats", "slos", "phases", "requests", "outside"}
    with pytest.raises(KeyError, match="no stats for endpoint 'tips' in phase 'during:y'"):
        result.stat("tips", "during:y")


def test_a_malformed_record_is_named() -> None:
    """A record without a status stops the analysis with the record in the message."""
    with pytest.raises(ValueError, match=r"bad request record .*KeyError\('status'\)"):
        run([{"endpoint": "tips", "intended": T0, "latency": 0.1}], [], [])
