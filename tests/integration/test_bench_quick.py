"""`bench --quick`, the smoke test: every part runs and leaves its table, JSON and chart, and
the index shows them all. Its windows are too short to judge: no target is checked here."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests import __main__ as cli
from loadtests.bench import report, suite

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _cores() -> Iterator[None]:
    """The bench pins this process to the load generator's core: give the others back."""
    cores = os.sched_getaffinity(0)
    yield
    os.sched_setaffinity(0, cores)


@pytest.mark.timeout(300)
def test_every_part_leaves_its_table_json_and_chart_and_the_index_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(report, "REPORT_DIR", tmp_path)

    status = cli.main(["bench", "--quick"])

    out, err = capsys.readouterr()
    written = tmp_path / "quick"
    assert status == 0
    page = (written / "index.html").read_text()
    for part in suite.PARTS:
        document = json.loads((written / f"{part}.json").read_text())
        assert f"bench {part}:" in out
        assert (written / f"{part}.png").read_bytes().startswith(b"\x89PNG")
        assert f'<img src="{part}.png"' in page
        assert any(server["is_ceiling"] for server in document["servers"])
        assert all(server["peak_rss_bytes"] for server in document["servers"])
        assert f"bench {part} | " in err  # the progress line
    assert out.count("of ceiling") == len(suite.PARTS)
    assert "targets:" in out
    # `bench transport` measures clients, not servers: every contender answered, and each
    # row has its client's CPU per request.
    transport = json.loads((written / "transport.json").read_text())
    assert all(server["requests"] > 0 for server in transport["servers"])
    assert {server["name"] for server in transport["servers"]} == set(transport["settings"]["cpu"])
    assert all(cpu["cpu_us_per_request"] > 0 for cpu in transport["settings"]["cpu"].values())
    # Even this short window shows `bench collateral`'s point: a hung upstream starves the
    # guide's sync twin of every request, not the async service.
    served = {
        s["name"]: s for s in json.loads((written / "collateral.json").read_text())["servers"]
    }
    assert served["hanging: async service /health/live"]["requests"] > 0
    assert served["hanging: sync Django /health/live"]["requests"] == 0
