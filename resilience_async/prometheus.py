"""Prometheus export of the primitives' numbers: one optional hook set that a service installs.

The core never imports this module: each primitive counts its own events (`stats()`) and
calls the hooks it was given. A service that wants Prometheus calls `instrument(...)` on the
primitives it built; each gets a hook that writes its events to `Instruments`:

    instrument(tips_breaker, tips_client, tips_cache, database)
    body = render(None)  # the exposition text, for GET /metrics

Under several server processes, prometheus-client's multiprocess mode (enabled by the
`PROMETHEUS_MULTIPROC_DIR` environment variable, read by prometheus-client at import) keeps
each process's values in files; `render` sums them so one scrape sees the whole service.
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any, TypeGuard

from resilience_async._adaptive import AdaptiveLimit
from resilience_async._breaker import STATE_LABELS, BreakerStateChange, CallOutcome, CircuitBreaker
from resilience_async._cache import FallbackCache
from resilience_async._extras import extra_needed
from resilience_async._hedge import Hedge
from resilience_async._limits import Bulkhead
from resilience_async._rate_limit import RateLimiter
from resilience_async._unusable import REASONS

with extra_needed("resilience_async.prometheus"):
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        REGISTRY,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        disable_created_metrics,
        generate_latest,
        multiprocess,
    )

if TYPE_CHECKING:
    from resilience_async._cache import Source
    from resilience_async._db import Database, QueryKind, QueryOutcome
    from resilience_async._http import ResilientClient
    from resilience_async._topology import ServerState

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS",
    "AdaptiveLimitExport",
    "BreakerExport",
    "BulkheadExport",
    "CacheExport",
    "DatabaseExport",
    "HedgeExport",
    "Instruments",
    "RateLimitExport",
    "RequestRecorder",
    "UpstreamExport",
    "default_instruments",
    "instrument",
    "render",
]

# `*_created` series double the exposition for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# 0 closed, 1 half-open, 2 open: a gauge orders states by how bad they are.
_STATE_VALUES = {"closed": 0, "half_open": 1, "open": 2}


class Instruments:
    """Every instrument the hooks write to, registered once in `registry`.

    One set per registry: the process's default (`default_instruments()`) for a service,
    a `CollectorRegistry()` of its own for a test that asserts exact values.
    """

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        r = registry
        # Its `_count` series is the request count: a separate counter would cost a second
        # locked update on every request for the same number.
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "Time from request start to response, by method, route pattern and status code.",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        # Under several processes the worst live value is exported.
        self.breaker_state = Gauge(
            "circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
            ["breaker"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.breaker_transitions = Counter(
            "circuit_breaker_transitions_total",
            "Circuit breaker state changes, by the state entered.",
            ["breaker", "state"], registry=r,
        )  # fmt: skip
        self.breaker_calls = Counter(
            "circuit_breaker_calls_total",
            "Calls through a circuit breaker by outcome: success, failure, slow, rejected, "
            "ignored.",
            ["breaker", "outcome"], registry=r,
        )  # fmt: skip
        self.upstream_requests = Counter(
            "upstream_requests_total",
            "Outbound HTTP attempts by upstream and outcome (a status code, or an error kind).",
            ["upstream", "outcome"], registry=r,
        )  # fmt: skip
        self.upstream_retries = Counter(
            "upstream_retries_total",
            "Retries made, and retries refused by the retry budget, by upstream.",
            ["upstream", "decision"], registry=r,
        )  # fmt: skip
        self.upstream_unusable = Counter(
            "upstream_unusable_responses_total",
            "Answers that could not be used, by upstream and reason: too_large, bad_encoding, "
            "malformed_json, wrong_shape.", ["upstream", "reason"], registry=r,
        )  # fmt: skip
        self.bulkhead_rejections = Counter(
            "bulkhead_rejections_total", "Calls refused because a bulkhead was full.",
            ["bulkhead"], registry=r,
        )  # fmt: skip
        # Summed over live processes: the service's whole in-flight limit.
        self.inflight_limit = Gauge(
            "inflight_limit", "The current limit of an adaptive in-flight limit.",
            ["limit"], multiprocess_mode="livesum", registry=r,
        )  # fmt: skip
        self.cache_results = Counter(
            "fallback_cache_results_total",
            "Values served by a fallback cache, by key namespace and source: live, cache, "
            "stale, fallback.", ["namespace", "source"], registry=r,
        )  # fmt: skip
        self.rate_limit_decisions = Counter(
            "rate_limit_decisions_total",
            "Rate limit decisions by limiter, policy, decision (allowed, refused) and where "
            "they were made (shared: in Redis; local: in process).",
            ["limiter", "policy", "decision", "store"], registry=r,
        )  # fmt: skip
        # Under several processes the worst live value is exported.
        self.rate_limit_fallback = Gauge(
            "rate_limit_fallback",
            "1 while a rate limiter decides in process because Redis is unavailable, else 0.",
            ["limiter"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.hedges = Counter(
            "hedges_total",
            "Second attempts of hedged calls, by dependency and outcome: sent, or refused by "
            "the hedge budget.", ["dependency", "outcome"], registry=r,
        )  # fmt: skip
        self.hedge_wins = Counter(
            "hedge_wins_total", "Hedged calls the second attempt answered first, by dependency.",
            ["dependency"], registry=r,
        )  # fmt: skip
        # Set when a call is late (a hedge sent or refused), not on every call.
        self.hedge_delay = Gauge(
            "hedge_delay_seconds",
            "Seconds a call waited before its hedge, at the last late call, by dependency.",
            ["dependency"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.database_queries = Counter(
            "database_queries_total",
            "Reads and writes by the server that ran them (primary, replica-N) and outcome.",
            ["server", "kind", "outcome"], registry=r,
        )  # fmt: skip
        self.database_up = Gauge(
            "database_up", "1 while the database monitor reaches the server, else 0.",
            ["server"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.database_replica_lag = Gauge(
            "database_replica_lag_seconds", "Replay lag of a replica at the monitor's last sample.",
            ["server"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.database_latency_estimate = Gauge(
            "database_latency_estimate_seconds",
            "A server's latency estimate (peak-EWMA of round trips) that routes reads.",
            ["server"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.database_ejected = Gauge(
            "database_ejected",
            "1 while a replica takes no reads because it is much slower than its peers, else 0.",
            ["server"], multiprocess_mode="livemax", registry=r,
        )  # fmt: skip
        self.database_ejections = Counter(
            "database_ejections_total", "Times a replica was ejected as slow, by server.",
            ["server"], registry=r,
        )  # fmt: skip


@functools.cache
def default_instruments() -> Instruments:
    """The process's instruments, in prometheus-client's default registry (made on first use)."""
    return Instruments()


def instrument(*primitives: object, instruments: Instruments | None = None) -> None:
    """Give each primitive (breaker, client, bulkhead, cache, rate limiter, database, hedge)
    its Prometheus hook."""
    into = instruments or default_instruments()
    for primitive in primitives:
        if isinstance(primitive, CircuitBreaker):
            primitive.add_hook(BreakerExport(into, primitive.name))
        elif _is_client(primitive):
            primitive.add_hook(UpstreamExport(into, primitive.name))
        elif isinstance(primitive, Bulkhead):
            primitive.add_hook(BulkheadExport(into, primitive.name))
        elif isinstance(primitive, AdaptiveLimit):
            primitive.add_hook(AdaptiveLimitExport(into, primitive.name, primitive.limit))
        elif isinstance(primitive, FallbackCache):
            primitive.add_hook(CacheExport(into, primitive.namespace))
        elif isinstance(primitive, RateLimiter):
            primitive.add_hook(RateLimitExport(into, primitive.namespace))
        elif isinstance(primitive, Hedge):
            primitive.add_hook(HedgeExport(into, primitive))
        elif _is_database(primitive):
            primitive.add_hook(DatabaseExport(into))
        else:
            raise TypeError(f"no Prometheus hook for {type(primitive).__name__}")


def _is_client(primitive: object) -> TypeGuard[ResilientClient]:
    return _instance_of(primitive, "_http", "ResilientClient")


def _is_database(primitive: object) -> TypeGuard[Database]:
    return _instance_of(primitive, "_db", "Database")


def _instance_of(primitive: object, module: str, name: str) -> bool:
    """`isinstance` without importing the class's module: no instance of a class exists
    before its module was imported, and importing it would need its integration (httpx,
    psycopg) installed where only a breaker is exported."""
    loaded = sys.modules.get(f"resilience_async.{module}")
    return loaded is not None and isinstance(primitive, getattr(loaded, name))


class BreakerExport:
    """One breaker's state, transitions and call outcomes.

    `labels()` hashes and validates on every use, so the labelled children are made once here.
    """

    def __init__(self, into: Instruments, breaker: str) -> None:
        self._state = into.breaker_state.labels(breaker)
        self._transitions = {
            state: into.breaker_transitions.labels(breaker, label)
            for state, label in STATE_LABELS.items()
        }
        self._calls = {
            outcome: into.breaker_calls.labels(breaker, outcome.value) for outcome in CallOutcome
        }
        self._state.set(0)

    def record_state_change(self, event: BreakerStateChange) -> None:
        self._state.set(_STATE_VALUES[STATE_LABELS[event.new]])
        self._transitions[event.new].inc()

    def record_outcome(self, outcome: CallOutcome) -> None:
        self._calls[outcome].inc()


class UpstreamExport:
    """One HTTP client's attempts by outcome, its retry decisions and unusable answers."""

    def __init__(self, into: Instruments, upstream: str) -> None:
        self._requests = into.upstream_requests
        self._unusable_answers = into.upstream_unusable
        self._upstream = upstream
        self._attempts: dict[str, Any] = {}
        # The client's own reasons exported at 0 from the start: a rate needs a series.
        self._unusable = {reason: self._unusable_answers.labels(upstream, reason)
                          for reason in REASONS}  # fmt: skip
        self._retries = {
            True: into.upstream_retries.labels(upstream, "retried"),
            False: into.upstream_retries.labels(upstream, "budget_exhausted"),
        }

    def record_attempt(self, outcome: str) -> None:
        child = self._attempts.get(outcome)
        if child is None:
            child = self._attempts[outcome] = self._requests.labels(self._upstream, outcome)
        child.inc()

    def record_retry(self, allowed: bool) -> None:
        self._retries[allowed].inc()

    def record_unusable(self, reason: str) -> None:
        child = self._unusable.get(reason)
        if child is None:
            labels = (self._upstream, reason)
            child = self._unusable[reason] = self._unusable_answers.labels(*labels)
        child.inc()


