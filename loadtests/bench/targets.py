"""Targets and their verdicts: a ratio of two rows' req/s, a row's p99, or any measured figure.

Every target a part checks ends as a `Verdict` (met or MISSED), printed in the part's table,
kept in its JSON, and counted by `bench --check`. A target whose rows a run did not measure
(`bench --quick` leaves some scenarios out) gives no verdict at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from loadtests.bench.generator import LoadResult


class HasResult(Protocol):
    @property
    def result(self) -> LoadResult: ...


@dataclass(frozen=True)
class Verdict:
    """One target against what was measured.

    Args:
        label: what is measured ("async service / sync Django").
        value: the figure as a number (None: nothing measurable, e.g. every request failed).
        limit: the bound it is held to.
        figure: the figure as shown ("6.50x", "p99 18.0 ms").
        target: the bound as shown (">= 5x", "<= 50.0 ms").
        met: whether it holds.
    """

    label: str
    value: float | None
    limit: float
    figure: str
    target: str
    met: bool

    def line(self) -> str:
        return f"{self.label:<52}{self.figure:>14}  (target {self.target}: {self.word})"

    @property
    def word(self) -> str:
        return "met" if self.met else "MISSED"

    def to_dict(self) -> dict[str, Any]:
        value = None if self.value is None else round(self.value, 4)
        return {"label": self.label, "value": value, "limit": round(self.limit, 4),
                "figure": self.figure, "target": self.target, "met": self.met}  # fmt: skip


@dataclass(frozen=True)
class Target:
    """`numerator / denominator` (by rows' req/s) must reach `minimum`."""

    label: str
    numerator: str
    denominator: str
    minimum: float

    def ratio(self, rows: Mapping[str, HasResult]) -> float:
        return rows[self.numerator].result.rps / max(rows[self.denominator].result.rps, 1e-9)

    def verdict(self, rows: Mapping[str, HasResult]) -> Verdict | None:
        if self.numerator not in rows or self.denominator not in rows:
            return None
        ratio = self.ratio(rows)
        return Verdict(self.label, ratio, self.minimum, f"{ratio:.2f}x", f">= {self.minimum:g}x",
                       ratio >= self.minimum)  # fmt: skip


@dataclass(frozen=True)
class LatencyTarget:
    """`row`'s p99 must stay at or under `limit_ms`, or under `factor` x `baseline`'s p99.

    A row that got no good answer to more than 1 % of its requests (timeouts, errors, non-2xx)
    misses it whatever its p99: the answered requests alone would hide the slowest ones.
    """

    label: str
    row: str
    limit_ms: float = 0.0
    baseline: str = ""  # a row name: then the limit is `factor` x its p99
    factor: float = 1.0

    def limit(self, rows: Mapping[str, HasResult]) -> float:
        if not self.baseline:
            return self.limit_ms
        return self.factor * rows[self.baseline].result.latencies_ms.p99

    def p99(self, rows: Mapping[str, HasResult]) -> float:
        """The row's p99 in ms; infinite when over 1 % of its requests failed."""
        result = rows[self.row].result
        failed = result.error_count + non_2xx(result)
        if result.requests == 0 or failed > 0.01 * (result.requests + result.error_count):
            return math.inf
        return result.latencies_ms.p99

    def met(self, rows: Mapping[str, HasResult]) -> bool:
        return self.p99(rows) <= self.limit(rows)

    def verdict(self, rows: Mapping[str, HasResult]) -> Verdict | None:
        if self.row not in rows or (self.baseline and self.baseline not in rows):
            return None
        p99, limit = self.p99(rows), self.limit(rows)
        finite = math.isfinite(p99)
        figure = f"p99 {p99:.1f} ms" if finite else "p99 failed"
        return Verdict(self.label, p99 if finite else None, limit, figure,
                       f"<= {limit:.1f} ms", self.met(rows))  # fmt: skip


def verdicts(
    targets: list[Target] | list[LatencyTarget], rows: Mapping[str, HasResult]
) -> list[Verdict]:
    """The verdicts of the targets whose rows were measured."""
    found = (target.verdict(rows) for target in targets)
    return [verdict for verdict in found if verdict is not None]


def non_2xx(result: LoadResult) -> int:
    return sum(count for status, count in result.statuses.items() if not 200 <= status < 300)
