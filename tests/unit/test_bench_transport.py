"""`bench transport`'s judgement and report: the aiohttp transport earns its place by req/s or by
CPU per request against httpx's own, the upstream must have room to spare, and the table,
CPU table, ratios and JSON say what was measured."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from loadtests.bench import plan, report
from loadtests.bench.generator import ERROR_KINDS, Latencies, LoadResult
from loadtests.bench.rounds import Measured, Rounds
from loadtests.bench.transport import part as transport
from loadtests.bench.transport.part import AIOHTTP, CEILING, HTTPX, NO_SNIFFIO
from loadtests.bench.transport.process import ClientRun, cpu_seconds, load_result


def measured(rps: float, cpu_us: float, *, upstream_core: float = 0.1,
             failures: int = 0) -> Measured:  # fmt: skip
    """One second at `rps` answers, the client spending `cpu_us` per request."""
    errors = {**dict.fromkeys(ERROR_KINDS, 0), "timeout": failures}
    result = LoadResult(int(rps), 1.0, {200: int(rps)}, errors, Latencies(1.0, 2.0, 3.0, 4.0))
    extra = {"cpu_us_per_request": cpu_us, "client_core": rps * cpu_us / 1e6,
             "upstream_core": upstream_core}  # fmt: skip
    return Measured(result, 64 * 2**20, extra)


def judged(medians: dict[str, Measured]) -> dict[str, tuple[str, bool]]:
    verdicts = (target.verdict(medians) for target in transport.TARGETS)
    return {v.label: (v.figure, v.met) for v in verdicts if v is not None}


EARNS = transport.EarnsItsPlace().label
HEADROOM = transport.UpstreamHeadroom().label


@pytest.fixture
def report_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(report, "REPORT_DIR", tmp_path)
    return tmp_path


def test_more_requests_a_second_alone_earn_the_place() -> None:
    medians = {HTTPX.name: measured(1000, 900), AIOHTTP.name: measured(1200, 900)}

    assert judged(medians)[EARNS] == ("1.20x, 1.00x", True)


def test_less_cpu_per_request_alone_earns_the_place() -> None:
    """A client not bound by its core can be no faster yet cost less."""
    medians = {HTTPX.name: measured(1000, 1000), AIOHTTP.name: measured(1000, 800)}

    assert judged(medians)[EARNS] == ("1.00x, 0.80x", True)


def test_neither_faster_nor_cheaper_enough_misses() -> None:
    medians = {HTTPX.name: measured(1000, 1000), AIOHTTP.name: measured(1190, 810)}

    assert judged(medians)[EARNS] == ("1.19x, 0.81x", False)


def test_without_both_transports_measured_there_is_no_verdict_on_them() -> None:
    assert EARNS not in judged({AIOHTTP.name: measured(1000, 100)})


def test_the_upstream_is_judged_under_its_busiest_contender_not_the_ceiling() -> None:
    medians = {HTTPX.name: measured(100, 9000, upstream_core=0.02),
               AIOHTTP.name: measured(5000, 190, upstream_core=0.3),
               CEILING.name: measured(20000, 40, upstream_core=0.9)}  # fmt: skip

    assert judged(medians)[HEADROOM] == ("0.30 core", True)
    medians[NO_SNIFFIO.name] = measured(100, 9000, upstream_core=0.51)
    assert judged(medians)[HEADROOM] == ("0.51 core", False)


def test_the_table_reads_each_row_against_the_ceiling_with_its_cpu(report_dir: Path) -> None:
    medians = {CEILING.name: measured(20000, 40), AIOHTTP.name: measured(5000, 200),
               HTTPX.name: measured(1000, 1000)}  # fmt: skip

    text = transport.report(medians, plan.FULL).text.splitlines()

    httpx, aiohttp, ceiling = (text.index(next(line for line in text if line.startswith(name)))
                               for name in (HTTPX.name, AIOHTTP.name, CEILING.name))  # fmt: skip
    assert httpx < aiohttp < ceiling  # the contenders' order, whatever the medians'
    assert text[httpx].split()[2:4] == ["1000", "0.05"]
    assert text[ceiling].split()[4:6] == ["20000", "ceiling"]
    cpu_rows = [line.split() for line in text if line.startswith(HTTPX.name)]
    assert cpu_rows[1][-3:] == ["1000", "1.00", "0.10"]  # CPU µs/req, client core, upstream
    assert "aiohttp / httpx transport: req/s 5.00x, CPU per request 0.20x" in text
    assert any("5.00x, 0.20x  (target >= 1.2x or <= 0.8x: met)" in line for line in text)


def test_the_json_keeps_cpu_ratios_rounds_and_verdicts(report_dir: Path) -> None:
    rounds = Rounds("transport", 3)
    for (httpx_rps, aiohttp_rps), _ in zip(((900, 5200), (1000, 5000), (1100, 4800)), rounds,
                                           strict=True):  # fmt: skip
        for name, rps in ((HTTPX.name, httpx_rps), (AIOHTTP.name, aiohttp_rps)):
            with rounds.turn(name) as turn:
                median = measured(rps, 1e6 / rps)
                turn.add(name, median.result, peak_rss=median.peak_rss, **median.extra)
    rounds.results[NO_SNIFFIO.name] = [measured(1100, 1e6 / 1100)]

    outcome = transport.report(rounds.medians(), plan.FULL, rounds)

    written = json.loads(outcome.path.read_text())
    assert outcome.path == report_dir / "transport.json"
    assert [s["name"] for s in written["servers"]] == [HTTPX.name, AIOHTTP.name, NO_SNIFFIO.name]
    settings = written["settings"]
    assert settings["concurrency"] == 64
    assert settings["cpu"][HTTPX.name]["cpu_us_per_request"] == 1000
    assert settings["ratios"] == {
        "aiohttp / httpx transport": {"rps": 5.0, "cpu_per_request": 0.2},
        "httpx transport, sniffio hidden / importable": {"rps": 1.1, "cpu_per_request": 0.9091},
    }
    assert settings["rps_by_round"][HTTPX.name] == [900, 1000, 1100]
    assert settings["cpu_us_by_round"][AIOHTTP.name] == [192, 200, 208]
    assert [v["label"] for v in written["verdicts"]] == [EARNS, HEADROOM]
    assert all(s["peak_rss_bytes"] == 64 * 2**20 for s in written["servers"])


def test_a_quick_run_measures_no_sniffio_variant_and_writes_apart() -> None:
    assert NO_SNIFFIO not in transport.QUICK_CONTENDERS
    assert {HTTPX, AIOHTTP, CEILING} <= set(transport.QUICK_CONTENDERS)
    assert NO_SNIFFIO.hidden == ("sniffio",)


def test_the_clients_figures_become_a_load_result_with_failures_by_kind() -> None:
    figures = {"requests": 10, "duration": 2.0, "statuses": {"200": 9, "503": 1},
               "failures": {"CallTimeoutError": 2, "CircuitOpenError": 1, "KeyError": 1},
               "latencies_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0},
               "cpu_user_s": 0.3, "cpu_system_s": 0.1}  # fmt: skip

    run = ClientRun(figures, upstream_cpu=0.05)

    assert load_result(figures).statuses == {200: 9, 503: 1}
    assert run.result.errors == {"connect": 1, "timeout": 2, "reset": 0, "protocol": 1}
    assert (run.result.rps, run.cpu) == (5.0, pytest.approx(0.4))


def test_a_processes_cpu_is_read_from_proc() -> None:
    before = cpu_seconds(os.getpid())
    sum(range(3_000_000))  # spend some CPU

    assert cpu_seconds(os.getpid()) > before