class BulkheadExport:
    """One bulkhead's rejections."""

    def __init__(self, into: Instruments, bulkhead: str) -> None:
        self.record_rejection = into.bulkhead_rejections.labels(bulkhead).inc


class HedgeExport:
    """One hedge's second attempts (sent, refused), its wins, and its delay, labelled by the
    hedge's name: a client's and a database's hedges alike."""

    def __init__(self, into: Instruments, hedge: Hedge[Any]) -> None:
        self._hedge = hedge
        self._hedges = {
            True: into.hedges.labels(hedge.name, "sent"),
            False: into.hedges.labels(hedge.name, "refused"),
        }
        self._wins = into.hedge_wins.labels(hedge.name)
        self._delay = into.hedge_delay.labels(hedge.name)
        self._delay.set(hedge.delay)

    def record_hedge(self, sent: bool) -> None:
        self._hedges[sent].inc()
        self._delay.set(self._hedge.delay)

    def record_winner(self, winner: str) -> None:
        if winner == "hedge":
            self._wins.inc()


class AdaptiveLimitExport:
    """An adaptive limit's current value, and its refusals counted as a bulkhead's (the
    same series whichever kind of limit refused)."""

    def __init__(self, into: Instruments, name: str, limit: int) -> None:
        self.record_rejection = into.bulkhead_rejections.labels(name).inc
        self.record_limit = into.inflight_limit.labels(name).set
        self.record_limit(limit)


