"""What `bench transport`'s client process sends with: the service's tips client on each
transport, and the ceiling, the same exchange on raw asyncio streams.

Both transports serve the client the service builds (`project.builders`: its breaker, retry
budget, bulkhead and timeouts, from the settings' defaults), calling `get_json("/tips")` as
the tips service does; only the transport differs, with the same pool limits:
`UPSTREAM_MAX_CONNECTIONS` connections, every one of them kept alive for 5 s when idle
(httpx's own default keeps 20 alive: at 64 in flight it would open and close connections).
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import httpx

from loadtests.bench.transport.loop import Send
from project import builders
from resilience_async import AiohttpTransport, UpstreamStatusError

HTTPX, AIOHTTP, RAW = "httpx", "aiohttp", "raw"
NAMES = (HTTPX, AIOHTTP, RAW)
KEEPALIVE_EXPIRY = 5.0  # seconds: AiohttpTransport's default, and httpx's
PATH = "/tips"  # what the tips service asks its upstream for
_LENGTH = re.compile(rb"content-length:\s*(\d+)", re.IGNORECASE)


def transport(name: str, max_connections: int) -> httpx.AsyncBaseTransport:
    """The contender `name`'s transport, pooling up to `max_connections`, all kept alive."""
    if name == HTTPX:
        limits = httpx.Limits(max_connections=max_connections,
                              max_keepalive_connections=max_connections,
                              keepalive_expiry=KEEPALIVE_EXPIRY)  # fmt: skip
        return httpx.AsyncHTTPTransport(limits=limits)
    if name == AIOHTTP:  # what ResilientClient builds when given no transport
        return AiohttpTransport(max_connections=max_connections,
                                keepalive_expiry=KEEPALIVE_EXPIRY)  # fmt: skip
    raise ValueError(f"no transport {name!r}: {HTTPX} or {AIOHTTP}")


async def sender(name: str, settings: Any, closing: AsyncExitStack) -> Send:
    """A `Send` for contender `name` against `settings.TIPS_UPSTREAM_URL`; `closing` closes
    what it opened."""
    if name == RAW:
        return _raw(settings.TIPS_UPSTREAM_URL, settings.UPSTREAM_TIMEOUT, closing)
    breaker = await closing.enter_async_context(builders.tips_breaker(settings))
    chosen = transport(name, settings.UPSTREAM_MAX_CONNECTIONS)
    client = builders.tips_client(settings, breaker=breaker, transport=chosen)
    await closing.enter_async_context(client)

    async def send() -> int:
        try:
            await client.get_json(PATH)
        except UpstreamStatusError as exc:
            return exc.status
        return 200

    return send


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _raw(url: str, timeout: float, closing: AsyncExitStack) -> Send:
    """The ceiling: one request, its head read to the blank line and its JSON body decoded,
    on a free list of kept-alive connections: no HTTP library, no breaker, no pool limit."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = f"GET {PATH} HTTP/1.1\r\nhost: {parts.netloc}\r\naccept: */*\r\n\r\n".encode()
    free: list[Streams] = []
    closing.callback(lambda: [writer.close() for _, writer in free])

    async def send() -> int:
        streams = free.pop() if free else await asyncio.open_connection(host, port)
        async with asyncio.timeout(timeout):
            status = await _exchange(streams, request)
        free.append(streams)  # only after a whole answer: a failed one is dropped
        return status

    return send


async def _exchange(streams: Streams, request: bytes) -> int:
    reader, writer = streams
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = _LENGTH.search(head)
    body = await reader.readexactly(int(length.group(1)) if length else 0)
    json.loads(body)
    return int(head[9:12])
