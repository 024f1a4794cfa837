"""A run's report: ``report.json`` for machines and one offline ``report.html`` for people.

The HTML embeds a single copy of plotly.js (shared by every chart), so it opens without a
network, years later, from a CI artefact. Fault windows are shaded and labelled on every chart.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import plotly
import plotly.graph_objects as go

from loadtests.scenario._words import format_value
from loadtests.scenario.analysis import ALL, Analysis
from loadtests.scenario.spec import Scenario

_SHADES = ("#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.PASS { color: #17692b; font-weight: 600; } .FAIL { color: #b00020; font-weight: 600; }
"""


def machine_facts() -> dict[str, Any]:
    """What the numbers depend on that the runner does not ask the services for."""
    return {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": _memory_bytes(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "plotly": plotly.__version__,
    }


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def write_report(
    directory: Path,
    *,
    scenario: Scenario,
    analysis: Analysis,
    invariants: Sequence[dict[str, Any]],
    meta: dict[str, Any],
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into `directory`; their paths.

    "passed" in the JSON covers the SLOs and the invariants (the runner may fail a run for
    more, such as a fault it could not apply; it says so in `meta`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "scenario": scenario.to_dict(),
        "meta": meta,
        "passed": _passed(analysis, invariants),
        **analysis.as_dict(),
        "invariants": list(invariants),
    }
    json_path = directory / "report.json"
    json_path.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    html_path = directory / "report.html"
    html_path.write_text(_html(scenario, analysis, invariants, meta), encoding="utf-8")
    return json_path, html_path


def _passed(analysis: Analysis, invariants: Sequence[dict[str, Any]]) -> bool:
    checks = [*analysis.verdicts, *invariants]
    return all(check["passed"] for check in checks)


def _html(
    scenario: Scenario,
    analysis: Analysis,
    invariants: Sequence[dict[str, Any]],
    meta: dict[str, Any],
) -> str:
    figures = [_throughput(analysis), _latency(analysis), _error_rate(analysis)]
    charts = [
        figure.to_html(
            full_html=False,
            include_plotlyjs=index == 0,  # one copy of plotly.js, shared by every chart
            config={"displaylogo": False},
        )
        for index, figure in enumerate(figures)
    ]
    verdict = "PASSED" if _passed(analysis, invariants) else "FAILED"
    title = html.escape(f"{scenario.name}: {verdict}")
    body = [
        f"<h1>{title}</h1>",
        f"<p>{html.escape(scenario.description)}</p>",
        _run_facts(scenario, analysis),
        "<h2>SLOs</h2>",
        _slo_table(analysis.verdicts),
        "<h2>Invariants</h2>",
        _table(
            ["invariant", "measured", "limit", "result", "detail"],
            [
                [c["name"], c["measured"], c["limit"], _result(c), c.get("detail") or ""]
                for c in invariants
            ],
        ),
        *charts,
        "<h2>Faults</h2>",
        _fault_table(analysis),
        "<h2>Latency and errors per endpoint and phase</h2>",
        _stats_table(analysis),
        "<h2>Run</h2>",
        _table(["fact", "value"], [[key, _text(value)] for key, value in meta.items()]),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _run_facts(scenario: Scenario, analysis: Analysis) -> str:
    started = dt.datetime.fromtimestamp(analysis.t0, dt.UTC).isoformat(timespec="seconds")
    facts = (
        f"started {started}, {analysis.duration:g} s (scale {scenario.scale:g}), "
        f"{analysis.requests} requests analysed, {analysis.outside} outside the run; "
        f"file {scenario.path.name}"
    )
    return f"<p>{html.escape(facts)}</p>"


def _figure(title: str, y_title: str, analysis: Analysis) -> go.Figure:
    figure = go.Figure()
    figure.update_layout(
        title=title,
        xaxis_title="seconds since start (by intended send time)",
        yaxis_title=y_title,
        height=380,
        # The same plot area in every chart (legend outside, fixed margins): the time axes
        # line up, so one fault's window sits at the same place in all three.
        margin={"t": 60, "b": 50, "l": 70, "r": 170},
        legend={"x": 1.02, "xanchor": "left", "y": 1},
        hovermode="x unified",
    )
    figure.update_xaxes(range=[0, analysis.duration])
    for index, window in enumerate(analysis.faults):
        figure.add_vrect(
            x0=window.start,
            x1=max(window.end, window.start + 0.05),  # a fault undone at once is still visible
            fillcolor=_SHADES[index % len(_SHADES)],
            opacity=0.15,
            layer="below",
            line_width=0,
            annotation_text=html.escape(window.name),  # plotly renders a subset of HTML
            annotation_position="top left",
        )
    return figure


def _seconds(analysis: Analysis) -> list[int]:
    return list(range(len(analysis.series.total)))


def _throughput(analysis: Analysis) -> go.Figure:
    figure = _figure("Throughput (requests per second, stacked by endpoint)", "req/s", analysis)
    for endpoint, counts in analysis.series.sent.items():
        figure.add_trace(
            go.Scatter(x=_seconds(analysis), y=counts, name=endpoint, stackgroup="sent")
        )
    return figure


def _latency(analysis: Analysis) -> go.Figure:
    figure = _figure("Latency from the intended send time (all endpoints)", "ms", analysis)
    for name in ("p50", "p95", "p99"):
        values = getattr(analysis.series, name)
        ms = [None if value is None else value * 1000 for value in values]
        figure.add_trace(go.Scatter(x=_seconds(analysis), y=ms, name=name, mode="lines"))
    return figure


def _error_rate(analysis: Analysis) -> go.Figure:
    figure = _figure("Error rate (no response or 5xx)", "% of requests", analysis)
    for endpoint in (ALL, *analysis.series.sent):
        rates = analysis.series.error_rate(endpoint)
        percent = [None if rate is None else rate * 100 for rate in rates]
        name = "all endpoints" if endpoint == ALL else endpoint
        figure.add_trace(go.Scatter(x=_seconds(analysis), y=percent, name=name, mode="lines"))
    figure.update_yaxes(rangemode="tozero")
    return figure


def _slo_table(verdicts: Sequence[dict[str, Any]]) -> str:
    rows = [
        [
            v["slo"],
            "" if v["measured"] is None else format_value(v["metric"], v["measured"]),
            f"<= {format_value(v['metric'], v['limit'])}",
            v["count"],
            _result(v),
            v.get("note") or "",
        ]
        for v in verdicts
    ]
    return _table(["SLO", "measured", "limit", "requests", "result", "note"], rows)


def _fault_table(analysis: Analysis) -> str:
    rows = [[w.name, w.kind, w.target, f"{w.start:.2f}", f"{w.end:.2f}"] for w in analysis.faults]
    return _table(["fault", "kind", "target", "applied at (s)", "undone at (s)"], rows)


def _stats_table(analysis: Analysis) -> str:
    header = ["endpoint", "phase", "requests", "errors", "error rate", "p50", "p95", "p99", "max"]
    rows = [
        [
            s.endpoint,
            s.phase,
            s.count,
            s.errors,
            "" if s.error_rate is None else f"{s.error_rate:.2%}",
            *(_ms(value) for value in (s.p50, s.p95, s.p99, s.max)),
        ]
        for s in analysis.stats
    ]
    return _table([*header[:5], *(f"{name} (ms)" for name in header[5:])], rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An HTML table; every cell escaped, a PASS / FAIL cell coloured."""
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = (
        "".join("<tr>" + "".join(_cell(cell) for cell in row) + "</tr>\n" for row in rows)
        or f'<tr><td colspan="{len(header)}">none</td></tr>'
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def _cell(cell: object) -> str:
    text = html.escape(str(cell))
    return f'<td class="{text}">{text}</td>' if text in ("PASS", "FAIL") else f"<td>{text}</td>"


def _result(check: dict[str, Any]) -> str:
    return "PASS" if check["passed"] else "FAIL"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.1f}"


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)
