"""The demo upstream's misbehaving bodies: too large to hold, and garbage.

An oversized body is made as it is sent, one reused chunk after another, so the upstream
holds a chunk of it, never the whole (a gzip one is one compressed MiB, repeated). Garbage
is what a 200 from a broken upstream carries: half a JSON document, an HTML page, JSON of
the wrong shape, or a body that says it is gzip and is not.
"""

from __future__ import annotations

import asyncio
import functools
import struct
import zlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any, NamedTuple

from devstack.upstream.behaviour import Garbage, ModeState

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHUNK = 64 * 1024
_HEAD, _TAIL = b'{"tips":[],"pad":"', b'"}'
_FILL = b"x" * CHUNK
_GZIP_WBITS = zlib.MAX_WBITS | 16
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no name, no mtime
_MIB = 1 << 20
_FILL_MIB = b"x" * _MIB

_JSON = (b"content-type", b"application/json")
GARBAGE: dict[Garbage, tuple[tuple[tuple[bytes, bytes], ...], bytes]] = {  # headers, body
    Garbage.TRUNCATED_JSON: ((_JSON,), b'{"tips":[{"id":1,"text":"Set a time'),
    Garbage.HTML: (
        ((b"content-type", b"text/html; charset=utf-8"),),
        b"<!doctype html><html><head><title>Maintenance</title></head>"
        b"<body><h1>Back soon</h1></body></html>",
    ),
    Garbage.WRONG_SHAPE: ((_JSON,), b'{"tips":"none today"}'),
    Garbage.BAD_GZIP: ((_JSON, (b"content-encoding", b"gzip")), b'{"tips":[]} is not gzip'),
}


def padded_json(size: int) -> Iterator[bytes]:
    """A JSON object of exactly `size` bytes, in chunks (spaces when too small for one)."""
    if size < len(_HEAD) + len(_TAIL):
        yield b" " * size
        return
    yield _HEAD
    fill = size - len(_HEAD) - len(_TAIL)
    while fill >= CHUNK:
        yield _FILL
        fill -= CHUNK
    if fill:
        yield _FILL[:fill]
    yield _TAIL


def gzipped(size: int) -> tuple[int, Iterator[bytes]]:
    """`padded_json(size)` gzip-compressed, as its length and its chunks.

    Each MiB of filler is compressed alone (a full flush between them), so all compress to
    one block of about 1 KiB, made once: a bomb of any size costs its first MiB to make,
    and its checksum (0.4 s for 512 MiB, once a size).
    """
    if size < len(_HEAD) + len(_TAIL) + _MIB:
        whole = zlib.compress(b"".join(padded_json(size)), 6, _GZIP_WBITS)
        return len(whole), iter((whole,))
    blocks, rest = divmod(size - len(_HEAD) - len(_TAIL), _MIB)
    head = _GZIP_HEADER + _deflated(_HEAD, zlib.Z_FULL_FLUSH)
    last = _deflated(_FILL_MIB[:rest] + _TAIL, zlib.Z_FINISH)
    last += struct.pack("<II", _crc(size), size & 0xFFFFFFFF)
    length = len(head) + blocks * len(_filler_block()) + len(last)
    return length, _gzip_chunks(head, blocks, last)


def _gzip_chunks(head: bytes, blocks: int, last: bytes) -> Iterator[bytes]:
    yield head
    block = _filler_block()
    per_chunk = max(1, CHUNK // len(block))  # sent CHUNK by CHUNK, as a bomb would be
    for start in range(0, blocks, per_chunk):
        yield block * min(per_chunk, blocks - start)
    yield last


@functools.lru_cache(maxsize=4)
def _crc(size: int) -> int:
    """The CRC-32 of `padded_json(size)`, the gzip trailer's checksum."""
    crc = 0
    for chunk in padded_json(size):
        crc = zlib.crc32(chunk, crc)
    return crc


@functools.cache
def _filler_block() -> bytes:
    return _deflated(_FILL_MIB, zlib.Z_FULL_FLUSH)


def _deflated(data: bytes, flush: int) -> bytes:
    """`data` as raw deflate blocks that need nothing before them (a fresh compressor)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(flush)


class Streamed(NamedTuple):
    """A response sent as it is made: its start at once, its body after `delay` seconds."""

    status: int
    start: dict[str, Any]
    chunks: Iterable[bytes]
    delay: float


async def oversized(state: ModeState) -> Streamed:
    """A 200 of `state.size` bytes (decoded), its length declared unless `state.chunked`."""
    headers = [(b"content-type", b"application/json")]
    if state.gzip:
        headers.append((b"content-encoding", b"gzip"))
        length, chunks = await asyncio.to_thread(gzipped, state.size)  # its checksum: a while
    else:
        length, chunks = state.size, padded_json(state.size)
    if not state.chunked:
        headers.append((b"content-length", b"%d" % length))
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    return Streamed(200, start, chunks, state.delay_ms / 1000)


async def stream(response: Streamed, receive: Receive, send: Send) -> None:
    """Send the start, then the body chunk by chunk until it ends or the client leaves."""
    await send(response.start)
    gone = asyncio.create_task(wait_disconnect(receive))
    try:
        if response.delay:
            await asyncio.wait((gone,), timeout=response.delay)
        for chunk in response.chunks:
            if gone.done():
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        gone.cancel()


async def wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
