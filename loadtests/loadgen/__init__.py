"""Closed-loop HTTP/1.1 load generator, fast enough to saturate the servers it measures."""

from __future__ import annotations

from loadtests.loadgen.result import ERROR_KINDS, Latencies, LoadResult
from loadtests.loadgen.runner import run_load, run_load_sync

__all__ = ["ERROR_KINDS", "Latencies", "LoadResult", "run_load", "run_load_sync"]
