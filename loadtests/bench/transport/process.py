"""One turn of `bench transport`: a client process started on its core, its figures read back.

The process (`client.py`) says when its measured window opens and prints its figures
when it closes; the upstream's CPU is read from /proc at those two moments, so both
processes' CPU covers the same window.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devstack.stack.child import tail
from devstack.stack.state import proc_stat
from loadtests.bench.generator import ERROR_KINDS, Latencies, LoadResult
from loadtests.bench.servers import ROOT, SERVER_CORE, pinned
from loadtests.bench.transport.client import OPENED

GRACE = 60.0  # seconds for start-up (imports) and the last requests, on top of the window
TICKS = os.sysconf("SC_CLK_TCK")
# What each failure (by exception class) counts as in a LoadResult; anything else: protocol.
ERROR_KIND = {
    "UpstreamTimeoutError": "timeout", "CallTimeoutError": "timeout", "TimeoutError": "timeout",
    "PoolExhaustedError": "timeout", "UpstreamUnavailableError": "connect",
    "CircuitOpenError": "connect", "ConnectionError": "connect", "OSError": "connect",
    "ConnectionResetError": "reset", "IncompleteReadError": "reset",
}  # fmt: skip


@dataclass(frozen=True)
class ClientRun:
    """The client's printed figures and the upstream's CPU seconds over the same window."""

    figures: Mapping[str, Any]
    upstream_cpu: float

    @property
    def result(self) -> LoadResult:
        return load_result(self.figures)

    @property
    def cpu(self) -> float:
        """The client process's CPU seconds (user + system) over its window."""
        return float(self.figures["cpu_user_s"] + self.figures["cpu_system_s"])


def run_client(contender: str, upstream_url: str, *, upstream_pid: int, concurrency: int,
               warmup: float, duration: float, hidden: Sequence[str] = (),
               log: Path) -> ClientRun:  # fmt: skip
    """Run `contender` against `upstream_url` on the server core; raises RuntimeError when
    it fails (its log's end in the message)."""
    argv = pinned([sys.executable, "-m", "loadtests.bench.transport.client", contender,
                   "--concurrency", str(concurrency), "--warmup", str(warmup),
                   "--duration", str(duration), *(f"--hide={name}" for name in hidden)],
                  SERVER_CORE)  # fmt: skip
    env = {**os.environ, "TIPS_UPSTREAM_URL": upstream_url, "LOG_LEVEL": "error"}
    with log.open("ab") as errors, subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
        text=True,
    ) as child:  # fmt: skip
        # A client that never ends is killed: its stdout then ends, and the turn fails.
        watchdog = threading.Timer(warmup + duration + GRACE, child.kill)
        watchdog.start()
        try:
            assert child.stdout is not None
            run = _read(child.stdout, upstream_pid)
            child.wait()
        finally:
            watchdog.cancel()
            child.kill()
    if child.returncode != 0 or run is None:
        raise RuntimeError(f"{contender} client exited with {child.returncode}: {tail(log)}")
    return run


def _read(stdout: IO[str], upstream_pid: int) -> ClientRun | None:
    """The client's lines: `opened`, then its figures (None if it ends before both)."""
    opened = None
    for line in stdout:
        if line.strip() == OPENED:
            opened = cpu_seconds(upstream_pid)
        elif line.startswith("{") and opened is not None:
            return ClientRun(json.loads(line), cpu_seconds(upstream_pid) - opened)
    return None


def cpu_seconds(pid: int) -> float:
    """`pid`'s user + system CPU seconds so far, from /proc (clock-tick resolution)."""
    fields = proc_stat(pid)
    if fields is None:
        raise ProcessLookupError(f"no process {pid}")
    return (int(fields[11]) + int(fields[12])) / TICKS


def load_result(figures: Mapping[str, Any]) -> LoadResult:
    """The client's figures as the bench's `LoadResult`; failures counted by kind."""
    errors = dict.fromkeys(ERROR_KINDS, 0)
    for name, count in figures["failures"].items():
        kind = ERROR_KIND.get(name, "protocol")
        errors[kind] += count
    statuses = {int(status): count for status, count in figures["statuses"].items()}
    return LoadResult(figures["requests"], figures["duration"], statuses, errors,
                      Latencies(**figures["latencies_ms"]))  # fmt: skip
