"""One chart per part, drawn from its JSON: req/s (against the ceiling), p99 and peak RSS,
and CPU per request where a part measures it.

matplotlib (the `bench` extra) is imported only here, on its Agg backend: no display needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

ASYNC, SYNC, CEILING = "#2f6db5", "#d9822b", "#9a9a9a"
MIB = 2**20


def draw(report: Path) -> Path:
    """Draw `report` (a part's JSON) into a PNG beside it; returns the PNG's path."""
    import matplotlib  # noqa: PLC0415 - optional: only the bench draws

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    document = json.loads(report.read_text())
    if document["part"] == "scale":
        return _curves(document, report.with_suffix(".png"), pyplot)
    rows = list(reversed(document["servers"]))  # the table's first row on top
    names = [row["name"] for row in rows]
    colours = [colour(row) for row in rows]
    panels = _panels(rows, document["settings"].get("cpu", {}))
    figure, axes = pyplot.subplots(
        1, len(panels), figsize=(15 + 3.5 * (len(panels) - 3), 1.2 + 0.34 * len(rows)),
        sharey=True, width_ratios=[panel.width for panel in panels],
    )  # fmt: skip
    for axis, panel in zip(axes, panels, strict=True):
        _bars(axis, names, panel.values, colours, title=panel.title, labels=panel.labels)
    figure.suptitle(f"bench {document['part']}  ({document['at']})", x=0.01, ha="left")
    kinds = [Patch(color=ASYNC, label="async"), Patch(color=SYNC, label="sync"),
             Patch(color=CEILING, label="ceiling")]  # fmt: skip
    figure.legend(handles=kinds, loc="upper right", ncols=3, fontsize=8, frameon=False)
    figure.tight_layout()
    path = report.with_suffix(".png")
    figure.savefig(path, dpi=90)
    pyplot.close(figure)
    return path


class Panel(NamedTuple):
    title: str
    values: list[float]
    labels: list[str]
    width: float


def _panels(rows: list[dict[str, Any]], cpu: dict[str, dict[str, float]]) -> list[Panel]:
    """req/s, p99 and peak RSS; and the CPU per request after req/s when a part measured it
    per row (`bench transport`: the client's, in its settings' `cpu`)."""
    p99 = [row["latencies_ms"]["p99"] if row["requests"] else 0.0 for row in rows]
    rss = [(row.get("peak_rss_bytes") or 0) / MIB for row in rows]
    panels = [
        Panel("req/s", [row["rps"] for row in rows], _rps_labels(rows), 3),
        Panel("p99 ms", p99, _p99_labels(rows), 2),
        Panel("peak RSS MiB", rss, [f"{v:.0f}" if v else "" for v in rss], 1.4),
    ]
    if cpu:
        per_request = [cpu.get(row["name"], {}).get("cpu_us_per_request", 0.0) for row in rows]
        labels = [f"{v:.0f}" if v else "" for v in per_request]
        panels.insert(1, Panel("CPU µs per request", per_request, labels, 2))
    return panels


def colour(row: dict[str, Any]) -> str:
    """Grey for a ceiling, orange for a sync server, blue for the async ones."""
    if row.get("is_ceiling"):
        return CEILING
    return SYNC if re.search(r"(?<![a-z])sync\b", row["name"]) else ASYNC


def _bars(axis: Any, names: list[str], values: list[float], colours: list[str], *, title: str,
          labels: list[str]) -> None:  # fmt: skip
    positions = range(len(names))
    axis.barh(positions, values, color=colours)
    axis.set_yticks(list(positions), names, fontsize=8)
    axis.set_title(title, fontsize=10)
    axis.tick_params(axis="x", labelsize=8)
    axis.grid(axis="x", alpha=0.3)
    top = max(values, default=0.0) or 1.0
    axis.set_xlim(0, top * 1.3)
    for position, value, label in zip(positions, values, labels, strict=True):
        axis.text(value + top * 0.01, position, label, va="center", fontsize=7)


def _rps_labels(rows: list[dict[str, Any]]) -> list[str]:
    labels = []
    for row in rows:
        label = f"{row['rps']:.0f}"
        if row.get("of_ceiling") is not None:
            label += f"  ({row['of_ceiling']:.2f} of ceiling)"
        labels.append(label)
    return labels


def _p99_labels(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{row['latencies_ms']['p99']:.1f}" if row["requests"] else "no answer"
            for row in rows]  # fmt: skip


def _curves(document: dict[str, Any], path: Path, pyplot: Any) -> Path:
    """`bench scale`: goodput by connections per route, and as a fraction of its peak with
    the targets; the read route with other settings dashed. The ceiling
    (ten times the service's rates) is left to the table."""
    settings = document["settings"]
    curves: dict[str, dict[str, int]] = settings["goodput_by_level"]
    levels = settings["levels"]
    chosen = settings["defaults"]
    figure, (rates, kept, limits) = pyplot.subplots(1, 3, figsize=(20, 5))
    _limit_over_time(limits, settings)
    for name, curve in curves.items():
        values = [curve[str(level)] for level in levels]
        variant = name.startswith(settings["read_route"] + ", ")
        style = {"linestyle": "--", "alpha": 0.7} if variant else {"linewidth": 2}
        if name == "ceiling":
            continue  # an order of magnitude above: the table has it
        label = f"{name} (defaults)" if name == settings["read_route"] else name
        rates.plot(levels, values, marker="o", label=label, **style)
        peak = max(values) or 1
        kept.plot(levels, [v / peak for v in values], marker="o", label=label, **style)
    for axis in (rates, kept):
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(level) for level in levels])
        axis.set_xlabel("connections")
        axis.grid(alpha=0.3)
    rates.set_ylabel("goodput (2xx/s)")
    rates.set_ylim(bottom=0)
    kept.set_ylabel("goodput / the route's peak")
    kept.set_ylim(0, 1.1)
    kept.axhline(0.9, color="#1a7f37", linewidth=0.8)
    kept.axhline(0.8, color="#c62828", linewidth=0.8)
    kept.text(levels[0], 0.91, "target at 256: 0.9", fontsize=7, color="#1a7f37")
    kept.text(levels[0], 0.81, "target at 1024: 0.8", fontsize=7, color="#c62828")
    kept.legend(fontsize=7, loc="lower left")
    figure.suptitle(
        f"bench scale ({document['at']}): defaults pool {chosen['pool_size']}, "
        f"{chosen['pool_waiters']} waiters, {chosen.get('limit', 'fixed')} in-flight limit "
        f"(at most {chosen['in_flight']})",
        x=0.01, ha="left",
    )  # fmt: skip
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)
    return path


def _limit_over_time(axis: Any, settings: dict[str, Any]) -> None:
    """The in-flight limit sampled during each level of the read route (last round), the
    levels one after another; a fixed limit writes no samples."""
    over_time: dict[str, list[list[float]]] = settings.get("limit_over_time", {})
    levels = settings["levels"]
    for name in (n for n in settings["goodput_by_level"] if n.startswith(settings["read_route"])):
        offset, xs, ys = 0.0, [], []
        for level in levels:
            samples = over_time.get(f"{name} @ {level}", [])
            xs += [offset + at for at, _ in samples]
            ys += [value for _, value in samples]
            offset += max((at for at, _ in samples), default=0.0) + 0.5
        if ys:
            axis.plot(xs, ys, label=name, linewidth=1.5)
    axis.set_xlabel(f"seconds, levels {', '.join(map(str, levels))} one after another")
    axis.set_ylabel("in-flight limit (sampled every 0.25 s)")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize=7, loc="upper right")
