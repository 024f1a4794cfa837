"""An early answer every client can read: the real service's 413, given before the body is
read, reaches a client that sends its whole body before it reads (urllib, http.client),
and a client that goes on sending is cut off at the lingering's bounds (project/serving.py,
the HTTP_LINGER_* settings)."""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from devstack.stack import Stack
from tests.helpers import assert_problem, cut_off_lines, send_until_cut_off, wait_for
from tests.servers import WebServer, run_web

pytestmark = pytest.mark.integration

SIX_MB = b" " * (6 * 1024 * 1024)  # JSON whitespace: only its size is wrong
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """The service with its default limits (a 16 kB body, lingering 5 s / 30 s / 8 MB)."""
    stack.heal()
    with run_web(stack, tmp_path_factory.mktemp("lingering")) as server:
        yield server


@pytest.fixture(scope="module")
def bounded(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """Lingering bounded at 1 MB and 2 s; one request in flight at most, refused at once."""
    stack.heal()
    with run_web(stack, tmp_path_factory.mktemp("bounded"), HTTP_LINGER_BYTES=str(1024**2),
                 HTTP_LINGER_TIME="2", HTTP_LINGER_TIMEOUT="1", MAX_IN_FLIGHT_REQUESTS="1",
                 MAX_IN_FLIGHT_WAIT="0") as server:  # fmt: skip
        yield server


def address(web: WebServer) -> tuple[str, int]:
    host, port = web.url.removeprefix("http://").split(":")
    return host, int(port)


def assert_too_large(status: int, content_type: str, body: bytes) -> None:
    assert (status, content_type) == (413, "application/problem+json")
    problem = assert_problem(json.loads(body), 413, "body")
    assert problem["code"] == "payload_too_large"


def test_urllib_sending_6_mb_reads_the_413(web: WebServer) -> None:
    """urllib sends the whole body, then reads: the 413 was sent after 16 kB, and is read."""
    request = urllib.request.Request(web.url + "/api/orders", data=SIX_MB, headers=JSON)
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(request, timeout=30)
    refusal = answered.value
    assert_too_large(refusal.code, refusal.headers["Content-Type"], refusal.read())


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_http_client_sending_6_mb_reads_the_413(web: WebServer, chunked: bool) -> None:
    """Declared (refused before a byte is read) or chunked (refused at the limit)."""
    conn = http.client.HTTPConnection(*address(web), timeout=30)
    try:
        if chunked:
            chunks = (SIX_MB[i : i + 65536] for i in range(0, len(SIX_MB), 65536))
            conn.request("POST", "/api/orders", body=chunks, headers=JSON, encode_chunked=True)
        else:
            conn.request("POST", "/api/orders", body=SIX_MB, headers=JSON)
        response = conn.getresponse()
        assert_too_large(response.status, response.getheader("Content-Type", ""), response.read())
        assert response.getheader("Connection") == "close"
    finally:
        conn.close()


HEAD = (b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n")  # fmt: skip


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    return data


def test_a_client_sending_for_ever_is_cut_off_at_the_byte_bound(bounded: WebServer) -> None:
    """It declares 1 GB and sends on after its 413: the server discards 1 MB of it (and at
    most one read more), then closes; the client is reset."""
    before = len(cut_off_lines(bounded.child.log_path))
    with socket.create_connection(address(bounded), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.sendall(HEAD % 1024**3)
        assert read_head(sock).startswith(b"HTTP/1.1 413 ")
        sent = send_until_cut_off(sock, b" " * 65536)
    lines = wait_for(lambda: cut_off_lines(bounded.child.log_path)[before:])
    [(discarded, bound)] = lines
    assert bound == f"{1024**2} bytes"
    assert 1024**2 < discarded <= 1024**2 + 256 * 1024
    assert sent < 64 * 1024**2  # the rest sat in the kernels' buffers


def test_a_client_trickling_for_ever_is_cut_off_at_the_time_bound(bounded: WebServer) -> None:
    """A byte every 50 ms is never quiet for HTTP_LINGER_TIMEOUT: HTTP_LINGER_TIME ends it.
    Meanwhile the request is over: the one place in flight is free for another."""
    before = len(cut_off_lines(bounded.child.log_path))
    with socket.create_connection(address(bounded), timeout=10) as sock:
        sock.sendall(HEAD % 1_000_000 + b" " * 1024)
        assert read_head(sock).startswith(b"HTTP/1.1 413 ")
        sock.sendall(b" ")
        assert bounded.client.get("/api/orders?limit=1").status_code == 200
        send_until_cut_off(sock, b" ", pace=0.05)
    [(_, bound)] = wait_for(lambda: cut_off_lines(bounded.child.log_path)[before:])
    assert bound == "2 s"
