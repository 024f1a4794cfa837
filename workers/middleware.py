"""A worker process's event loop and resources, as Dramatiq middleware.

Dramatiq runs `async def` actors on one event loop per worker process (its AsyncIO
middleware); the resources those actors use (pools, clients) must open on that loop before
the first message, and close on it after the last.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import dramatiq
from dramatiq.asyncio import EventLoopThread, async_to_sync, set_event_loop_thread
from dramatiq.middleware import AsyncIO


class DaemonAsyncIO(AsyncIO):
    """Dramatiq's AsyncIO middleware, its event loop thread a daemon like every other thread
    of a worker process: told to die at once (a second SIGTERM: `sys.exit` in the main
    thread), the process exits instead of waiting for ever on a loop nobody will stop."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        thread = EventLoopThread(self.logger)
        thread.daemon = True
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)


class OpenResources(dramatiq.Middleware):
    """Opens a worker's resources on the AsyncIO middleware's loop before its threads take
    messages, and closes them once they have stopped.

    List it after `AsyncIO`: "before" hooks run in order (the loop runs by then) and "after"
    hooks in reverse (it still runs).
    """

    def __init__(
        self, *, open: Callable[[], Awaitable[None]], close: Callable[[], Awaitable[None]]
    ) -> None:
        self._open = open
        self._close = close

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        async_to_sync(self._open)()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        async_to_sync(self._close)()
