"""`index.html`: every part's chart, table and verdicts on one page, with what they ran on.

Built from the parts' JSON files in one directory (a part measured in an earlier run shows
with its own date), so the page says nothing the JSON does not.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

MIB = 2**20
STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child, th:last-child, td:last-child { text-align: left; }
tr.ceiling td { color: #666; font-style: italic; }
.met { color: #1a7f37; font-weight: 600; } .missed { color: #c62828; font-weight: 700; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 12px; }
"""
VERSIONS = (("python", "Python"), ("django", "Django"), ("uvicorn", "uvicorn"),
            ("gunicorn", "gunicorn"), ("postgresql", "PostgreSQL"), ("redis", "Redis"))  # fmt: skip
COLUMNS = ("", "req/s", "of ceiling", "p50 ms", "p99 ms", "errors", "peak RSS MiB", "setup")


def write(directory: Path, parts: Sequence[str]) -> Path:
    """Write `directory/index.html` from the JSON of each of `parts` found there."""
    documents = [
        json.loads(path.read_text())
        for part in parts
        if (path := directory / f"{part}.json").is_file()
    ]
    path = directory / "index.html"
    path.write_text(page(documents))
    return path


def page(documents: Sequence[dict[str, Any]]) -> str:
    body = [
        "<h1>Benchmarks: the async service against stock Django and the guide's sync twin</h1>",
        _summary(documents),
        _machine(documents),
        *(_part(document) for document in documents),
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>bench</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _summary(documents: Sequence[dict[str, Any]]) -> str:
    verdicts = [(d["part"], v) for d in documents for v in d.get("verdicts", [])]
    missed = [(part, v) for part, v in verdicts if not v["met"]]
    text = f"<p>{len(verdicts) - len(missed)} targets met, {len(missed)} missed"
    if not missed:
        return text + ".</p>"
    items = "".join(f"<li>{escape(part)}: {escape(v['label'])} {escape(v['figure'])} "
                    f"(target {escape(v['target'])})</li>" for part, v in missed)  # fmt: skip
    return f'{text}:</p><ul class="missed">{items}</ul>'


def _machine(documents: Sequence[dict[str, Any]]) -> str:
    if not documents:
        return "<p>No part measured yet: run <code>python -m loadtests bench</code>.</p>"
    newest = max(documents, key=lambda d: d["at"])
    facts = newest["machine"]
    cells = [(label, facts["versions"].get(key, "unknown")) for key, label in VERSIONS]
    cells += [("cores", facts["cores"]), ("CPU", facts["cpu"]),
              ("memory", f"{facts['memory_gib']} GiB")]  # fmt: skip
    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v))}</td></tr>" for k, v in cells)
    others = [d["part"] for d in documents if d["machine"] != facts]
    note = (
        f"<p>Measured with other versions or on another machine: {escape(', '.join(others))}.</p>"
    )
    return f"<h2>Versions and machine</h2><table>{rows}</table>" + (note if others else "")


def _part(document: dict[str, Any]) -> str:
    part = escape(document["part"])
    plan = document["settings"].get("plan", {})
    quick = " (quick: a smoke test, not a measurement)" if plan.get("quick") else ""
    return "\n".join([
        f'<h2 id="{part}">bench {part}</h2>',
        f"<p>Measured {escape(document['at'])}{quick}.</p>",
        f'<img src="{part}.png" alt="bench {part}: req/s, p99 and peak RSS by server">',
        _table(document["servers"]),
        _verdicts(document.get("verdicts", [])),
        f"<details><summary>as printed</summary><pre>{escape(document.get('text', ''))}</pre>"
        "</details>",
    ])  # fmt: skip


def _table(servers: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"<th>{escape(column)}</th>" for column in COLUMNS)
    return f"<table><tr>{head}</tr>{''.join(_row(server) for server in servers)}</table>"


def _row(server: dict[str, Any]) -> str:
    latencies = server["latencies_ms"]
    errors = sum(server["errors"].values()) + sum(
        count for status, count in server["statuses"].items() if not 200 <= int(status) < 300
    )
    rss = server.get("peak_rss_bytes")
    cells = [f"{latencies['p50']:.2f}", f"{latencies['p99']:.2f}", str(errors),
             "" if rss is None else f"{rss / MIB:.0f}", server["setup"]]  # fmt: skip
    tds = "".join(f"<td>{escape(cell)}</td>" for cell in cells)
    kind = ' class="ceiling"' if server.get("is_ceiling") else ""
    return (f"<tr{kind}><td>{escape(server['name'])}</td><td>{server['rps']:.0f}</td>"
            f"{_fraction(server)}{tds}</tr>")  # fmt: skip


def _fraction(server: dict[str, Any]) -> str:
    """The "of ceiling" cell, naming the ceiling on hover."""
    if server.get("is_ceiling"):
        return "<td>ceiling</td>"
    if server.get("of_ceiling") is None:
        return "<td></td>"
    return f'<td title="of {escape(server["ceiling"])}">{server["of_ceiling"]:.2f}</td>'


def _verdicts(verdicts: Sequence[dict[str, Any]]) -> str:
    if not verdicts:
        return "<p>No targets for this part.</p>"
    items = "".join(
        f"<li>{escape(v['label'])}: {escape(v['figure'])} (target {escape(v['target'])}: "
        f'<span class="{"met" if v["met"] else "missed"}">{"met" if v["met"] else "MISSED"}'
        "</span>)</li>"
        for v in verdicts
    )
    return f"<ul>{items}</ul>"
