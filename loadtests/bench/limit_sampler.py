"""The service's in-flight limit over a load, read from its Prometheus files while it runs.

An adaptive limit moves with the load; a table of goodput and p99 says what it achieved,
the limit beside it says how. The service writes `inflight_limit` to its
`PROMETHEUS_MULTIPROC_DIR`; this reads those files from a thread every `interval` seconds,
so sampling costs the measured server nothing (a scrape of `/metrics` would queue at the
very door it measures). A server with a fixed limit writes no such gauge: no samples.
"""

from __future__ import annotations

import statistics
import threading
import time
from pathlib import Path
from types import TracebackType

from prometheus_client import CollectorRegistry, multiprocess

METRIC = "inflight_limit"
INTERVAL = 0.25  # seconds between samples


def read_limit(directory: Path, limit: str = "requests") -> float | None:
    """The gauge `inflight_limit{limit=...}` summed over the live processes, or None."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    for family in registry.collect():
        if family.name != METRIC:
            continue
        for sample in family.samples:
            if sample.labels.get("limit") == limit:
                return float(sample.value)
    return None


class LimitSampler:
    """`with LimitSampler(directory) as sampler: <load>`, then `sampler.samples`:
    (seconds since the start, limit) pairs."""

    def __init__(self, directory: Path, interval: float = INTERVAL) -> None:
        self._directory = directory
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="limit-sampler", daemon=True)
        self.samples: list[tuple[float, float]] = []

    def __enter__(self) -> LimitSampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            value = read_limit(self._directory)
            if value is not None:
                self.samples.append((round(time.monotonic() - self._started, 2), value))

    def summary(self) -> dict[str, float]:
        """`limit_min`, `limit_median`, `limit_last` (none without samples)."""
        values = [value for _, value in self.samples]
        if not values:
            return {}
        return {"limit_min": min(values), "limit_median": statistics.median(values),
                "limit_last": values[-1]}  # fmt: skip