class CacheExport:
    """One cache's values served, by source."""

    def __init__(self, into: Instruments, namespace: str) -> None:
        self._served = {
            source: into.cache_results.labels(namespace, source)
            for source in ("live", "cache", "stale", "fallback")
        }

    def record_served(self, source: Source) -> None:
        self._served[source].inc()


class RateLimitExport:
    """One rate limiter's decisions, by policy, and its fallback state."""

    def __init__(self, into: Instruments, limiter: str) -> None:
        self._decisions = into.rate_limit_decisions
        self._limiter = limiter
        self._children: dict[tuple[str, bool, bool], Any] = {}
        self._fallback = into.rate_limit_fallback.labels(limiter)
        self._fallback.set(0)

    def record_decision(self, policy: str, allowed: bool, shared: bool) -> None:
        key = (policy, allowed, shared)
        child = self._children.get(key)
        if child is None:
            decision, store = _DECISIONS[allowed], _STORES[shared]
            child = self._children[key] = self._decisions.labels(
                self._limiter, policy, decision, store
            )
        child.inc()

    def record_fallback(self, active: bool) -> None:
        self._fallback.set(1 if active else 0)


_DECISIONS = {True: "allowed", False: "refused"}
_STORES = {True: "shared", False: "local"}


class DatabaseExport:
    """A database's queries by server, kind and outcome, and each server's last sample."""

    def __init__(self, into: Instruments) -> None:
        self._into = into
        self._queries: dict[tuple[str, str, str], Any] = {}
        self._ejections: dict[str, int] = {}

    def record_query(self, server: str, kind: QueryKind, outcome: QueryOutcome) -> None:
        key = (server, kind, outcome)
        child = self._queries.get(key)
        if child is None:
            child = self._queries[key] = self._into.database_queries.labels(*key)
        child.inc()

    def record_sample(self, state: ServerState) -> None:
        self._into.database_up.labels(state.name).set(1 if state.up else 0)
        if state.up and state.in_recovery:
            self._into.database_replica_lag.labels(state.name).set(state.lag)
        if state.estimate:  # latency routing is on
            self._into.database_latency_estimate.labels(state.name).set(state.estimate)
            self._into.database_ejected.labels(state.name).set(1 if state.ejected else 0)
            new = state.ejections - self._ejections.get(state.name, 0)
            if new > 0:
                self._into.database_ejections.labels(state.name).inc(new)
                self._ejections[state.name] = state.ejections


class RequestRecorder:
    """Records one HTTP request's duration by method, route and status (children kept)."""

    def __init__(self, into: Instruments | None = None) -> None:
        self._histogram = (into or default_instruments()).http_request_duration
        self._children: dict[tuple[str, str, int], Any] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._histogram.labels(method, route, str(status))
        child.observe(seconds)


def render(multiprocess_dir: str | None, registry: CollectorRegistry = REGISTRY) -> bytes:
    """The exposition text of every instrument, summed over processes when multiprocess.

    Reads one file per process in multiprocess mode: call it off the event loop.
    """
    if not multiprocess_dir:
        return generate_latest(registry)
    summed = CollectorRegistry()
    multiprocess.MultiProcessCollector(summed, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    return generate_latest(summed)
