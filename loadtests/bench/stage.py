"""Where a part measures: a scratch directory and a stack, its own or one shared by a run.

A full run gives each part a fresh stack (no part measures on another's leftovers); a quick
run shares one, started once (`bench data`, whose failover leaves the replica promoted, runs
last).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devstack.stack import Stack
from loadtests.bench.seed import migrate_and_seed


@dataclass(frozen=True)
class Stage:
    stack: Stack
    work: Path  # scratch: server logs, the stack's state when it is the part's own

    @property
    def metrics(self) -> Path:
        """An empty PROMETHEUS_MULTIPROC_DIR for the part's servers."""
        return self.work / "metrics"

    def env(self, log_level: str = "error", **settings: str) -> dict[str, str]:
        """The servers' environment: the stack's, the metrics directory, `log_level`, and
        the part's own `settings` on top."""
        return {**self.stack.env, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics),
                "LOG_LEVEL": log_level, **settings}  # fmt: skip


@contextlib.contextmanager
def stage(part: str, shared: Stack | None = None, *, orders: int = 0) -> Iterator[Stage]:
    """`shared` or a new stack, with at least `orders` orders seeded when asked (migrated)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{part}-") as scratch:
        work = Path(scratch)
        (work / "metrics").mkdir()
        with contextlib.ExitStack() as own:
            stack = shared or own.enter_context(Stack(state_dir=work / "stack"))
            if orders:
                migrate_and_seed(stack, orders)
            yield Stage(stack, work)
