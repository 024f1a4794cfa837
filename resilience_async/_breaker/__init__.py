"""The circuit breaker: `CircuitBreaker` and what its callers and hooks see.

core.py        the engine: states, windows, probes, the call path
hooks.py       state-change events, hook protocols, the logging hook
shared.py      open periods shared between processes through redis.asyncio
_surface.py    aiobreaker's properties and methods over the engine's fields
"""

from __future__ import annotations

from resilience_async._breaker.core import (
    BreakerSnapshot,
    CircuitBreaker,
    Guard,
    counts_any_exception,
)
from resilience_async._breaker.hooks import (
    STATE_LABELS,
    BreakerHook,
    BreakerStateChange,
    CallOutcome,
    LoggingHook,
    OutcomeHook,
)
from resilience_async._breaker.shared import RedisBreakerState

__all__ = [
    "STATE_LABELS",
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
]
