"""Prometheus instruments shared by every primitive, and their rendering.

Under several server processes, prometheus-client's multiprocess mode (enabled by the
`PROMETHEUS_MULTIPROC_DIR` environment variable, read by prometheus-client at import) keeps
each process's values in files; `render` sums them so one scrape sees the whole service.
"""

from __future__ import annotations

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

# `*_created` series double the exposition for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# Its `_count` series is the request count (rate(http_request_duration_seconds_count[1m])):
# a separate counter would cost a second locked update on every request for the same number.
HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from request start to response, by method, route pattern and status code.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)

# --- circuit breakers ----------------------------------------------------------------------
# 0 closed, 1 half-open, 2 open. Under several processes the worst live value is exported.
BREAKER_STATE = Gauge(
    "circuit_breaker_state",
    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
    ["breaker"],
    multiprocess_mode="livemax",
)
BREAKER_TRANSITIONS = Counter(
    "circuit_breaker_transitions_total",
    "Circuit breaker state changes, by the state entered.",
    ["breaker", "state"],
)
BREAKER_CALLS = Counter(
    "circuit_breaker_calls_total",
    "Calls through a circuit breaker by outcome: success, failure, slow, rejected, ignored.",
    ["breaker", "outcome"],
)

# --- outbound HTTP --------------------------------------------------------------------------
UPSTREAM_REQUESTS = Counter(
    "upstream_requests_total",
    "Outbound HTTP attempts by upstream and outcome (a status code, or an error kind).",
    ["upstream", "outcome"],
)
UPSTREAM_RETRIES = Counter(
    "upstream_retries_total",
    "Retries made, and retries refused by the retry budget, by upstream.",
    ["upstream", "decision"],
)
BULKHEAD_REJECTIONS = Counter(
    "bulkhead_rejections_total", "Calls refused because a bulkhead was full.", ["bulkhead"]
)

# --- fallback cache -------------------------------------------------------------------------
CACHE_RESULTS = Counter(
    "fallback_cache_results_total",
    "Values served by a fallback cache, by key namespace and source: live, cache, stale, fallback.",
    ["namespace", "source"],
)

# --- database ---------------------------------------------------------------------------
DATABASE_QUERIES = Counter(
    "database_queries_total",
    "Reads and writes by the server that ran them (primary, replica-N) and outcome: ok, failed.",
    ["server", "kind", "outcome"],
)
DATABASE_UP = Gauge(
    "database_up",
    "1 while the database monitor reaches the server, else 0.",
    ["server"],
    multiprocess_mode="livemax",
)
DATABASE_REPLICA_LAG = Gauge(
    "database_replica_lag_seconds",
    "Replay lag of a replica at the monitor's last sample.",
    ["server"],
    multiprocess_mode="livemax",
)

# --- jobs -----------------------------------------------------------------------------------
OUTBOX_BACKLOG = Gauge(
    "outbox_backlog_messages",
    "Messages committed to the outbox and not yet published, at the last readiness check.",
    multiprocess_mode="livemax",
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class RequestRecorder:
    """Records one request's duration by method, route and status.

    `labels()` validates and hashes its arguments on every call; the label sets of a service
    are few (routes x methods x statuses), so their children are kept in a dict.
    """

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], Histogram] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = HTTP_REQUEST_DURATION.labels(method, route, str(status))
        child.observe(seconds)


class QueryRecorder:
    """Counts database reads and writes by server, kind and outcome (children kept, as above)."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, str], Counter] = {}

    def record(self, server: str, kind: str, outcome: str) -> None:
        key = (server, kind, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = DATABASE_QUERIES.labels(server, kind, outcome)
        child.inc()


def render(multiprocess_dir: str | None) -> bytes:
    """The exposition text of every instrument, summed over processes when multiprocess.

    Reads one file per process in multiprocess mode: call it off the event loop.
    """
    if not multiprocess_dir:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiprocess_dir)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
