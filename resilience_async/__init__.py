"""Native asyncio resilience primitives: health, lifespan, database pools, metrics, logging.

Framework-free: only `resilience_async.django` imports Django.
"""

from __future__ import annotations

from resilience_async.db import Database, NotAStandbyError
from resilience_async.health import Check, HealthReport, Observation, Readiness, Status
from resilience_async.lifecycle import Lifecycle, Phase
from resilience_async.lifespan import LifespanApp

__all__ = [
    "Check",
    "Database",
    "HealthReport",
    "Lifecycle",
    "LifespanApp",
    "NotAStandbyError",
    "Observation",
    "Phase",
    "Readiness",
    "Status",
]
