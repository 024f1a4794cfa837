"""A transport whose writes made in one turn of the event loop leave in one `send()`.

uvicorn writes a response's status line and headers, then its body, each at once: two
system calls per response, and on a loopback or LAN connection each one also delivers a
segment and wakes the client. Profiled on `GET /api/orders/<id>` at 64 connections, the
header write alone took 8 % of the server's core. Corked, the writes a response makes while
its task runs are joined and sent once, at the start of the loop's next turn (one
`call_soon` per turn with something to send). Past `CORK_LIMIT` bytes pending they leave at
once: a streaming response is never held in memory whole.
"""

from __future__ import annotations

import asyncio
from typing import Any

CORK_LIMIT = 64 * 1024  # bytes


class CorkedTransport:
    """Wraps an `asyncio.Transport`: `write` is deferred and joined; everything else is the
    wrapped transport's, except `close` (which sends what is pending first) and `abort`
    (which drops it)."""

    __slots__ = ("_loop", "_pending", "_size", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pending = self._pending
        if pending is None:
            self._pending = pending = []
            self._size = 0
            self._loop.call_soon(self.flush)
        pending.append(bytes(data))
        self._size += len(data)
        if self._size > CORK_LIMIT:
            self.flush()  # the scheduled flush then finds nothing

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        """Send what was written since the last flush, in one write."""
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def get_write_buffer_size(self) -> int:
        waiting = self._size if self._pending else 0
        return self._transport.get_write_buffer_size() + waiting

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
