"""The corked transport: a response's writes in one turn of the loop leave in one write."""

from __future__ import annotations

import asyncio
from typing import Any

from resilience_async._corked import CORK_LIMIT, CorkedTransport


class Recording(asyncio.Transport):
    """Records what reaches the socket (writes, close, abort), in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: Any) -> None:
        self.calls.append(("write", bytes(data)))

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def abort(self) -> None:
        self.closing = True
        self.calls.append(("abort", None))

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7


def corked() -> tuple[CorkedTransport, Recording]:
    inner = Recording()
    return CorkedTransport(inner, asyncio.get_running_loop()), inner


async def test_writes_made_in_one_turn_leave_together_at_the_next() -> None:
    transport, inner = corked()
    transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    transport.write(memoryview(b"{}"))

    assert inner.calls == []  # not yet: the turn is not over
    assert transport.get_write_buffer_size() == 7 + 40
    await asyncio.sleep(0)
    assert inner.calls == [("write", b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.calls[1:] == [("write", b"next")]


async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    closed, inner = corked()
    closed.write(b"408 and goodbye")
    closed.close()
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert inner.calls == [("write", b"408 and goodbye"), ("close", None)]

    aborted, inner = corked()
    aborted.write(b"never sent")
    aborted.abort()
    await asyncio.sleep(0)
    assert inner.calls == [("abort", None)]


async def test_past_the_limit_the_writes_leave_at_once() -> None:
    transport, inner = corked()
    chunk = b"x" * (CORK_LIMIT // 2 + 1)
    transport.write(chunk)
    assert inner.calls == []
    transport.write(chunk)
    assert inner.calls == [("write", chunk + chunk)]  # a stream is not held whole


async def test_nothing_is_written_to_a_transport_already_closing() -> None:
    transport, inner = corked()
    transport.write(b"late")
    inner.closing = True  # the peer went away meanwhile
    await asyncio.sleep(0)
    assert inner.calls == []


async def test_everything_else_is_the_wrapped_transport_s() -> None:
    transport, inner = corked()
    inner.pause_reading = lambda: inner.calls.append(("pause_reading", None))  # type: ignore[method-assign]
    transport.pause_reading()
    assert inner.calls == [("pause_reading", None)]
    assert transport.is_closing() is False
    assert transport.get_extra_info("peername", "none") == "none"
