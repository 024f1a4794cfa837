"""What hostile input and a bad day found, made to happen again against the real service:
each answer is a clean 4xx (or the documented behaviour), never a 5xx or a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import random
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from devstack.stack import Stack
from tests.helpers import (
    assert_error,
    assert_problem,
    cut_off_lines,
    forget_reports,
    metric,
    send_until_cut_off,
    wait_for,
)
from tests.servers import WebServer, run_web

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    stack.heal()
    with run_web(stack, tmp_path_factory.mktemp("hardening")) as server:
        yield server


def logged_errors(web: WebServer) -> list[str]:
    """Lines the server logged at error level or above, or with a traceback."""
    lines = web.child.log_path.read_text().splitlines()
    return [line for line in lines if '"level": "error"' in line or "Traceback" in line
            or '"level": "critical"' in line]  # fmt: skip


def request_count(web: WebServer, route: str, status: int) -> float:
    labels = {"method": "GET", "route": route, "status": str(status)}
    count = metric(web.get("/metrics").text, "http_request_duration_seconds_count", **labels)
    return count or 0.0


async def test_a_websocket_handshake_is_refused_with_a_403(web: WebServer) -> None:
    """Any path: the service speaks HTTP only. A real WebSocket client is refused (403, the
    error body), before any view runs, and nothing is logged as an error."""
    before = request_count(web, "unmatched", 200) + request_count(web, "tips", 200)
    ws_url = web.url.replace("http://", "ws://")
    for path in ("/api/tips", "/nowhere"):
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(ws_url + path):
                pass
        assert refused.value.response.status_code == 403
        assert b'"code":"websocket_refused"' in refused.value.response.body
    assert request_count(web, "unmatched", 200) + request_count(web, "tips", 200) == before
    assert logged_errors(web) == []


def test_a_gzip_body_is_decoded_and_a_false_or_unknown_encoding_refused(web: WebServer) -> None:
    """Content-Encoding is honoured: gzip is decoded; a plain body that says it is gzip is a
    400 and an encoding the service does not speak a 415, both naming the header."""
    order = json.dumps({"item": "gzipped tea", "quantity": 2}).encode()
    headers = {"Content-Type": "application/json"}
    sent = web.client.post("/api/orders", content=gzip.compress(order),
                           headers={**headers, "Content-Encoding": "gzip"})  # fmt: skip
    lying = web.client.post("/api/orders", content=order,
                            headers={**headers, "Content-Encoding": "gzip"})  # fmt: skip
    unknown = web.client.post("/api/orders", content=order,
                              headers={**headers, "Content-Encoding": "br"})  # fmt: skip
    assert (sent.status_code, sent.json()["item"]) == (201, "gzipped tea")
    assert assert_error(lying, 400, "Content-Encoding")["code"] == "malformed_body"
    assert assert_error(unknown, 415, "Content-Encoding")["code"] == (
        "unsupported_content_encoding"
    )


def raw_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (Content-Length framed) off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(status_line.split()[1]), headers, body


def wait_closed_by_server(sock: socket.socket) -> None:
    """Read until the server closes its side (EOF, or a reset): it has nothing more to say
    (it may still read, lingering); the socket's timeout fails the test if it keeps the
    connection open."""
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass


def test_a_body_declared_too_large_is_refused_before_it_is_sent(web: WebServer) -> None:
    """Content-Length of 50 MB: 413 with the error body after 1 kB of it, and the server
    sends nothing more. It lingers (resilience_async.uvicorn): it reads on, only to discard,
    so that a client sending its whole body first reads the 413 too, and at most
    HTTP_LINGER_BYTES (8 MB) of the other 49.99 MB: a client sending them all is cut off
    (and nothing of them is held in memory or spooled to disk)."""
    before = len(cut_off_lines(web.child.log_path))
    host, port = web.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n"
                     + b" " * 1024)  # fmt: skip
        status, headers, body = raw_response(sock)
        wait_closed_by_server(sock)
        send_until_cut_off(sock, b" " * 65536, limit=52428800 - 1024)  # fails if all went
    assert (status, headers["connection"]) == (413, "close")
    assert headers["content-type"] == "application/problem+json"
    assert json.loads(body) == {
        "type": "/problems/payload_too_large", "title": "Payload too large", "status": 413,
        "detail": "the body is larger than 16384 bytes", "code": "payload_too_large",
        "field": "body",
    }  # fmt: skip
    [(discarded, bound)] = wait_for(lambda: cut_off_lines(web.child.log_path)[before:])
    assert bound == f"{8 * 1024**2} bytes"
    assert discarded <= 8 * 1024**2 + 256 * 1024  # one read past the bound, at most


def test_a_chunked_body_is_refused_once_it_passes_the_limit(web: WebServer) -> None:
    """No length to check up front: reading stops at the limit; 413, connection closed,
    although the body never ended."""
    host, port = web.url.removeprefix("http://").split(":")
    chunk = b"1000\r\n" + b" " * 4096 + b"\r\n"  # 4 kB chunks, and no last chunk
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/reports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + chunk * 5)  # fmt: skip
        status, headers, body = raw_response(sock)
        wait_closed_by_server(sock)
    assert (status, headers["connection"]) == (413, "close")
    assert json.loads(body)["code"] == "payload_too_large"


class KeepAliveLoad:
    """Keep-alive clients behind a load balancer: each sends requests one after another on
    its connection; told `Connection: close`, it goes elsewhere (stops). Every request a
    closing connection dropped is counted."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.sent = self.answered = self.dropped = self.sent_away = 0
        self.flowing = asyncio.Event()

    async def client(self) -> None:
        reader, writer = await asyncio.open_connection(*self.address)
        try:
            while await self._one(reader, writer):
                pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """One request; whether to send another on this connection."""
        writer.write(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.sent += 1
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.dropped += 1  # sent on a connection that closed before answering
            return False
        self.answered += 1
        if self.answered >= 1000:
            self.flowing.set()
        if b"connection: close" in head:
            self.sent_away += 1
            return False
        return True


async def test_a_drain_under_keep_alive_load_drops_no_request(stack: Stack, tmp_path: Path) -> None:
    """64 keep-alive clients, then SIGTERM with SHUTDOWN_DRAIN_DELAY: while it drains each
    answer says `Connection: close`, so every client leaves before the server closes its
    connections; every request sent is answered, none is dropped by a closing connection."""
    stack.heal()
    with run_web(stack, tmp_path, SHUTDOWN_DRAIN_DELAY="1") as server:
        load = KeepAliveLoad(server.url)
        clients = [asyncio.create_task(load.client()) for _ in range(64)]
        await asyncio.wait_for(load.flowing.wait(), timeout=30)
        os.kill(server.child.pid, signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*clients), timeout=30)
        exit_code = server.child.popen.wait(timeout=10)
    assert (load.dropped, load.answered) == (0, load.sent)
    assert load.sent_away == 64
    # uvicorn re-raises the signal once its graceful shutdown is done.
    assert exit_code == -signal.SIGTERM
    assert "Finished server process" in server.child.log_path.read_text()


