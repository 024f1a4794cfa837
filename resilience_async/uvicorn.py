"""uvicorn's HTTP protocol with the limits a server facing clients needs: a deadline to
receive a request's headers and one for its body, and bounds on header size and count.

uvicorn (0.54, httptools) holds a connection for ever while its client sends one header byte
a second, or nothing at all after connecting, and takes a 1 MB header or 10,000 of them.
`guarded_protocol(...)` makes a subclass of its `HttpToolsProtocol` that answers such a
client and closes the connection:

- no complete header block within `header_timeout` of the request's first byte (or of the
  connection, for its first request): 408;
- no complete body within `body_timeout` of the headers: 408 (unless an answer has started);
- more than `max_header_bytes` of request line and headers, or `max_headers` headers: 431;
- a WebSocket handshake when uvicorn serves no WebSocket protocol (`--ws none`): 403, where
  uvicorn would log two warnings and pass the handshake to the app as a plain request.

Closing a connection while its request is still arriving (an answer given before the body
was read, as a 413 is, or one of the refusals above) lingers, as nginx's `lingering_close`
does: the server stops writing (a FIN after the answer) and reads and discards what the
client still sends, until the client stops (it closes, or is quiet for `linger_timeout`), or
`linger_bytes` (at most the body's declared length) or `linger_time` run out. Closed at
once, the unread bytes in the server's receive buffer make the kernel reset the connection,
and a client that sends its whole body before it reads (Python's `urllib`, `http.client`)
loses the answer to the reset.

A request on the hot path pays a few attribute stores: the deadlines (lingering's too) are
enforced by one sweep a second over the server's connections, not by a timer per request.

    uvicorn project.asgi:application --http project.serving:HttpProtocol --ws none

Only this module of `resilience_async` imports uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from resilience_async._corked import CorkedTransport
from resilience_async._extras import extra_needed
from resilience_async._problem import problem_bytes

with extra_needed("resilience_async.uvicorn"):
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = [
    "SWEEP_INTERVAL",
    "GuardedHttpToolsProtocol",
    "guarded_protocol",
]

# Deadlines are checked this often: a slow client is cut off within this of its deadline.
SWEEP_INTERVAL = 1.0
_REFUSALS = {
    403: b"HTTP/1.1 403 Forbidden\r\n",
    408: b"HTTP/1.1 408 Request Timeout\r\n",
    431: b"HTTP/1.1 431 Request Header Fields Too Large\r\n",
}

_CODES = {403: "websocket_refused", 408: "request_timeout", 431: "headers_too_large"}


class _GuardedTransport(CorkedTransport):
    """The protocol's transport (corked): a close asked for while a request is still
    arriving lingers instead (`GuardedHttpToolsProtocol.linger`), and a lingering
    connection is closing as far as HTTP is concerned (uvicorn writes nothing more)."""

    __slots__ = ("_protocol",)

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop,
                 protocol: GuardedHttpToolsProtocol) -> None:  # fmt: skip
        super().__init__(transport, loop)
        self._protocol = protocol

    def close(self) -> None:
        if self._transport.is_closing() or not self._protocol.linger():
            super().close()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self._transport.is_closing()


class _Refused(Exception):
    """A parser callback refuses the request (raised through httptools' parser)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with request deadlines and header bounds (set by the subclass
    `guarded_protocol` makes)."""

    header_timeout = 10.0
    body_timeout = 10.0
    max_header_bytes = 16 * 1024
    max_headers = 100
    linger_timeout = 5.0
    linger_time = 30.0
    linger_bytes = 8 * 1024 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: float | None = None  # when the part being received is overdue
        self._in_headers = True  # between a request's first byte and its header block's end
        self._receiving = False  # between a request's first byte and its end
        self._header_bytes = 0
        self._refusal: tuple[int, str] | None = None
        self.lingering = False  # answered and half-closed: reading only to discard
        self._shutting_down = False
        self._linger_end = 0.0  # when lingering ends, however much the client still sends
        self._linger_bound = 0  # bytes discarded at most: linger_bytes, or the declared body's
        self._linger_left = 0
        self._discarded = 0

    # --- deadlines ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        guarded = _GuardedTransport(transport, asyncio.get_running_loop(), self)
        super().connection_made(guarded)  # type: ignore[arg-type]  # a transport in all it does
        self._deadline = self.loop.time() + self.header_timeout
        _Sweeper.watch(self)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._receiving = True
        self._header_bytes = 0
        self._deadline = self.loop.time() + self.header_timeout

    def on_headers_complete(self) -> None:
        self._in_headers = False
        if self._websocket_unserved():
            self._refusal = (403, "this server speaks HTTP only, not WebSocket")
            raise _Refused
        if len(self.headers) > self.max_headers:  # held in memory: bounded by the bytes
            self._refusal = (431, f"more than {self.max_headers} header fields")
            raise _Refused
        self._deadline = self.loop.time() + self.body_timeout
        super().on_headers_complete()

    def _websocket_unserved(self) -> bool:
        """A WebSocket handshake, and no WebSocket protocol to take it (`--ws none`)."""
        return (
            self.parser.should_upgrade()
            and not self._should_upgrade_to_ws()
            and self._get_upgrade() == b"websocket"
        )

    def on_message_complete(self) -> None:
        self._deadline = None  # received whole; the rest is the app's and the keep-alive's
        self._receiving = False
        super().on_message_complete()

    def overdue(self, now: float) -> bool:
        return self._deadline is not None and now > self._deadline

    def expire(self) -> None:
        """Past its deadline: 408 if nothing was answered yet, then close; lingering, close."""
        self._deadline = None
        if self.lingering:
            if self.loop.time() >= self._linger_end:
                self._cut_off(f"{self.linger_time:g} s")
            else:  # the client was quiet for linger_timeout: it sends no more
                self.transport.close()
            return
        if self.transport.is_closing():
            return
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            # The app waiting for the body hears the client is gone, and its answer is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        if answered:
            self.transport.close()
        else:
            self._refuse(408, "the request was not received in time")

    # --- lingering close ----------------------------------------------------------------
    def linger(self) -> bool:
        """Instead of closing while a request is still arriving: stop writing (after what
        is pending), and read and discard until the client stops or a bound is reached.
        False when closing at once is right: nothing more is on its way, the server is
        shutting down, lingering is off (`linger_time` 0), or this ends the lingering."""
        if self.lingering or not self._receiving or self._shutting_down:
            return False
        if self.linger_time <= 0:
            return False
        self.lingering = True
        transport = self.transport
        if transport.can_write_eof():  # not under TLS: there, writing simply stops
            transport.write_eof()
        else:
            transport.flush()  # type: ignore[attr-defined]  # a _GuardedTransport
        now = self.loop.time()
        self._linger_end = now + self.linger_time
        self._deadline = min(now + self.linger_timeout, self._linger_end)
        declared = -1 if self._in_headers else _declared_length(self.headers)
        bound = self.linger_bytes if declared < 0 else min(declared, self.linger_bytes)
        self._linger_left = self._linger_bound = bound
        self.flow.resume_reading()  # uvicorn may have paused it for an unread body
        return True

    def _discard(self, size: int) -> None:
        self._discarded += size
        self._linger_left -= size
        if self._linger_left < 0:
            self._cut_off(f"{self._linger_bound} bytes")
            return
        self._deadline = min(self.loop.time() + self.linger_timeout, self._linger_end)

    def _cut_off(self, bound: str) -> None:
        """The client still sends after its lingering's bound: close (the kernel resets)."""
        self._deadline = None
        self.transport.close()
        self.logger.info("cut off a client still sending after its answer: %d bytes "
                         "discarded, bound %s", self._discarded, bound)  # fmt: skip

    def shutdown(self) -> None:
        self._shutting_down = True  # lingering would hold the server's shutdown up
        if self.lingering:
            self.transport.close()
        else:
            super().shutdown()

    # --- header bounds ------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.lingering:
            self._discard(len(data))
            return
        # httptools may raise a callback's exception as it is: answered below either way.
        with contextlib.suppress(_Refused):
            super().data_received(data)
        if self._in_headers and self._refusal is None:
            # Counted per chunk, not per header: httptools keeps a header being received in
            # memory until it ends, so a header that never ends must be cut off here.
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                limit = self.max_header_bytes
                self._refusal = (431, f"request line and headers over {limit} bytes")
        if self._refusal is not None:
            status, message = self._refusal
            self._refusal = None
            self._refuse(status, message)

    def send_400_response(self, msg: str) -> None:
        # httptools wraps a callback's exception in a parser error, which uvicorn answers
        # with a 400: ours is answered by data_received instead.
        if self._refusal is None:
            super().send_400_response(msg)

    def _refuse(self, status: int, message: str) -> None:
        """The service's problem details for `status`, then close (lingering, if a request
        is partly received): nothing more of it is parsed."""
        body = problem_bytes(status, _CODES[status], message)
        head = [_REFUSALS[status]]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/problem+json\r\nconnection: close\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        self.logger.info("refused a request: %s %s", status, message)


