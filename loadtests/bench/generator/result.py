"""What a run measured, in a form both people and JSON reports can read."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

ERROR_KINDS = ("connect", "timeout", "reset", "protocol")


@dataclass(frozen=True)
class Latencies:
    """Latency percentiles in milliseconds (nearest-rank, so every value was observed)."""

    p50: float
    p90: float
    p99: float
    max: float


@dataclass(frozen=True)
class LoadResult:
    """Outcome of one closed-loop run; only the measured window (after warm-up) counts."""

    requests: int  # completed responses, any status
    duration: float  # measured seconds
    statuses: dict[int, int]  # responses by status code
    errors: dict[str, int]  # failures without a response, every kind in ERROR_KINDS present
    latencies_ms: Latencies  # of every response, whatever its status
    # Apart, when some responses were not 2xx (else both None): the 2xx and the others.
    ok_latencies_ms: Latencies | None = None
    non_2xx_latencies_ms: Latencies | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration > 0 else 0.0

    @property
    def goodput(self) -> float:
        """2xx responses per second: what the clients got done."""
        good = sum(count for status, count in self.statuses.items() if 200 <= status < 300)
        return good / self.duration if self.duration > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: status codes become string keys, as JSON requires."""
        return {
            "requests": self.requests,
            "duration": round(self.duration, 6),
            "rps": round(self.rps, 3),
            "statuses": {str(code): count for code, count in self.statuses.items()},
            "errors": dict(self.errors),
            "latencies_ms": _rounded(self.latencies_ms),
            **({"ok_latencies_ms": _rounded(self.ok_latencies_ms),
                "non_2xx_latencies_ms": _rounded(self.non_2xx_latencies_ms)}
               if self.ok_latencies_ms and self.non_2xx_latencies_ms else {}),
        }  # fmt: skip


def _rounded(latencies: Latencies) -> dict[str, float]:
    return {k: round(v, 4) for k, v in asdict(latencies).items()}


def summarize(latencies_s: Sequence[float]) -> Latencies:
    """Percentiles of per-request latencies given in seconds; all zero when there are none."""
    if not latencies_s:
        return Latencies(p50=0.0, p90=0.0, p99=0.0, max=0.0)
    ordered = sorted(latencies_s)
    return Latencies(
        p50=_rank(ordered, 50) * 1000,
        p90=_rank(ordered, 90) * 1000,
        p99=_rank(ordered, 99) * 1000,
        max=ordered[-1] * 1000,
    )


def _rank(ordered: Sequence[float], percent: float) -> float:
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]
