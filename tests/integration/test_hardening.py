"""What hostile input and a bad day found, made to happen again against the real service:
each answer is a clean 4xx (or the documented behaviour), never a 5xx or a traceback."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from loadtests.stack import Stack
from tests.helpers import assert_error, metric
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
    """Any path: the service speaks HTTP only. A real WebSocket client is refused (403),
    nothing is logged as an error, and the refusal is counted."""
    before = request_count(web, "websocket", 403)
    ws_url = web.url.replace("http://", "ws://")
    for path in ("/api/tips", "/nowhere"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(ws_url + path):
                pass
        assert refused.value.response.status_code == 403
    assert request_count(web, "websocket", 403) == before + 2
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
    """Read until the server closes its side (EOF, or a reset); the socket's timeout fails the
    test if it keeps the connection open."""
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass


def test_a_body_declared_too_large_is_refused_before_it_is_sent(web: WebServer) -> None:
    """Content-Length of 50 MB: 413 with the error body after 1 kB of it, and the server
    closes the connection: the other 49.99 MB are never read (nor spooled to disk)."""
    host, port = web.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n"
                     + b" " * 1024)  # fmt: skip
        status, headers, body = raw_response(sock)
        wait_closed_by_server(sock)
    assert (status, headers["connection"]) == (413, "close")
    assert json.loads(body)["error"] == {
        "code": "payload_too_large", "field": "body",
        "message": "the body is larger than 16384 bytes",
    }  # fmt: skip


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
    assert json.loads(body)["error"]["code"] == "payload_too_large"
