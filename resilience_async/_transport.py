"""An httpx transport on aiohttp's connection pool: the httpx API, a cheaper pool under load.

httpcore's pool scans every pooled connection on each request, so its cost grows with the
requests in flight. `bench transport` (docs/benchmarks.md) measures the tips client on each,
64 requests in flight on one core: 3.1 ms of CPU per request through httpcore, 0.23 ms
through this transport, and 18x the requests a second. Bodies stream: the reader decides how
much to read (`ResilientClient` stops at its `max_body`), and closing a body it did not
finish drops the connection rather than pooling it with unread data. httpx or the reader
decodes them, so aiohttp's own decompression is off.

Pool waiting is bounded here, with a semaphore, so that waiting for one of *our* connections
raises `httpx.PoolTimeout` (our saturation) and never looks like the upstream timing out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx
from yarl import URL

from resilience_async._resource import AsyncResource
from resilience_async._slots import Slots

_NO_TIMEOUT: dict[str, float | None] = {}
_CHUNK = 64 * 1024  # bytes a body read hands over at most: a reader's limit is never far off


class AiohttpTransport(AsyncResource, httpx.AsyncBaseTransport):
    """Sends httpx requests through one aiohttp session, on the running loop.

    `async with transport:` opens the session (else the first request does); `aclose()`
    closes it (a later request would open a new one).

    Args:
        max_connections: concurrent requests (and so connections) at most; more wait.
        keepalive_expiry: seconds an idle connection is kept for reuse.
    """

    def __init__(self, *, max_connections: int = 100, keepalive_expiry: float = 5.0) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self._slots = Slots(max_connections)
        self._keepalive_expiry = keepalive_expiry
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", _NO_TIMEOUT)
        await self._acquire(timeouts.get("pool"))
        try:
            response = await self._send(request, timeouts)
        except BaseException:
            self._slots.give_back()
            raise
        body = _Body(response, request, self._slots.give_back)  # the slot is the body's now
        return httpx.Response(
            response.status, headers=list(response.raw_headers), stream=body, request=request
        )

    def stats(self) -> dict[str, int]:
        """`in_use`: requests holding a connection slot (until their body is closed);
        `waiting`: requests queued for one."""
        return {"in_use": self._slots.taken, "waiting": self._slots.waiting}

    async def _open(self) -> None:
        if self._session is None:
            self._new_session()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _acquire(self, pool_wait: float | None) -> None:
        if not await self._slots.take(pool_wait):
            raise httpx.PoolTimeout(f"no free connection slot within {pool_wait} s")

    async def _send(
        self, request: httpx.Request, timeouts: dict[str, Any]
    ) -> aiohttp.ClientResponse:
        """The answer's status and headers; its body is left to stream."""
        session = self._session or self._new_session()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read")
        )
        try:
            return await session.request(
                request.method,
                self._url(request.url),
                headers=_str_headers(request),
                data=request.content or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translated(exc, request) from exc

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, keepalive_timeout=self._keepalive_expiry
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes, per Content-Encoding
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept"),  # httpx sends its own
        )
        return self._session

    def _url(self, url: httpx.URL) -> URL:
        """yarl's parsed URL, kept per URL string (a client calls few distinct URLs)."""
        key = str(url)
        parsed = self._urls.get(key)
        if parsed is None:
            parsed = URL(key, encoded=True)
            if len(self._urls) < 1024:
                self._urls[key] = parsed
        return parsed


class _Body(httpx.AsyncByteStream):
    """An aiohttp answer's body, read as far as its reader wants.

    Closed once read through, its connection goes back to the pool; closed before, the
    connection is dropped (unread data must never meet the next request). Either way the
    transport's slot is given back, once.
    """

    def __init__(
        self, response: aiohttp.ClientResponse, request: httpx.Request, done: Callable[[], None]
    ) -> None:
        self._response: aiohttp.ClientResponse | None = response
        self._request = request
        self._done = done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._response is None:
            raise httpx.StreamClosed()
        content = self._response.content
        try:
            while chunk := await content.read(_CHUNK):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translated(exc, self._request) from exc

    async def aclose(self) -> None:
        # Let go of the answer and what it buffered now: a traceback may keep this stream
        # until the cycle collector runs, which a server tunes to run rarely.
        response, self._response = self._response, None
        if response is None:
            return
        if response.content.at_eof():
            response.release()
        else:
            response.close()
        self._done()


def _translated(
    exc: aiohttp.ClientError | TimeoutError, request: httpx.Request
) -> httpx.TransportError:
    """aiohttp's error as httpx's, which `ResilientClient` and httpx's users know."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timed out", request=request)
    if isinstance(exc, aiohttp.SocketTimeoutError | aiohttp.ServerTimeoutError | TimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timed out", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(str(exc), request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(str(exc) or "server disconnected", request=request)
    return httpx.NetworkError(str(exc), request=request)


def _str_headers(request: httpx.Request) -> list[tuple[str, str]]:
    return [(key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw]