class _Sweeper:
    """One periodic check per event loop of every guarded connection's deadline."""

    _connections: ClassVar[set[Any]] = set()
    _timer: ClassVar[asyncio.TimerHandle | None] = None
    _loop: ClassVar[asyncio.AbstractEventLoop | None] = None

    @classmethod
    def watch(cls, protocol: GuardedHttpToolsProtocol) -> None:
        cls._connections = protocol.connections  # the server's own set of live connections
        if cls._timer is None or cls._loop is not protocol.loop:  # (a new loop: in tests)
            cls._loop = protocol.loop
            cls._timer = protocol.loop.call_later(SWEEP_INTERVAL, cls._sweep, protocol.loop)

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not cls._loop:
            return  # a loop left behind: its sweep ends
        now = loop.time()
        for connection in list(cls._connections):
            if isinstance(connection, GuardedHttpToolsProtocol) and connection.overdue(now):
                connection.expire()
        cls._timer = loop.call_later(SWEEP_INTERVAL, cls._sweep, loop)


def guarded_protocol(
    *,
    header_timeout: float,
    body_timeout: float,
    max_header_bytes: int,
    max_headers: int,
    linger_timeout: float = GuardedHttpToolsProtocol.linger_timeout,
    linger_time: float = GuardedHttpToolsProtocol.linger_time,
    linger_bytes: int = GuardedHttpToolsProtocol.linger_bytes,
) -> type[GuardedHttpToolsProtocol]:
    """A `GuardedHttpToolsProtocol` with these limits, for uvicorn's `--http`.

    Args:
        header_timeout: seconds from a request's first byte to its complete header block.
        body_timeout: seconds from the headers to the complete body.
        max_header_bytes: bytes of request line and header fields, at most.
        max_headers: header fields, at most.
        linger_timeout: lingering after an answer given before its request was all
            received ends when the client has been quiet this many seconds (nginx's
            `lingering_timeout`);
        linger_time: or this many seconds after it began (`lingering_time`; 0: no
            lingering, the connection is closed at once);
        linger_bytes: or when this many more bytes came (at most the declared body).
    """
    if min(header_timeout, body_timeout, linger_timeout) <= 0 or linger_time < 0:
        raise ValueError("timeouts must be > 0 seconds (linger_time >= 0)")
    if min(max_header_bytes, max_headers, linger_bytes) < 1:
        raise ValueError("limits must be at least 1")
    limits = {"header_timeout": header_timeout, "body_timeout": body_timeout,
              "max_header_bytes": max_header_bytes, "max_headers": max_headers,
              "linger_timeout": linger_timeout, "linger_time": linger_time,
              "linger_bytes": linger_bytes}  # fmt: skip
    return type("GuardedHttpProtocol", (GuardedHttpToolsProtocol,), limits)


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The request's Content-Length, or -1 without one (a chunked body)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return -1
