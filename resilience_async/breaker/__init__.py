"""The circuit breaker: `CircuitBreaker` and what its callers and listeners see.

core.py        the engine: states, windows, probes, the call path
listeners.py   state-change events, listener protocols, the logging listener
shared.py      open periods shared between processes through redis.asyncio
_surface.py    aiobreaker's properties and methods over the engine's fields
"""

from __future__ import annotations

from resilience_async.breaker.core import (
    BreakerSnapshot,
    CircuitBreaker,
    Guard,
    counts_any_exception,
)
from resilience_async.breaker.listeners import (
    STATE_LABELS,
    BreakerListener,
    BreakerStateChange,
    CallOutcome,
    LoggingListener,
    OutcomeListener,
)
from resilience_async.breaker.shared import RedisBreakerState

__all__ = [
    "STATE_LABELS",
    "BreakerListener",
    "BreakerSnapshot",
    "BreakerStateChange",
    "CallOutcome",
    "CircuitBreaker",
    "Guard",
    "LoggingListener",
    "OutcomeListener",
    "RedisBreakerState",
    "counts_any_exception",
]
