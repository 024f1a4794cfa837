"""A part's rounds: every measurement by row, its server's peak RSS, and the progress line.

    rounds = Rounds("http", plan.rounds, progress)
    for _ in rounds:
        for server in running:
            with rounds.turn(server.spec.name, server) as turn:
                turn.add(server.spec.name, run_load_sync(...))
    medians = rounds.medians()

A turn samples its server's process tree while it runs and shows its first row's rate (or
`turn.rate`) when it ends. Each row keeps its median round by req/s, with the highest peak
RSS of all its rounds: the most memory the server took under that load.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from loadtests.bench.generator import LoadResult
from loadtests.bench.progress import SILENT, Progress, rate
from loadtests.bench.report import Row
from loadtests.bench.rss import PeakRss
from loadtests.bench.servers import RunningServer


@dataclass(frozen=True)
class Measured:
    """One row's figures from one turn (or its median round, with its peak RSS of all)."""

    result: LoadResult
    peak_rss: int | None = None  # bytes
    extra: Mapping[str, float] = field(default_factory=dict)  # a part's own figures

    def row(self, name: str, description: str, ceiling: str = "") -> Row:
        return Row(name, description, self.result, self.peak_rss, ceiling)


class Turn:
    """What one server's turn measured, by row name."""

    def __init__(self) -> None:
        self.measured: dict[str, Measured] = {}
        self.rate: str | None = None  # what the progress line shows; else the first row's

    def add(self, name: str, result: LoadResult, *, peak_rss: int | None = None,
            **extra: float) -> LoadResult:  # fmt: skip
        """Record `name`'s result; `peak_rss` for a process the turn's sampler did not watch."""
        self.measured[name] = Measured(result, peak_rss, extra)
        return result


class Rounds:
    """`count` rounds of a part, iterated; each turn's measurements kept by row."""

    def __init__(self, part: str, count: int, progress: Progress = SILENT) -> None:
        if count < 1:
            raise ValueError(f"rounds must be at least 1, got {count}")
        self.part = part
        self.count = count
        self.progress = progress
        self.current = 0
        self.results: dict[str, list[Measured]] = {}

    def __iter__(self) -> Iterator[int]:
        for number in range(1, self.count + 1):
            self.current = number
            yield number

    @contextlib.contextmanager
    def turn(self, label: str, server: RunningServer | None = None,
             step: str = "") -> Iterator[Turn]:  # fmt: skip
        """One measurement of `server` (its process tree sampled meanwhile), shown as `label`."""
        step = step or f"round {self.current}/{self.count}"
        self.progress.show(self.part, label, step)
        turn = Turn()
        with PeakRss(server.child.pid if server else None) as sampled:
            yield turn
        for name, measured in turn.measured.items():
            peak = sampled.peak if measured.peak_rss is None else measured.peak_rss
            self.results.setdefault(name, []).append(dataclasses.replace(measured, peak_rss=peak))
        first = next(iter(turn.measured.values()), None)
        shown = turn.rate or (rate(first.result.rps) if first else "done")
        self.progress.show(self.part, label, step, shown)

    def medians(self) -> dict[str, Measured]:
        """Each row's median round by req/s, with the highest peak RSS of all its rounds."""
        medians = {}
        for name, runs in self.results.items():
            median = sorted(runs, key=lambda m: m.result.rps)[len(runs) // 2]
            peaks = [m.peak_rss for m in runs if m.peak_rss is not None]
            medians[name] = dataclasses.replace(median, peak_rss=max(peaks, default=None))
        return medians

    def rps_by_round(self) -> dict[str, list[int]]:
        return {name: [round(m.result.rps) for m in runs] for name, runs in self.results.items()}
