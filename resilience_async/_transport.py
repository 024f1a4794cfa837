"""An httpx transport on aiohttp's connection pool: the httpx API, a cheaper pool under load.

httpcore's pool scans every pooled connection on each request, so its cost grows with the
requests in flight. `bench transport` (docs/benchmarks.md) measures the tips client on each,
64 requests in flight on one core: 3.1 ms of CPU per request through httpcore, 0.23 ms
through this transport, and 18x the requests a second. Bodies are read whole (a
service-to-service JSON client, not a downloader), and httpx decodes them, so aiohttp's own
decompression is off.

Pool waiting is bounded here, with a semaphore, so that waiting for one of *our* connections
raises `httpx.PoolTimeout` (our saturation) and never looks like the upstream timing out.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from yarl import URL

from resilience_async._resource import AsyncResource
from resilience_async._slots import Slots

_NO_TIMEOUT: dict[str, float | None] = {}


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
            status, headers, content = await self._send(request, timeouts)
        finally:
            self._slots.give_back()
        return httpx.Response(status, headers=headers, content=content, request=request)

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
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        session = self._session or self._new_session()
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read")
        )
        try:
            async with session.request(
                request.method,
                self._url(request.url),
                headers=_str_headers(request),
                data=request.content or None,
                allow_redirects=False,
                timeout=timeout,
            ) as response:
                return response.status, list(response.raw_headers), await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
        except (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError, TimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(
                str(exc) or "server disconnected", request=request
            ) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(str(exc), request=request) from exc

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


def _str_headers(request: httpx.Request) -> list[tuple[str, str]]:
    return [(key.decode("latin-1"), value.decode("latin-1")) for key, value in request.headers.raw]
