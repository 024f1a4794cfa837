"""Slow clients for the bench: connections that send their headers one byte a second.

`SlowClients(url, count)` holds `count` such connections open in a thread of its own while
a measurement runs beside it; a connection the server closes (its header deadline passed)
is opened again at once, so the server always faces `count` of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from urllib.parse import urlsplit

_TRICKLE = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096


class SlowClients:
    """`count` slowloris connections to `url`'s server, for the length of a `with` block."""

    def __init__(self, url: str, count: int) -> None:
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._count = count
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop = asyncio.Event()
        self.opened = 0

    def __enter__(self) -> SlowClients:
        self._thread.start()
        ready = asyncio.run_coroutine_threadsafe(self._open_all(), self._loop)
        ready.result(timeout=60)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        asyncio.run_coroutine_threadsafe(self._drain(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _open_all(self) -> None:
        self._all_open = asyncio.Event()
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self._count)]
        await self._all_open.wait()

    async def _drain(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _client(self) -> None:
        while not self._stop.is_set():
            try:
                _, writer = await asyncio.open_connection(*self._address)
            except OSError:
                await asyncio.sleep(0.5)
                continue
            self.opened += 1
            if self.opened == self._count:
                self._all_open.set()
            try:
                for byte in _TRICKLE:  # never the blank line that ends the headers
                    if writer.is_closing():
                        break
                    writer.write(bytes([byte]))
                    await asyncio.sleep(1.0)
            except ConnectionError:
                pass
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
