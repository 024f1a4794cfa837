"""The run report: a JSON document consistent with the analysis and one offline HTML file."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from typing import Any

import pytest

from loadtests.scenario import report, spec
from loadtests.scenario.analysis import Analysis, FaultWindow, analyse

T0 = 1_700_000_000.0
HOSTILE = "<script>alert('x')</script> & more"
SCENARIO = f"""\
description = "{HOSTILE}"

[load]
users = 4
stages = [{{duration = 20, rate = 8}}]

[[faults]]
name = "db <slow>"
kind = "toxic"
target = "primary"
start = 5
duration = 5
params = {{type = "latency", attributes = {{latency = 800}}}}

[[faults]]
name = "upstream down"
kind = "upstream_mode"
target = "upstream"
start = 12
duration = 3
params = {{mode = "error"}}

[[slo]]
endpoint = "tips"
phase = "during:upstream down"
max_error_rate = 0.0

[[slo]]
endpoint = "*"
phase = "during:db <slow>"
p99 = 0.5
"""
INVARIANTS = [
    {"name": "orders_lost", "measured": 0, "limit": 0, "passed": True, "detail": "<b>3</b> acked"},
]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Analysis, dict[str, Any], str]:
    """One report, written once for every test here: the analysis, the JSON, the HTML."""
    directory = tmp_path_factory.mktemp("report")
    path = directory / "hostile.toml"
    path.write_text(SCENARIO)
    scenario = spec.load_scenario(path)
    records = [
        {
            "endpoint": endpoint,
            "intended": T0 + i / 4,
            "latency": 0.9 if 5 <= i / 4 < 10 else 0.02,
            "status": 503 if endpoint == "tips" and 12 <= i / 4 < 15 else 200,
        }
        for i in range(80)
        for endpoint in ("tips", "order_read")
    ]
    windows = [
        FaultWindow(f.name, f.kind, f.target, f.start + 0.1, f.end(20) + 0.1)
        for f in scenario.faults
    ]
    analysis = analyse(records, t0=T0, duration=20, faults=windows, slos=scenario.slos)
    meta = {**report.machine_facts(), "postgresql": "17.2"}

    json_path, html_path = report.write_report(
        directory, scenario=scenario, analysis=analysis, invariants=INVARIANTS, meta=meta
    )

    assert (json_path, html_path) == (directory / "report.json", directory / "report.html")
    assert sorted(p.name for p in directory.iterdir()) == [
        "hostile.toml",
        "report.html",
        "report.json",
    ]
    return analysis, json.loads(json_path.read_text()), html_path.read_text()


def test_the_json_holds_what_the_analysis_found(
    written: tuple[Analysis, dict[str, Any], str],
) -> None:
    """Series, per phase stats, windows, verdicts and invariants, equal to the analysis."""
    analysis, document, _ = written

    assert document["scenario"]["name"] == "hostile"
    assert document["scenario"]["source"]["description"] == HOSTILE
    assert document["scenario"]["load"]["stages"] == [{"duration": 20, "rate": 8}]
    assert document["meta"]["postgresql"] == "17.2"
    assert document["passed"] is False
    assert document["series"]["throughput"] == analysis.series.sent
    assert document["series"]["throughput"]["tips"] == [4] * 20
    assert document["series"]["errors_by_status"] == {"503": [0] * 12 + [4] * 3 + [0] * 5}
    assert document["series"]["p99"] == analysis.series.p99
    assert document["stats"] == [asdict(stats) for stats in analysis.stats]
    assert document["faults"] == [window._asdict() for window in analysis.faults]
    assert document["slos"] == analysis.verdicts
    assert [v["passed"] for v in document["slos"]] == [False, False]
    assert document["invariants"] == INVARIANTS


def test_the_html_is_one_offline_file_with_plotly_inside(
    written: tuple[Analysis, dict[str, Any], str],
) -> None:
    """plotly.js is inlined once and no script is fetched from the network."""
    _, _, html = written

    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<link[^>]*https?://", html)
    assert html.count("window.PlotlyConfig") == 1  # one copy of plotly.js for all charts
    assert html.count("Plotly.newPlot(") == 3
    assert "plotly.js" in html


def test_the_html_shows_the_windows_and_tables_escaped(
    written: tuple[Analysis, dict[str, Any], str],
) -> None:
    """Fault names label the shaded windows; scenario text and details are escaped."""
    _, _, html = written

    assert "upstream down" in html
    assert "db &lt;slow&gt;" in html
    assert "db <slow>" not in html
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
    assert "&lt;b&gt;3&lt;/b&gt; acked" in html
    assert '<td class="FAIL">FAIL</td>' in html
    assert "<h1>hostile: FAILED</h1>" in html


def test_machine_facts_describe_the_machine() -> None:
    """Python, platform, CPUs, memory and the plotly version, all JSON."""
    facts = report.machine_facts()

    assert {"python", "platform", "cpus", "memory_bytes", "plotly"} <= set(facts)
    assert facts["cpus"] >= 1
    json.dumps(facts)
