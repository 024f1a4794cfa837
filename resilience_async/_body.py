"""An answer's body read within a limit: the bytes declared, received and decoded alike.

A declared Content-Length past the limit fails before a byte of the body is read; a body
that arrives past it (chunked, or lying about its length) fails as soon as it does; a
compressed one is inflated at most one byte past it, so a gzip bomb never grows in memory.
The response is closed either way: a transport then drops a connection with unread data
instead of pooling it. Only the content-codings decoded here with a bound are asked for.
"""

from __future__ import annotations

import traceback
import zlib

import httpx

from resilience_async._errors import ResponseTooLargeError, UnusableResponseError

# The content-codings decoded here; a client asks for these (and identity) only.
ACCEPT_ENCODING = "gzip, deflate"
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}
_BODILESS = frozenset({204, 304})


class _Inflater:
    """zlib's decompressor asked for at most `room + 1` bytes a call: past `room`, it stops."""

    def __init__(self, encoding: str, *, limit: int, upstream: str) -> None:
        self._zlib = zlib.decompressobj(_WBITS[encoding])
        self._encoding = encoding
        self._limit = limit
        self._upstream = upstream

    def decode(self, data: bytes, room: int) -> bytes:
        try:
            decoded = self._zlib.decompress(data, room + 1)
        except zlib.error as exc:
            raise UnusableResponseError(
                self._upstream, "bad_encoding", f"sent a {self._encoding} body that does not "
                f"decode ({exc})",
            ) from exc  # fmt: skip
        if len(decoded) > room:  # zlib stopped at room + 1: more was coming
            raise ResponseTooLargeError(self._upstream, self._limit, encoding=self._encoding)
        return decoded


async def read_within(
    response: httpx.Response, request: httpx.Request, *, limit: int, upstream: str
) -> httpx.Response:
    """`response` with its body read and decoded, `limit` bytes at most; closed either way.

    Raises `ResponseTooLargeError` past the limit, `UnusableResponseError` ("bad_encoding")
    for a content-coding that was not asked for or does not decode. A decoded body comes
    back in a new response without Content-Encoding, so nothing decodes it twice.
    """
    try:
        if response.is_stream_consumed:  # read already by its maker (httpx.MockTransport)
            return _checked_in_memory(response, limit, upstream)
        body, decoded = await _read_body(response, request, limit, upstream)
    except BaseException as exc:
        # A traceback keeps its frames, and the body they read, until the cycle collector
        # runs, which a server tunes to run rarely: what was read goes now.
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        await response.aclose()
    headers = _decoded_headers(response.headers) if decoded else response.headers
    return httpx.Response(response.status_code, headers=headers, content=body, request=request,
                          extensions=response.extensions)  # fmt: skip


async def _read_body(
    response: httpx.Response, request: httpx.Request, limit: int, upstream: str
) -> tuple[bytes, bool]:
    """The body, and whether a content-coding was undone to get it."""
    if request.method != "HEAD" and response.status_code not in _BODILESS:
        _check_declared(response, limit, upstream)
    encoding = _encoding(response, upstream)
    inflater = None if encoding is None else _Inflater(encoding, limit=limit, upstream=upstream)
    return await _read(response, inflater, limit, upstream), inflater is not None


def _check_declared(response: httpx.Response, limit: int, upstream: str) -> None:
    declared = response.headers.get("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(upstream, limit, declared=int(declared))


def _encoding(response: httpx.Response, upstream: str) -> str | None:
    """The one content-coding to undo (None: identity), or "bad_encoding" for any other."""
    value = response.headers.get("Content-Encoding", "")
    codings = [c for c in (part.strip().lower() for part in value.split(",")) if c]
    codings = [coding for coding in codings if coding != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _WBITS:
        detail = f"sent content-encoding {value[:40]!r}, not one asked for ({ACCEPT_ENCODING})"
        raise UnusableResponseError(upstream, "bad_encoding", detail)
    coding: str = codings[0]
    return coding


async def _read(
    response: httpx.Response, inflater: _Inflater | None, limit: int, upstream: str
) -> bytes:
    parts: list[bytes] = []
    received = size = 0
    stream = response.stream  # read here, not by aiter_raw: httpx's layers cost what this does
    if not isinstance(stream, httpx.AsyncByteStream):
        raise TypeError(f"an async transport answered with a {type(stream).__name__}")
    async for raw in stream:
        received += len(raw)
        if received > limit:  # on the wire: compressed or not, never held past the limit
            raise ResponseTooLargeError(upstream, limit)
        chunk = raw if inflater is None else inflater.decode(raw, limit - size)
        size += len(chunk)
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _checked_in_memory(response: httpx.Response, limit: int, upstream: str) -> httpx.Response:
    if len(response.content) > limit:
        raise ResponseTooLargeError(upstream, limit)
    return response


def _decoded_headers(headers: httpx.Headers) -> httpx.Headers:
    """The headers of the decoded body: no Content-Encoding, and its own Content-Length."""
    dropped = {b"content-encoding", b"content-length"}
    return httpx.Headers([(k, v) for k, v in headers.raw if k.lower() not in dropped])