# --- slow clients and header bounds (project/serving.py) --------------------------------------


@pytest.fixture(scope="module")
def strict(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """A server with 1 s to receive a request's headers, and 1 s for its body."""
    stack.heal()
    with run_web(stack, tmp_path_factory.mktemp("strict"), HTTP_HEADER_TIMEOUT="1",
                 HTTP_BODY_TIMEOUT="1") as server:  # fmt: skip
        yield server


def connect(web: WebServer) -> socket.socket:
    host, port = web.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def refusal(sock: socket.socket) -> tuple[int, str]:
    """The status and error code the server answered before closing the connection."""
    status, headers, body = raw_response(sock)
    wait_closed_by_server(sock)
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/problem+json"
    return status, assert_problem(json.loads(body), status)["code"]


REQUEST_LINE = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.mark.parametrize(
    "sent",
    [b"", REQUEST_LINE, REQUEST_LINE + b"X-Slow: a"],
    ids=["silent", "headers-unfinished", "header-unfinished"],
)
def test_a_client_too_slow_with_its_headers_is_answered_408_and_let_go(
    strict: WebServer, sent: bytes
) -> None:
    """Slowloris: nothing, or headers that never end; the server answers 408 and closes,
    instead of holding the connection for ever."""
    with connect(strict) as sock:
        sock.sendall(sent)
        assert refusal(sock) == (408, "request_timeout")


def test_a_body_too_slow_is_answered_408_and_let_go(strict: WebServer) -> None:
    with connect(strict) as sock:
        sock.sendall(b"POST /api/reports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")  # fmt: skip
        assert refusal(sock) == (408, "request_timeout")


@pytest.mark.parametrize(
    "headers",
    [
        b"X-Big: " + b"a" * 1_000_000 + b"\r\n",
        b"".join(b"X-%d: v\r\n" % n for n in range(10_000)),
        b"".join(b"X-%d: v\r\n" % n for n in range(101)),  # few bytes, too many fields
    ],
    ids=["1-MB-header", "10000-headers", "101-headers"],
)
def test_headers_too_large_or_too_many_are_431(strict: WebServer, headers: bytes) -> None:
    with connect(strict) as sock:
        with contextlib.suppress(ConnectionError):  # the server may close before it all went
            sock.sendall(REQUEST_LINE + headers + b"\r\n")
        assert refusal(sock) == (431, "headers_too_large")


def test_a_thousand_slow_clients_neither_block_requests_nor_stay(strict: WebServer) -> None:
    """1,000 connections holding unfinished headers: ordinary requests are answered all the
    while, and every slow connection is answered 408 and closed."""
    slow = [connect(strict) for _ in range(1000)]
    try:
        for sock in slow:
            sock.sendall(REQUEST_LINE)
        answered = [strict.get("/health/live").status_code for _ in range(20)]
        refused = [refusal(sock)[0] for sock in slow]
    finally:
        for sock in slow:
            sock.close()
    assert answered == [200] * 20
    assert refused == [408] * 1000


# --- fuzzing: whatever comes in, the answer is never a 5xx -----------------------------------

_PATHS = [
    "/api/tips",
    "/api/orders",
    "/api/orders/1",
    "/api/orders/99999999999999999999",
    "/api/orders/-1",
    "/api/reports",
    "/api/reports/not-a-uuid",
    "/api/reports/5f0b8a52-32b4-4a8a-9d43-3d3c1d7f0e11",
    "/health/ready",
    "/metrics",
    "/%00",
    "/api/orders?limit=0",
    "/api/orders?before=abc&limit=101",
    "/" + "a" * 3000,
]
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "BREW"]
_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "text/plain",
    "",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
]
_VALUES = [
    None,
    True,
    0,
    -1,
    1.5,
    10**40,
    "",
    "x" * 300,
    "\u0000",
    "\ud800",
    [],
    {},
    [1, 2],
    {"a": 1},
    "2024-13-45",
    "2024-01-01T00:00:00+00:00:30.5",
]


