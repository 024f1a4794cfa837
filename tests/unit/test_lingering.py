"""Lingering close in `resilience_async.uvicorn`: an answer given before its request was all
received reaches a client that sends its whole body before it reads, and the client that
goes on sending is cut off at a bound.

A real uvicorn server (its `Server`, on uvloop, in a thread) serves the guarded protocol on
a loopback port; the app answers as the service's handler answers a body over its limit:
413 with `Connection: close`, before reading a byte of the body.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from resilience_async.uvicorn import guarded_protocol
from tests.helpers import send_until_cut_off, wait_for

BODY = json.dumps({"code": "payload_too_large"}).encode()
SIX_MB = b"x" * (6 * 1024 * 1024)


async def answer_early(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """413 and `Connection: close`, the body unread (`EventLoopASGIHandler._refuse_body`)."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"application/problem+json"), (b"connection", b"close"),
               (b"content-length", str(len(BODY)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": BODY})


class Served:
    def __init__(self, server: uvicorn.Server, port: int) -> None:
        self.server = server
        self.port = port
        self.url = f"http://127.0.0.1:{port}/api/orders"

    def connections(self) -> int:
        return len(self.server.server_state.connections)

    def tasks(self) -> int:
        return len(self.server.server_state.tasks)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@contextlib.contextmanager
def serving(*, limit_concurrency: int | None = None, **linger: Any) -> Iterator[Served]:
    protocol = guarded_protocol(header_timeout=10, body_timeout=10, max_header_bytes=16384,
                                max_headers=100, **linger)  # fmt: skip
    config = uvicorn.Config(answer_early, host="127.0.0.1", port=0, http=protocol, ws="none",
                            lifespan="off", log_config=None, access_log=False,
                            limit_concurrency=limit_concurrency)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    wait_for(lambda: server.started or not thread.is_alive())
    assert server.started, "uvicorn did not start"
    served = Served(server, server.servers[0].sockets[0].getsockname()[1])
    try:
        yield served
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


def post(url: str, body: bytes) -> urllib.request.Request:
    return urllib.request.Request(url, data=body, method="POST",
                                  headers={"Content-Type": "application/json"})  # fmt: skip


def test_urllib_sending_6_mb_reads_the_413_given_before_its_body() -> None:
    with serving() as served, pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(post(served.url, SIX_MB), timeout=10)
    assert answered.value.code == 413
    assert answered.value.headers["Connection"] == "close"
    assert json.loads(answered.value.read()) == {"code": "payload_too_large"}


def test_http_client_sending_6_mb_reads_the_413_too() -> None:
    with serving() as served:
        conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
        try:
            conn.request("POST", "/api/orders", body=SIX_MB,
                         headers={"Content-Type": "application/json"})  # fmt: skip
            response = conn.getresponse()
            assert (response.status, json.loads(response.read())) == (413, {
                "code": "payload_too_large"})  # fmt: skip
        finally:
            conn.close()


def test_closed_at_once_the_same_client_gets_a_reset_instead() -> None:
    """`linger_time=0`, closing as uvicorn does: the unread body makes the kernel reset the
    connection, and urllib never sees the answer (why lingering is there)."""
    with serving(linger_time=0) as served, pytest.raises((urllib.error.URLError, OSError)) as lost:
        urllib.request.urlopen(post(served.url, SIX_MB), timeout=10)
    assert not isinstance(lost.value, urllib.error.HTTPError), "the answer was read"


def read_answer(sock: socket.socket) -> bytes:
    """The whole answer, up to the server's FIN: it writes nothing more once it lingers."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


HEAD = (b"POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n")  # fmt: skip


def test_the_app_is_done_while_its_connection_lingers() -> None:
    """The answer ends the app's task at once: lingering holds a socket, not the request."""
    with serving() as served, served.connect() as sock:
        sock.sendall(HEAD % 1_000_000 + b" " * 1024)
        assert read_answer(sock).startswith(b"HTTP/1.1 413 ")
        sock.sendall(b" " * 1024)  # still read (and discarded): no reset
        wait_for(lambda: served.tasks() == 0)
        assert served.connections() == 1


def test_a_client_that_closes_ends_its_lingering() -> None:
    """linger_timeout and linger_time far away: the client's close ends it."""
    with serving(linger_timeout=600, linger_time=600) as served:
        with served.connect() as sock:
            sock.sendall(HEAD % 1_000_000 + b" " * 1024)
            read_answer(sock)
            assert served.connections() == 1
        wait_for(lambda: served.connections() == 0)


def test_a_quiet_client_is_let_go_after_the_linger_timeout() -> None:
    with serving(linger_timeout=0.5, linger_time=600) as served, served.connect() as sock:
        sock.sendall(HEAD % 1_000_000 + b" " * 1024)
        read_answer(sock)  # and then neither sends nor closes
        wait_for(lambda: served.connections() == 0)


def cut_off_record(caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    """(bytes discarded, the bound) of the server's cut-off log line."""
    records = [r for r in caplog.records if r.getMessage().startswith("cut off a client")]
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    discarded, bound = records[0].args  # type: ignore[misc]
    return discarded, bound


@pytest.mark.parametrize(("declared", "bound"), [(1024**3, 256 * 1024), (100_000, 100_000)],
                         ids=["linger_bytes", "declared-length"])  # fmt: skip
def test_a_client_sending_for_ever_is_cut_off_at_the_byte_bound(
    caplog: pytest.LogCaptureFixture, declared: int, bound: int
) -> None:
    """After the answer the server reads at most `linger_bytes`, or the body's declared
    length when it is smaller, then closes: the client sending on is reset."""
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    with serving(linger_bytes=256 * 1024, linger_time=600) as served, served.connect() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.sendall(HEAD % declared)
        sent = send_until_cut_off(sock, b" " * 65536)
        wait_for(lambda: served.connections() == 0)
    discarded, said = cut_off_record(caplog)
    assert said == f"{bound} bytes"
    # Over the bound by at most one read (uvloop reads 256 kB at a time).
    assert bound < discarded <= bound + 256 * 1024
    # The client's own count also holds what the kernels' buffers took before the reset.
    assert sent < 64 * 1024**2


def test_a_client_trickling_for_ever_is_cut_off_at_the_time_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A byte every 50 ms keeps it from ever being quiet for `linger_timeout`: `linger_time`
    ends the lingering."""
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    with serving(linger_timeout=5, linger_time=1) as served, served.connect() as sock:
        sock.sendall(HEAD % 1_000_000)
        sent = send_until_cut_off(sock, b" ", pace=0.05)
    discarded, said = cut_off_record(caplog)
    assert said == "1 s"
    assert discarded <= sent


def test_the_server_stops_without_waiting_for_lingering_connections() -> None:
    """Shutdown closes a lingering connection at once, instead of after `linger_time`."""
    with serving(linger_timeout=600, linger_time=600) as served, served.connect() as sock:
        sock.sendall(HEAD % 1_000_000 + b" " * 1024)
        read_answer(sock)
        assert served.connections() == 1
        served.server.should_exit = True
        wait_for(lambda: served.connections() == 0)


def test_uvicorns_own_503_over_limit_concurrency_is_read_too() -> None:
    """uvicorn's `--limit-concurrency` answers 503 with `Connection: close` before the body,
    as the 413: it lingers as well."""
    with serving(limit_concurrency=1) as served, served.connect() as idle:
        idle.sendall(b"P")  # a connection of its own, counted against the limit
        wait_for(lambda: served.connections() == 1)
        with pytest.raises(urllib.error.HTTPError) as answered:
            urllib.request.urlopen(post(served.url, SIX_MB), timeout=10)
    assert (answered.value.code, answered.value.read()) == (503, b"Service Unavailable")
