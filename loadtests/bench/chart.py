"""One chart per part, drawn from its JSON: req/s (against the ceiling), p99 and peak RSS.

matplotlib (the `bench` extra) is imported only here, on its Agg backend: no display needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ASYNC, SYNC, CEILING = "#2f6db5", "#d9822b", "#9a9a9a"
MIB = 2**20


def draw(report: Path) -> Path:
    """Draw `report` (a part's JSON) into a PNG beside it; returns the PNG's path."""
    import matplotlib  # noqa: PLC0415 - optional: only the bench draws

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415
    from matplotlib.patches import Patch  # noqa: PLC0415

    document = json.loads(report.read_text())
    rows = list(reversed(document["servers"]))  # the table's first row on top
    names = [row["name"] for row in rows]
    colours = [colour(row) for row in rows]
    figure, axes = pyplot.subplots(
        1, 3, figsize=(15, 1.2 + 0.34 * len(rows)), sharey=True, width_ratios=(3, 2, 1.4)
    )
    _bars(
        axes[0],
        names,
        [row["rps"] for row in rows],
        colours,
        title="req/s",
        labels=_rps_labels(rows),
    )
    p99 = [row["latencies_ms"]["p99"] if row["requests"] else 0.0 for row in rows]
    _bars(axes[1], names, p99, colours, title="p99 ms", labels=_p99_labels(rows))
    rss = [(row.get("peak_rss_bytes") or 0) / MIB for row in rows]
    rss_labels = [f"{v:.0f}" if v else "" for v in rss]
    _bars(axes[2], names, rss, colours, title="peak RSS MiB", labels=rss_labels)
    figure.suptitle(f"bench {document['part']}  ({document['at']})", x=0.01, ha="left")
    kinds = [Patch(color=ASYNC, label="async"), Patch(color=SYNC, label="sync"),
             Patch(color=CEILING, label="ceiling")]  # fmt: skip
    figure.legend(handles=kinds, loc="upper right", ncols=3, fontsize=8, frameon=False)
    figure.tight_layout()
    path = report.with_suffix(".png")
    figure.savefig(path, dpi=90)
    pyplot.close(figure)
    return path


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