def _fuzzed_body(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))
    if kind == 1:
        return b'{"item": "tea", "quantity": ' + rng.choice([b"1", b"", b"1e309", b"[", b"}"])
    fields = ["item", "quantity", "item_prefix", "since", "include_tips", "extra", ""]
    data = {rng.choice(fields): rng.choice(_VALUES) for _ in range(rng.randrange(0, 4))}
    body = json.dumps(data).encode()
    return gzip.compress(body) if kind == 3 else body


def test_a_thousand_fuzzed_requests_get_no_5xx(web: WebServer, stack: Stack) -> None:
    """Random methods, paths, headers and bodies (seeded: the same every run): every answer
    is a 2xx, 3xx or 4xx, and nothing is logged as an error."""
    rng = random.Random(20261130)
    statuses: dict[int, int] = {}
    accepted: list[str] = []  # reports a fuzzed request happened to submit: forgotten after
    for _ in range(1000):
        headers = {"Content-Type": rng.choice(_TYPES)}
        if rng.random() < 0.2:
            headers["Content-Encoding"] = rng.choice(["gzip", "deflate", "br", "identity", "x"])
        if rng.random() < 0.2:
            headers["X-Consistency-Token"] = rng.choice(["0/1", "zz", "1/2/3", "FFFFFFFF/0"])
        if rng.random() < 0.2:
            headers["Idempotency-Key"] = rng.choice(['"k"', "k" * 300, "a b", "ok-key"])
        response = web.client.request(rng.choice(_METHODS), rng.choice(_PATHS), headers=headers,
                                      content=_fuzzed_body(rng))  # fmt: skip
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        if response.status_code == 202:
            accepted.append(response.json()["id"])
    forget_reports(stack, accepted)
    assert [status for status in statuses if status >= 500] == [], statuses
    assert logged_errors(web) == []
