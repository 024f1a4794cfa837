"""Incremental HTTP/1.1 response framing: just enough to know where a response ends.

Bodies are counted, never stored, and the common case (a whole small response in
one read) costs a few C-level `bytes` calls; this is the generator's hot path.
"""

from __future__ import annotations

_HEAD, _BODY, _UNTIL_CLOSE, _CHUNK_SIZE, _CHUNK_DATA, _TRAILER = range(6)
_MAX_HEAD = 64 * 1024
_MAX_LINE = 4 * 1024
_CONTENT_LENGTH = b"\r\ncontent-length:"
_TRANSFER_ENCODING = b"\r\ntransfer-encoding:"
_CONNECTION = b"\r\nconnection:"
_CHUNKED, _CLOSE_DELIMITED = -1, -2  # body lengths that are not byte counts
_HEAD_CACHE_SIZE = 256
_HEADS: dict[bytes, tuple[int, bool, int]] = {}


class ProtocolError(Exception):
    """The peer sent something that is not a well-framed HTTP/1.x response."""


class ResponseParser:
    """Frames one response at a time on a connection without pipelining."""

    __slots__ = ("_buf", "_head_request", "_remaining", "_state", "fresh", "keep_alive", "status")

    def __init__(self, *, head_request: bool = False) -> None:
        self._head_request = head_request
        self._buf = b""
        self._state = _HEAD
        self._remaining = 0
        self.status = 0
        self.keep_alive = True
        self.fresh = True  # no byte of the next response has arrived yet

    def feed(self, data: bytes) -> bool:
        """Consume `data`; True when it completed the current response."""
        self.fresh = False
        state = self._state
        if state == _HEAD:
            return self._feed_head(self._buf + data if self._buf else data)
        if state == _BODY:
            left = self._remaining - len(data)
            if left > 0:
                self._remaining = left
                return False
            if left < 0:
                raise ProtocolError("more bytes than Content-Length")
            return self._done()
        if state == _UNTIL_CLOSE:
            return False
        return self._feed_chunked(self._buf + data if self._buf else data, 0)

    def feed_eof(self) -> bool:
        """The peer closed: True if that completed a close-delimited body."""
        if self._state != _UNTIL_CLOSE:
            return False
        self._done()
        return True

    def _done(self) -> bool:
        self._state = _HEAD
        self._buf = b""
        self.fresh = True
        return True

    def _feed_head(self, buf: bytes) -> bool:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > _MAX_HEAD:
                raise ProtocolError("response head too large")
            self._buf = buf
            return False
        self._buf = b""
        body_at = end + 4
        head = buf[: end + 2]
        framing = _HEADS.get(head)
        if framing is None:
            framing = _remember(head)
        status, self.keep_alive, length = framing
        if status < 200:  # interim (100 Continue, 103 Early Hints): the real one follows
            return self._feed_head(buf[body_at:]) if body_at < len(buf) else False
        self.status = status
        if self._head_request:
            length = 0
        if length == len(buf) - body_at:  # the common case: the whole response in one read
            self.fresh = True
            return True
        if length >= 0:
            return self._expect(length, buf, body_at)
        if length == _CHUNKED:
            return self._feed_chunked(buf, body_at)
        self._state = _UNTIL_CLOSE
        return False

    def _expect(self, length: int, buf: bytes, body_at: int) -> bool:
        left = length - (len(buf) - body_at)
        if left < 0:
            raise ProtocolError("more bytes than the response declared")
        if left == 0:
            return self._done()
        self._state = _BODY
        self._remaining = left
        return False

    def _feed_chunked(self, buf: bytes, pos: int) -> bool:
        """Walk chunk sizes and skip chunk data; trailers are read and dropped."""
        state = self._state if self._state in (_CHUNK_DATA, _TRAILER) else _CHUNK_SIZE
        size = len(buf)
        while True:
            if state == _CHUNK_DATA:
                if size - pos < self._remaining:
                    self._remaining -= size - pos
                    self._state, self._buf = _CHUNK_DATA, b""
                    return False
                pos += self._remaining
                state = _CHUNK_SIZE
                continue
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if size - pos > _MAX_LINE:
                    raise ProtocolError("chunk line too long")
                self._state, self._buf = state, buf[pos:]
                return False
            line, pos = buf[pos:eol], eol + 2
            if state == _TRAILER:
                if not line:
                    if pos != size:
                        raise ProtocolError("bytes after the last chunk")
                    return self._done()
                continue
            chunk = _int(line.split(b";", 1)[0], 16)
            if chunk == 0:
                state = _TRAILER
            else:
                self._remaining, state = chunk + 2, _CHUNK_DATA  # data plus its CRLF


def _remember(head: bytes) -> tuple[int, bool, int]:
    """Parse a head and memoise it: a server repeats the same few heads, so most
    responses cost one dict lookup instead of a lower-case copy and four searches."""
    framing = _parse_head(head)
    if len(_HEADS) >= _HEAD_CACHE_SIZE:
        _HEADS.clear()
    _HEADS[head] = framing
    return framing


def _parse_head(head: bytes) -> tuple[int, bool, int]:
    """(status, keep-alive, body length or _CHUNKED / _CLOSE_DELIMITED) of a head ending in CRLF."""
    status = _status(head)
    lower = head.lower()
    keep_alive = _keep_alive(lower)
    if status < 200 or status in (204, 304):
        return status, keep_alive, 0
    encoding = _header(lower, _TRANSFER_ENCODING)
    if encoding is not None and b"chunked" in encoding:
        return status, keep_alive, _CHUNKED
    length = _header(lower, _CONTENT_LENGTH)
    if length is not None:
        return status, keep_alive, _int(length, 10)
    return status, False, _CLOSE_DELIMITED  # the body runs until the server closes


def _status(buf: bytes) -> int:
    if not buf.startswith(b"HTTP/1.") or buf[12:13] not in (b" ", b"\r"):
        raise ProtocolError(f"not an HTTP/1.x status line: {buf[:32]!r}")
    return _int(buf[9:12], 10)


def _int(raw: bytes, base: int) -> int:
    try:
        value = int(raw, base)
    except ValueError:
        raise ProtocolError(f"bad number {raw[:32]!r}") from None
    if value < 0:
        raise ProtocolError(f"negative number {raw[:32]!r}")
    return value


def _header(head: bytes, needle: bytes) -> bytes | None:
    """First value of a header in a lower-cased head that ends with CRLF."""
    start = head.find(needle)
    if start < 0:
        return None
    start += len(needle)
    return head[start : head.index(b"\r\n", start)].strip()


def _keep_alive(head: bytes) -> bool:
    """HTTP/1.1 keeps the socket unless told `close`; HTTP/1.0 only if told `keep-alive`."""
    connection = _header(head, _CONNECTION)
    if head.startswith(b"http/1.0"):
        return connection is not None and b"keep-alive" in connection
    return connection is None or b"close" not in connection
