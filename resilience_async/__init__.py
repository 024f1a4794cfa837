"""Native asyncio resilience primitives: breaker, HTTP client, fallback cache, bulkhead,
database pools with replica routing, readiness, lifespan, and structured logs.

Everything public is importable from here, and only from here is it promised:

    from resilience_async import CircuitBreaker, FallbackCache, ResilientClient

`import resilience_async` needs the standard library alone: a name's module is imported
when the name is first used, and an integration that is missing then raises an ImportError
naming the extra that installs it (`pip install 'resilient-django[postgres]'`). Every other
module is private (`_name`); each line below is one, with what it exports and needs:

    _breaker/       CircuitBreaker, RedisBreakerState, BreakerHook...        (aiobreaker)
    _http.py        ResilientClient, UpstreamHook, is_server_failure          [http]
    _body.py        reading an answer's body within ResilientClient's max_body  [http]
    _unusable.py    unusable answers: counted by reason, logged throttled
    _transport.py   AiohttpTransport, ResilientClient's default transport     [aiohttp]
    _cache.py       FallbackCache, CacheResult, CacheHook                     ([redis] tier)
    _limits.py      Bulkhead, BulkheadHook
    _adaptive.py    AdaptiveLimit, AdaptiveLimitHook, Gradient2: a latency-led limit
    _rate_limit.py  RateLimiter, RateLimitHook: token buckets shared through Redis ([redis])
    _token_bucket.py  RateLimitPolicy, RateLimitDecision, the buckets' arithmetic
    _rate_headers.py  rate_limit_headers: RateLimit-Policy, RateLimit, Retry-After
    _retry.py       RetryPolicy, RetryBudget
    _db.py          Database, ReadResult, WriteResult, DatabaseHook...        [postgres]
    _topology.py    Monitor, ServerState: who can serve what                  [postgres]
    _lsn.py         parse_lsn, format_lsn: consistency tokens
    _health.py      Readiness, Check, Probe, Observation, HealthReport...
    _lifecycle.py   Lifecycle, Phase;  _lifespan.py  LifespanApp (ASGI lifespan)
    _logs.py        JsonFormatter, ConsoleFormatter, RequestIdFilter, request_id_var
    _gc.py          tune_gc_for_serving
    _errors.py      the exception tree under ResilienceError, drawn in its docstring
    _resource.py    the lifecycle every resource shares: `async with`, `aclose()`
    _hooks.py       `hooks=`, `hooks`, `add_hook()`: the one hook vocabulary
    _extras.py, _slots.py, _deadline.py, _corked.py: helpers

The integrations are public namespaces of their own, imported by those who use them:

    resilience_async.django        the Django adapter                         [django]
    resilience_async.prometheus    Prometheus export, as hooks                [prometheus]
    resilience_async.uvicorn       uvicorn's HTTP protocol with request limits [uvicorn]

docs/library.md is the reference.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import TYPE_CHECKING

from resilience_async import _extras

if TYPE_CHECKING:
    from resilience_async._adaptive import (
        AdaptiveLimit,
        AdaptiveLimitHook,
        Gradient2,
    )
    from resilience_async._breaker import (
        BreakerHook,
        BreakerSnapshot,
        BreakerStateChange,
        CallOutcome,
        CircuitBreaker,
        Guard,
        LoggingHook,
        OutcomeHook,
        RedisBreakerState,
        counts_any_exception,
    )
    from resilience_async._cache import (
        CacheHook,
        CacheResult,
        FallbackCache,
    )
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
        ResponseTooLargeError,
        SaturatedError,
        UnusableResponseError,
        UpstreamError,
        UpstreamStatusError,
        UpstreamTimeoutError,
        UpstreamUnavailableError,
        WriteOutcomeUnknownError,
    )
    from resilience_async._gc import (
        tune_gc_for_serving,
    )
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
    from resilience_async._hedge import (
        Hedge,
        HedgeHook,
        LatencyWindow,
    )
    from resilience_async._http import (
        ResilientClient,
        UpstreamHook,
        is_server_failure,
    )
    from resilience_async._lifecycle import (
        Lifecycle,
        Phase,
    )
    from resilience_async._lifespan import (
        LifespanApp,
    )
    from resilience_async._limits import (
        Bulkhead,
        BulkheadHook,
    )
    from resilience_async._logs import (
        ConsoleFormatter,
        JsonFormatter,
        RequestIdFilter,
        request_id_var,
    )
    from resilience_async._lsn import (
        format_lsn,
        parse_lsn,
    )
    from resilience_async._outliers import (
        LatencyRouting,
        PeakEwma,
    )
    from resilience_async._rate_headers import (
        rate_limit_headers,
    )
    from resilience_async._rate_limit import (
        RateLimiter,
        RateLimitHook,
    )
    from resilience_async._retry import (
        RetryBudget,
        RetryPolicy,
    )
    from resilience_async._token_bucket import (
        RateLimitDecision,
        RateLimitPolicy,
    )
    from resilience_async._topology import (
        Monitor,
        ServerState,
    )
    from resilience_async._transport import (
        AiohttpTransport,
    )
# Where each public name lives. `import resilience_async` imports none of these modules (and
# so none of their integrations): a name's module is imported when the name is first used.
_MODULES: dict[str, tuple[str, ...]] = {
    "_adaptive": ("AdaptiveLimit", "AdaptiveLimitHook", "Gradient2"),
    "_breaker": (
        "BreakerHook",
        "BreakerSnapshot",
        "BreakerStateChange",
        "CallOutcome",
        "CircuitBreaker",
        "Guard",
        "LoggingHook",
        "OutcomeHook",
        "RedisBreakerState",
        "counts_any_exception",
    ),
    "_cache": ("CacheHook", "CacheResult", "FallbackCache"),
    "_db": (
        "Connection",
        "Database",
        "DatabaseHook",
        "ReadResult",
        "WriteResult",
        "counts_against_database",
        "describe_hosts",
    ),
    "_errors": (
        "BulkheadFullError",
        "CallTimeoutError",
        "CircuitOpenError",
        "DatabaseUnavailableError",
        "FallbackUnavailableError",
        "InvalidLsnError",
        "NoPrimaryError",
        "PoolExhaustedError",
        "ResilienceError",
        "ResponseTooLargeError",
        "SaturatedError",
        "UnusableResponseError",
        "UpstreamError",
        "UpstreamStatusError",
        "UpstreamTimeoutError",
        "UpstreamUnavailableError",
        "WriteOutcomeUnknownError",
    ),
    "_gc": ("tune_gc_for_serving",),
    "_health": (
        "Check",
        "CheckResult",
        "HealthReport",
        "Observation",
        "Probe",
        "Readiness",
        "Status",
        "threshold",
    ),
    "_hedge": ("Hedge", "HedgeHook", "LatencyWindow"),
    "_outliers": ("LatencyRouting", "PeakEwma"),
    "_http": ("ResilientClient", "UpstreamHook", "is_server_failure"),
    "_lifecycle": ("Lifecycle", "Phase"),
    "_lifespan": ("LifespanApp",),
    "_limits": ("Bulkhead", "BulkheadHook"),
    "_logs": ("ConsoleFormatter", "JsonFormatter", "RequestIdFilter", "request_id_var"),
    "_lsn": ("format_lsn", "parse_lsn"),
    "_rate_headers": ("rate_limit_headers",),
    "_rate_limit": ("RateLimitHook", "RateLimiter"),
    "_retry": ("RetryBudget", "RetryPolicy"),
    "_token_bucket": ("RateLimitDecision", "RateLimitPolicy"),
    "_topology": ("Monitor", "ServerState"),
    "_transport": ("AiohttpTransport",),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "AdaptiveLimit",
    "AdaptiveLimitHook",
    "AiohttpTransport",
    "BreakerHook",
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
    "Gradient2",
    "Guard",
    "HealthReport",
    "Hedge",
    "HedgeHook",
    "InvalidLsnError",
    "JsonFormatter",
    "LatencyRouting",
    "LatencyWindow",
    "Lifecycle",
    "LifespanApp",
    "LoggingHook",
    "Monitor",
    "NoPrimaryError",
    "Observation",
    "OutcomeHook",
    "PeakEwma",
    "Phase",
    "PoolExhaustedError",
    "Probe",
    "RateLimitDecision",
    "RateLimitHook",
    "RateLimitPolicy",
    "RateLimiter",
    "ReadResult",
    "Readiness",
    "RedisBreakerState",
    "RequestIdFilter",
    "ResilienceError",
    "ResilientClient",
    "ResponseTooLargeError",
    "RetryBudget",
    "RetryPolicy",
    "SaturatedError",
    "ServerState",
    "Status",
    "UnusableResponseError",
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
    "rate_limit_headers",
    "request_id_var",
    "threshold",
    "tune_gc_for_serving",
]


def __getattr__(name: str) -> object:
    """A public name, its module imported on first use (PEP 562)."""
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _extras.extra_needed(f"{__name__}.{name}"):
        importlib.import_module(f"{__name__}.{module}")
    _publish_loaded()
    return globals()[name]


def __dir__() -> list[str]:
    """The promised names (loaded or not) and the module's own dunders."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})


def _publish_loaded() -> None:
    """Bind every public name whose module is imported by now, named after this namespace.

    As httpx does: reprs and tracebacks say `resilience_async.CircuitOpenError`, not the
    private module it lives in, also for a name first met through another one (an error
    raised by the cache, say).
    """
    namespace = globals()
    for module_name, names in _MODULES.items():
        module = sys.modules.get(f"{__name__}.{module_name}")
        if module is None:
            continue
        for name in names:
            value = getattr(module, name, None)  # None: its module is still being imported
            if value is None or name in namespace:
                continue
            named = inspect.isclass(value) or inspect.isfunction(value)
            if named and value.__module__.startswith(f"{__name__}."):
                value.__module__ = __name__
            namespace[name] = value
