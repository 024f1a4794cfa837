"""One socket of the closed loop, driven entirely from protocol callbacks.

The next request is written from inside `data_received` the moment a response
completes, so a request costs no task switch, future or timer; that is what
lets one core generate several times the load a Python server can absorb.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING, cast

from loadtests.bench.generator.parser import ProtocolError, ResponseParser

if TYPE_CHECKING:
    from loadtests.bench.generator.state import RunState


class Connection(asyncio.Protocol):
    """Sends a request, frames the response, repeats; `closed` resolves when the socket is gone."""

    __slots__ = ("_parser", "_sent_at", "_state", "_transport", "busy", "closed", "served")
    _transport: asyncio.Transport  # set by connection_made, before any other callback

    def __init__(self, state: RunState, closed: asyncio.Future[None]) -> None:
        self._state = state
        self._parser = ResponseParser(head_request=state.target.head)
        self._sent_at = 0.0
        self.busy = False  # a request is out and its response not complete
        self.served = 0
        self.closed = closed

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)
        self._state.conns.add(self)
        if self._state.stopped:
            self._transport.abort()
        else:
            self._send(perf_counter())

    def data_received(self, data: bytes) -> None:
        if not self.busy:
            self._fail("protocol")  # bytes nobody asked for: the stream is out of step
            return
        try:
            complete = self._parser.feed(data)
        except ProtocolError:
            self._fail("protocol")
            return
        if complete:
            self._complete(perf_counter())

    def connection_lost(self, exc: Exception | None) -> None:
        """Peer closed or reset: ends a close-delimited body; mid-response it is a failure."""
        if self.busy:
            self._end_request()
            now = perf_counter()
            if self._parser.feed_eof():
                self._complete_at(now)
            elif not (self.served and self._parser.fresh):
                self._state.record_error("reset", now)
            # else: a reused keep-alive socket closed before answering; the worker retries
        self._state.forget(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def expire(self, deadline: float) -> None:
        """Watchdog hook: a request sent before `deadline` has waited too long."""
        if self.busy and self._sent_at < deadline:
            self._fail("timeout")

    def abort(self) -> None:
        self._transport.abort()

    def _complete(self, now: float) -> None:
        self._end_request()
        self._complete_at(now)
        if self._parser.keep_alive:
            self._send(now)
        else:
            self._transport.close()

    def _complete_at(self, now: float) -> None:
        self.served += 1
        self._state.record_response(self._parser.status, now - self._sent_at, now)

    def _send(self, now: float) -> None:
        state = self._state
        if state.may_send():
            self.busy = True
            state.in_flight += 1
            self._sent_at = now
            self._transport.write(state.request)

    def _end_request(self) -> None:
        self.busy = False
        self._state.in_flight -= 1

    def _fail(self, kind: str) -> None:
        if self.busy:
            self._end_request()
        self._state.record_error(kind, perf_counter())
        self.abort()
