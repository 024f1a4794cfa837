"""Closed-loop HTTP/1.1 load generator, fast enough to saturate the servers it measures."""

from __future__ import annotations

from loadtests.bench.generator.result import ERROR_KINDS, Latencies, LoadResult
from loadtests.bench.generator.runner import run_load, run_load_sync

__all__ = ["ERROR_KINDS", "Latencies", "LoadResult", "run_load", "run_load_sync"]
