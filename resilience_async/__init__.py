"""Native asyncio resilience primitives: breaker, HTTP client, fallback cache, bulkhead,
database pools, health, lifespan, metrics and logging.

Framework-free: only `resilience_async.django` imports Django.
"""

from __future__ import annotations

from resilience_async.breaker import (
    BreakerSnapshot,
    BreakerStateChange,
    CallOutcome,
    CircuitBreaker,
    RedisBreakerState,
)
from resilience_async.cache import CacheResult, FallbackCache
from resilience_async.db import Database, ReadResult, WriteResult
from resilience_async.errors import (
    BulkheadFullError,
    CallTimeoutError,
    CircuitOpenError,
    DatabaseUnavailableError,
    FallbackUnavailableError,
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
from resilience_async.health import Check, HealthReport, Observation, Readiness, Status
from resilience_async.http import ResilientClient, is_server_failure
from resilience_async.lifecycle import Lifecycle, Phase
from resilience_async.lifespan import LifespanApp
from resilience_async.limits import Bulkhead
from resilience_async.retry import RetryBudget, RetryPolicy
from resilience_async.transport import AiohttpTransport

__all__ = [
    "AiohttpTransport",
    "BreakerSnapshot",
    "BreakerStateChange",
    "Bulkhead",
    "BulkheadFullError",
    "CacheResult",
    "CallOutcome",
    "CallTimeoutError",
    "Check",
    "CircuitBreaker",
    "CircuitOpenError",
    "Database",
    "DatabaseUnavailableError",
    "FallbackCache",
    "FallbackUnavailableError",
    "HealthReport",
    "Lifecycle",
    "LifespanApp",
    "NoPrimaryError",
    "Observation",
    "Phase",
    "PoolExhaustedError",
    "ReadResult",
    "Readiness",
    "RedisBreakerState",
    "ResilienceError",
    "ResilientClient",
    "RetryBudget",
    "RetryPolicy",
    "SaturatedError",
    "Status",
    "UpstreamError",
    "UpstreamStatusError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "WriteOutcomeUnknownError",
    "WriteResult",
    "is_server_failure",
]
