"""ASGI lifespan for apps that do not speak it (Django), with a draining shutdown.

Resources open on the server's running loop at `lifespan.startup` and close at
`lifespan.shutdown`, after in-flight requests have finished. On SIGTERM or SIGINT the phase
turns to draining at once, so readiness fails while the server still finishes its work; an
optional drain delay keeps serving for a while so load balancers notice before it stops.
While draining, every answer says `Connection: close`: keep-alive clients go elsewhere
instead of sending a request on a connection the server is about to close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from resilience_async._lifecycle import Lifecycle, Phase

# Named as it was before the module turned private: log configurations keep working.
logger = logging.getLogger("resilience_async.lifespan")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Hook = Callable[[], Awaitable[None]]


class LifespanApp:
    """Wraps an HTTP-only ASGI app with lifespan handling and in-flight request tracking.

    Args:
        app: the wrapped ASGI application.
        lifecycle: the phase and in-flight counter readiness reads.
        startup: opens resources; a failure aborts server start-up.
        shutdown: closes resources, after requests drained or `shutdown_timeout` passed.
        shutdown_timeout: seconds to wait for in-flight requests at shutdown.
        drain_delay: seconds to keep serving after SIGTERM before the server is told to stop.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifecycle: Lifecycle,
        startup: Hook,
        shutdown: Hook,
        shutdown_timeout: float = 5.0,
        drain_delay: float = 0.0,
    ) -> None:
        self.app = app
        self.lifecycle = lifecycle
        self._startup = startup
        self._shutdown = shutdown
        self._shutdown_timeout = shutdown_timeout
        self._drain_delay = drain_delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        self.lifecycle.request_started()
        try:
            if self.lifecycle.phase is not Phase.DRAINING or scope["type"] != "http":
                await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, _closing(send))
        finally:
            self.lifecycle.request_finished()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if not await self._start(send):
                    return
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._stop()
                except Exception as exc:
                    logger.exception("shutdown failed")
                    await send(
                        {"type": "lifespan.shutdown.failed", "message": f"shutdown failed: {exc}"}
                    )
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self, send: Send) -> bool:
        try:
            await self._startup()
        except Exception as exc:
            logger.exception("start-up failed")
            await send({"type": "lifespan.startup.failed", "message": f"start-up failed: {exc}"})
            return False
        self.lifecycle.phase = Phase.SERVING
        self._hook_signals(asyncio.get_running_loop())
        await send({"type": "lifespan.startup.complete"})
        return True

    async def _stop(self) -> None:
        self.lifecycle.phase = Phase.DRAINING
        try:
            async with asyncio.timeout(self._shutdown_timeout):
                await self.lifecycle.wait_idle()
        except TimeoutError:
            logger.warning(
                "closing resources with requests still in flight",
                extra={"in_flight": self.lifecycle.in_flight},
            )
        try:
            await self._shutdown()
        finally:
            self.lifecycle.phase = Phase.STOPPED

    def _hook_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        """Turn to draining on SIGTERM/SIGINT before the server's own handler runs."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(signum)
            if callable(previous):
                signal.signal(signum, self._drain_handler(loop, previous))

    def _drain_handler(
        self, loop: asyncio.AbstractEventLoop, previous: Callable[[int, FrameType | None], Any]
    ) -> Callable[[int, FrameType | None], None]:
        def handle(signum: int, frame: FrameType | None) -> None:
            first = self.lifecycle.phase is Phase.SERVING
            self.lifecycle.phase = Phase.DRAINING
            if not first or self._drain_delay <= 0:
                previous(signum, frame)
                return
            logger.info("draining before shutdown", extra={"delay_s": self._drain_delay})
            # A signal handler may interrupt the loop anywhere: only the thread-safe call is safe.
            loop.call_soon_threadsafe(loop.call_later, self._drain_delay, previous, signum, frame)

        return handle


def _closing(send: Send) -> Send:
    """`send`, with `Connection: close` on the response: while draining, a client leaves
    after its answer instead of sending its next request on a connection about to close."""

    async def send_closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", []) if h[0].lower() != b"connection"]
            message = {**message, "headers": [*headers, (b"connection", b"close")]}
        await send(message)

    return send_closing
