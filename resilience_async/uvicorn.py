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

A request on the hot path pays a few attribute stores: the deadlines are enforced by one
sweep a second over the server's connections, not by a timer per request.

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


class _Refused(Exception):
    """A parser callback refuses the request (raised through httptools' parser)."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with request deadlines and header bounds (set by the subclass
    `guarded_protocol` makes)."""

    header_timeout = 10.0
    body_timeout = 10.0
    max_header_bytes = 16 * 1024
    max_headers = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: float | None = None  # when the part being received is overdue
        self._in_headers = True  # between a request's first byte and its header block's end
        self._header_bytes = 0
        self._refusal: tuple[int, str] | None = None

    # --- deadlines ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked = CorkedTransport(transport, asyncio.get_running_loop())
        super().connection_made(corked)  # type: ignore[arg-type]  # a transport in all it does
        self._deadline = self.loop.time() + self.header_timeout
        _Sweeper.watch(self)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
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
        super().on_message_complete()

    def overdue(self, now: float) -> bool:
        return self._deadline is not None and now > self._deadline

    def expire(self) -> None:
        """Past its deadline: 408 if nothing was answered yet, then close."""
        self._deadline = None
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

    # --- header bounds ------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
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
        """The service's problem details for `status`, then close: nothing more is read."""
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

    @classmethod
    def watch(cls, protocol: GuardedHttpToolsProtocol) -> None:
        cls._connections = protocol.connections  # the server's own set of live connections
        if cls._timer is None:
            cls._timer = protocol.loop.call_later(SWEEP_INTERVAL, cls._sweep, protocol.loop)

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop) -> None:
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
) -> type[GuardedHttpToolsProtocol]:
    """A `GuardedHttpToolsProtocol` with these limits, for uvicorn's `--http`.

    Args:
        header_timeout: seconds from a request's first byte to its complete header block.
        body_timeout: seconds from the headers to the complete body.
        max_header_bytes: bytes of request line and header fields, at most.
        max_headers: header fields, at most.
    """
    if min(header_timeout, body_timeout) <= 0 or min(max_header_bytes, max_headers) < 1:
        raise ValueError("timeouts must be > 0 seconds and limits at least 1")
    limits = {"header_timeout": header_timeout, "body_timeout": body_timeout,
              "max_header_bytes": max_header_bytes, "max_headers": max_headers}  # fmt: skip
    return type("GuardedHttpProtocol", (GuardedHttpToolsProtocol,), limits)
