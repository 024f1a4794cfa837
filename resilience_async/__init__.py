"""Native asyncio resilience primitives: breaker, HTTP client, fallback cache, bulkhead,
database pools with replica routing, readiness, lifespan, and structured logs.

Everything public is importable from here, and only from here is it promised:

    from resilience_async import CircuitBreaker, FallbackCache, ResilientClient

Framework-free: only `resilience_async.django` imports Django. Prometheus export is the
optional `resilience_async.prometheus` hook set (importing it needs prometheus-client).
"""

from __future__ import annotations

from resilience_async._breaker import (
    BreakerListener,
    BreakerSnapshot,
    BreakerStateChange,
    CallOutcome,
    CircuitBreaker,
    Guard,
    LoggingListener,
    OutcomeListener,
    RedisBreakerState,
    counts_any_exception,
)
from resilience_async._cache import CacheHook, CacheResult, FallbackCache
from resilience_async._db import (
    Connection,
    Database,
    DatabaseHook,
    ReadResult,
    WriteResult,
    counts_against_database,
    describe_hosts,
)
from resilience_async._errors import (
    BulkheadFullError,
    CallTimeoutError,
    CircuitOpenError,
    DatabaseUnavailableError,
    FallbackUnavailableError,
    InvalidLsnError,
    NoPrimaryError,
    PoolExhaustedError,
    ResilienceError,
    SaturatedError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
    WriteOutcomeUnknownError,
)
from resilience_async._gc import tune_gc_for_serving
from resilience_async._health import (
    Check,
    CheckResult,
    HealthReport,
    Observation,
    Probe,
    Readiness,
    Status,
    threshold,
)
from resilience_async._http import ResilientClient, UpstreamHook, is_server_failure
from resilience_async._lifecycle import Lifecycle, Phase
from resilience_async._lifespan import LifespanApp
from resilience_async._limits import Bulkhead, BulkheadHook
from resilience_async._logs import ConsoleFormatter, JsonFormatter, RequestIdFilter, request_id_var
from resilience_async._lsn import format_lsn, parse_lsn
from resilience_async._retry import RetryBudget, RetryPolicy
from resilience_async._topology import Monitor, ServerState
from resilience_async._transport import AiohttpTransport

__all__ = [
    "AiohttpTransport",
    "BreakerListener",
    "BreakerSnapshot",
    "BreakerStateChange",
    "Bulkhead",
    "BulkheadFullError",
    "BulkheadHook",
    "CacheHook",
    "CacheResult",
    "CallOutcome",
    "CallTimeoutError",
    "Check",
    "CheckResult",
    "CircuitBreaker",
    "CircuitOpenError",
    "Connection",
    "ConsoleFormatter",
    "Database",
    "DatabaseHook",
    "DatabaseUnavailableError",
    "FallbackCache",
    "FallbackUnavailableError",
    "Guard",
    "HealthReport",
    "InvalidLsnError",
    "JsonFormatter",
    "Lifecycle",
    "LifespanApp",
    "LoggingListener",
    "Monitor",
    "NoPrimaryError",
    "Observation",
    "OutcomeListener",
    "Phase",
    "PoolExhaustedError",
    "Probe",
    "ReadResult",
    "Readiness",
    "RedisBreakerState",
    "RequestIdFilter",
    "ResilienceError",
    "ResilientClient",
    "RetryBudget",
    "RetryPolicy",
    "SaturatedError",
    "ServerState",
    "Status",
    "UpstreamError",
    "UpstreamHook",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "WriteOutcomeUnknownError",
    "WriteResult",
    "counts_against_database",
    "counts_any_exception",
    "describe_hosts",
    "format_lsn",
    "is_server_failure",
    "parse_lsn",
    "request_id_var",
    "threshold",
    "tune_gc_for_serving",
]

# As httpx does: reprs and tracebacks name the namespace people import, not the module a
# class happens to live in (`resilience_async.CircuitOpenError`).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("resilience_async."):
        _obj.__module__ = "resilience_async"
del _name, _obj
