"""SLOs and their measured values in words: shared by the printed table and the report."""

from __future__ import annotations

from loadtests.scenario.spec import ALL, FirstWriteSlo, LatencySlo, RecoverySlo, Slo


def format_value(metric: str, value: float) -> str:
    """A measured value or limit of an SLO verdict in its unit ("0.50%", "480 ms", "3 s")."""
    if metric == "error_rate":
        return f"{value:.2%}"
    if metric == "p99":
        return f"{value * 1000:,.0f} ms"
    if metric == "first_write":
        return f"{value:.2f} s"
    return f"{value:g} s"


def describe(slo: Slo) -> str:
    """The SLO in words, without its limit (the table prints that in its own column)."""
    endpoint = "all endpoints" if slo.endpoint == ALL else slo.endpoint
    if isinstance(slo, FirstWriteSlo):
        return f"first {endpoint} acknowledged on the new leader, from {slo.fault}"
    if isinstance(slo, RecoverySlo):
        rate = f"{slo.max_error_rate:.1%}"
        return f"{endpoint} recovery after {slo.fault} (errors <= {rate} for {slo.window:g} s)"
    metric = "p99" if isinstance(slo, LatencySlo) else "error rate"
    if isinstance(slo, LatencySlo) and slo.statuses is not None:
        metric += f" of {'/'.join(map(str, slo.statuses))} answers"
    return f"{endpoint} {metric}, {_phase_words(slo.phase)}"


def _phase_words(phase: str) -> str:
    if phase == "all":
        return "whole run"
    if phase == "before":
        return "before the faults"
    where, _, name = phase.partition(":")
    return f"{where} {name}"
