"""What the bench shows a person: index.html (charts, tables, verdicts, versions, machine) and a
chart per part."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtests.bench import chart, index

MACHINE = {
    "versions": {"python": "3.11.2", "django": "5.2.19", "uvicorn": "0.54.0",
                 "gunicorn": "27.0.1", "postgresql": "15.20", "redis": "7.0.15"},
    "cores": 2, "cpu": "AMD EPYC", "memory_gib": 23.5,
}  # fmt: skip


def server(name: str, rps: float, **extra: Any) -> dict[str, Any]:
    return {"name": name, "setup": f"{name} <setup>", "requests": int(rps), "rps": rps,
            "statuses": {"200": int(rps), "503": 2}, "errors": {"timeout": 1},
            "latencies_ms": {"p50": 1.0, "p90": 2.0, "p99": 3.0, "max": 4.0},
            "peak_rss_bytes": 80 * 2**20, "ceiling": None, "of_ceiling": None,
            "is_ceiling": False, **extra}  # fmt: skip


def document(part: str, *, quick: bool = False, machine: dict[str, Any] = MACHINE,
             met: bool = True) -> dict[str, Any]:  # fmt: skip
    verdict = {"label": "async / sync", "value": 2.0, "limit": 1.5, "figure": "2.00x",
               "target": ">= 1.5x", "met": met}  # fmt: skip
    return {
        "part": part, "at": "2026-12-01T02:00:00Z", "machine": machine,
        "settings": {"plan": {"quick": quick}}, "text": f"bench {part} <table>",
        "servers": [server("async service", 2500.0, ceiling="bare ASGI app", of_ceiling=0.25),
                    server("sync Django", 1000.0, ceiling="bare ASGI app", of_ceiling=0.1),
                    server("bare ASGI app", 10000.0, is_ceiling=True)],
        "verdicts": [verdict],
    }  # fmt: skip


def test_the_page_shows_versions_machine_charts_tables_and_verdicts() -> None:
    page = index.page([document("http"), document("data", met=False)])

    for shown in ("<td>Python</td><td>3.11.2</td>", "<td>Django</td><td>5.2.19</td>",
                  "<td>uvicorn</td><td>0.54.0</td>", "<td>gunicorn</td><td>27.0.1</td>",
                  "<td>PostgreSQL</td><td>15.20</td>", "<td>Redis</td><td>7.0.15</td>",
                  "<td>cores</td><td>2</td>", "<td>CPU</td><td>AMD EPYC</td>",
                  "<td>memory</td><td>23.5 GiB</td>"):  # fmt: skip
        assert shown in page
    assert '<img src="http.png"' in page
    assert '<img src="data.png"' in page
    assert '<td>async service</td><td>2500</td><td title="of bare ASGI app">0.25</td>' in page
    assert '<tr class="ceiling"><td>bare ASGI app</td><td>10000</td><td>ceiling</td>' in page
    assert "<td>3</td><td>80</td>" in page  # errors (timeouts + non-2xx), peak RSS MiB
    assert '<span class="met">met</span>' in page
    assert '<span class="missed">MISSED</span>' in page
    assert "1 targets met, 1 missed" in page
    assert "&lt;setup&gt;" in page  # escaped
    assert "bench http &lt;table&gt;" in page


def test_a_quick_run_and_other_machines_are_named() -> None:
    elsewhere = {**MACHINE, "cores": 8}

    page = index.page([document("http", quick=True), document("jobs", machine=elsewhere)])

    assert "quick: a smoke test, not a measurement" in page
    assert "another machine: jobs" in page


def test_the_index_holds_the_parts_found_in_order(tmp_path: Path) -> None:
    for part in ("data", "http"):
        (tmp_path / f"{part}.json").write_text(json.dumps(document(part)))

    page = index.write(tmp_path, ["http", "outbound", "data"]).read_text()

    assert page.index('id="http"') < page.index('id="data"')
    assert 'id="outbound"' not in page


def test_a_chart_is_drawn_beside_its_json(tmp_path: Path) -> None:
    report = tmp_path / "http.json"
    report.write_text(json.dumps(document("http")))

    drawn = chart.draw(report)

    assert drawn == tmp_path / "http.png"
    assert drawn.read_bytes().startswith(b"\x89PNG")


def test_ceilings_are_grey_sync_servers_orange_async_ones_blue() -> None:
    assert chart.colour(server("bare ASGI app", 1, is_ceiling=True)) == chart.CEILING
    assert chart.colour(server("healthy: sync Django tuned", 1)) == chart.SYNC
    assert chart.colour(server("healthy: async service", 1)) == chart.ASYNC
