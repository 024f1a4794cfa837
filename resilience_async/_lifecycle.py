"""The serving phase of one process, and its in-flight request count.

Readiness reads the phase; the lifespan shim moves it (starting → serving → draining →
stopped) and waits on the in-flight count to reach zero before resources close.
"""

from __future__ import annotations

import asyncio
import enum


class Phase(enum.Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


class Lifecycle:
    """Phase plus a count of requests in flight, both owned by the event loop thread."""

    def __init__(self) -> None:
        self.phase = Phase.STARTING
        self.in_flight = 0
        self._idle: asyncio.Event | None = None

    @property
    def serving(self) -> bool:
        return self.phase is Phase.SERVING

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        """Wait until no request is in flight (bound it with `asyncio.timeout`)."""
        if self.in_flight == 0:
            return
        self._idle = asyncio.Event()
        try:
            await self._idle.wait()
        finally:
            self._idle = None
