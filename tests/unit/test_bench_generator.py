"""The closed-loop load generator, against tiny HTTP servers started inside each test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loadtests.bench.generator import LoadResult, run_load, run_load_sync
from loadtests.bench.generator.cli import format_summary, main
from loadtests.bench.generator.parser import ProtocolError, ResponseParser
from loadtests.bench.generator.request import build_target
from loadtests.bench.generator.result import Latencies, summarize

REPO = Path(__file__).resolve().parents[2]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Responder = Callable[["TinyServer", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class TinyServer:
    """A hand-written HTTP/1.1 responder; `respond` answers one request, False closes."""

    respond: Responder
    url: str = ""
    accepted: int = 0
    served: int = 0
    handlers: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.accepted += 1
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.served += 1
                if not await self.respond(self, reader, writer):
                    return
        finally:
            self.handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve(respond: Responder) -> AsyncIterator[TinyServer]:
    """Serve on an ephemeral 127.0.0.1 port; on exit every server-side socket is closed."""
    state = TinyServer(respond)
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    state.url = f"http://127.0.0.1:{port}/bench?q=1"
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()
        for task in list(state.handlers):
            task.cancel()
        await _settle()


async def _settle() -> None:
    """Wait for every other task (handlers, accepts still in progress) to finish."""
    me = asyncio.current_task()
    for _ in range(20):
        pending = [task for task in asyncio.all_tasks() if task is not me]
        if not pending:
            return
        await asyncio.gather(*pending, return_exceptions=True)


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A port bound but never listening: connects are refused while we hold it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def answer_ok(_: TinyServer, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(OK)
    return True


def assert_no_errors(result: LoadResult) -> None:
    assert result.errors == {"connect": 0, "timeout": 0, "reset": 0, "protocol": 0}


async def test_keep_alive_counts_requests_and_statuses() -> None:
    """Every response is counted by status, over one reused socket per connection."""

    async def every_third_fails(
        server: TinyServer, _: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        status = b"503 Service Unavailable" if server.served % 3 == 0 else b"200 OK"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with serve(every_third_fails) as server:
        result = await run_load(server.url, connections=3, duration=10, max_requests=30)
    assert result.requests == 30
    assert result.statuses == {200: 20, 503: 10}
    assert_no_errors(result)
    assert server.accepted == 3
    lat = result.latencies_ms
    assert 0 < lat.p50 <= lat.p90 <= lat.p99 <= lat.max
    assert 0 < result.duration < 10
    assert result.rps == pytest.approx(30 / result.duration)


async def test_refusals_are_timed_apart_from_the_answers_and_goodput_counts_only_2xx() -> None:
    """A server that refuses every other request at once and answers the rest after 20 ms:
    the refusals' latencies are apart from the 2xx ones, and goodput counts the 2xx alone."""

    async def slow_or_refused(
        server: TinyServer, _: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if server.served % 2:
            writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\n\r\nno")
        else:
            await asyncio.sleep(0.02)
            writer.write(OK)
        return True

    async with serve(slow_or_refused) as server:
        result = await run_load(server.url, connections=2, duration=10, max_requests=40)

    assert result.statuses == {200: 20, 503: 20}
    assert result.ok_latencies_ms is not None
    assert result.non_2xx_latencies_ms is not None
    assert result.ok_latencies_ms.p50 >= 20 > result.non_2xx_latencies_ms.p99
    assert result.latencies_ms.max == result.ok_latencies_ms.max
    assert result.goodput == pytest.approx(20 / result.duration)
    assert set(result.to_dict()) >= {"ok_latencies_ms", "non_2xx_latencies_ms"}


async def test_connection_close_on_every_response_reconnects_without_errors() -> None:
    """`Connection: close` (gunicorn's sync worker) means a new socket per request, not an error."""

    async def close_each(_: TinyServer, __: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
        return False

    async with serve(close_each) as server:
        result = await run_load(server.url, connections=4, duration=10, max_requests=40)
    assert result.requests == 40
    assert result.statuses == {200: 40}
    assert_no_errors(result)
    assert server.served == 40
    assert server.accepted >= 40


async def test_silent_close_after_complete_response_is_not_an_error() -> None:
    """A keep-alive socket the server closes after answering is replaced and the request retried."""

    async def close_silently(
        _: TinyServer, __: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        w.write(OK)
        return False

    async with serve(close_silently) as server:
        result = await run_load(server.url, connections=4, duration=10, max_requests=40)
    assert result.requests == 40
    assert_no_errors(result)
    assert server.served == 40


async def test_reads_chunked_responses_split_across_writes() -> None:
    """Chunked bodies (with extensions and trailers) end where the zero chunk says."""

    async def chunked(
        _: TinyServer, __: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        for piece in (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwi",
            b"ki\r\n5\r\npedia\r\n",
            b"0\r\nX-Trailer: yes\r\n\r\n",
        ):
            writer.write(piece)
            await writer.drain()
        return True

    async with serve(chunked) as server:
        result = await run_load(server.url, connections=3, duration=10, max_requests=25)
    assert result.requests == 25
    assert result.statuses == {200: 25}
    assert_no_errors(result)
    assert server.accepted == 3


async def test_unanswered_requests_time_out_and_reconnect() -> None:
    """No response within `timeout` counts as a timeout and the socket is replaced."""

    async def never_answer(_: TinyServer, reader: asyncio.StreamReader, __: object) -> bool:
        await reader.read()  # until the generator gives up and closes
        return False

    async with serve(never_answer) as server:
        result = await run_load(server.url, connections=2, duration=0.6, timeout=0.1)
    assert result.requests == 0
    assert result.statuses == {}
    assert 2 <= result.errors["timeout"] <= 12
    assert result.errors["connect"] == result.errors["reset"] == result.errors["protocol"] == 0
    assert server.accepted > 2


async def test_refused_connects_are_counted_and_backed_off() -> None:
    """A dead server yields "connect" errors at a bounded rate, not a busy loop."""
    with refusing_port() as port:
        result = await run_load(f"http://127.0.0.1:{port}/", connections=2, duration=0.3)
    assert result.requests == 0
    # the 10 ms back-off allows at most ~31 attempts per connection in 0.3 s
    assert 2 <= result.errors["connect"] <= 2 * 35
    assert result.errors["timeout"] == result.errors["reset"] == result.errors["protocol"] == 0


async def test_close_mid_response_counts_as_reset() -> None:
    """A socket that dies halfway through a response is a "reset", never a response."""

    async def half(_: TinyServer, __: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        return False

    async with serve(half) as server:
        result = await run_load(server.url, connections=2, duration=0.3)
    assert result.requests == 0
    assert result.errors["reset"] >= 2
    assert server.served >= 2


async def test_garbage_response_counts_as_protocol_error() -> None:
    """Bytes that are not an HTTP/1.x response are a "protocol" error."""

    async def garbage(
        _: TinyServer, __: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        return True

    async with serve(garbage) as server:
        result = await run_load(server.url, connections=1, duration=0.2)
    assert result.requests == 0
    assert result.errors["protocol"] >= 1


async def test_max_requests_stops_at_exactly_that_many() -> None:
    """The run ends at exactly max_requests responses, and sends no request beyond them."""
    async with serve(answer_ok) as server:
        result = await run_load(server.url, connections=8, duration=10, max_requests=100)
    assert result.requests == 100
    assert result.statuses == {200: 100}
    assert server.served == 100


async def test_warmup_responses_are_not_counted() -> None:
    """Responses completed during warm-up are excluded and the duration covers only the window:
    the first five answers (201), sent at the start of a half-second warm-up, never count."""

    async def first_five_are_201(
        server: TinyServer, _: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(OK.replace(b"200", b"201") if server.served <= 5 else OK)
        return True

    async with serve(first_five_are_201) as server:
        result = await run_load(server.url, connections=2, warmup=0.5, duration=0.3)
    assert 201 not in result.statuses
    assert result.statuses[200] == result.requests > 0
    assert server.served > result.requests
    assert result.duration == pytest.approx(0.3)


async def test_run_load_sync_runs_on_its_own_loop() -> None:
    """The sync entry point runs a whole run on a fresh (uvloop) event loop."""
    async with serve(answer_ok) as server:
        result = await asyncio.to_thread(
            run_load_sync, server.url, connections=2, duration=10, max_requests=10
        )
    assert result.requests == 10


async def test_cli_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    """`--json` prints `to_dict()` of the run."""
    async with serve(answer_ok) as server:
        argv = [server.url, "-c", "2", "--warmup", "0", "--max-requests", "12", "--json"]
        assert await asyncio.to_thread(main, argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["requests"] == 12
    assert report["statuses"] == {"200": 12}
    assert set(report["latencies_ms"]) == {"p50", "p90", "p99", "max"}


async def test_module_entry_point_sends_headers_and_body() -> None:
    """`python -m loadtests.bench.generator` sends the method, headers and body; exits clean."""
    seen: list[bytes] = []

    async def echo_check(
        _: TinyServer, reader: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        seen.append(await reader.readexactly(7))
        w.write(OK)
        return True

    async with serve(echo_check) as server:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-W", "default", "-m", "loadtests.bench.generator", server.url),
            *("--method", "POST", "-H", "X-Test: 1", "--body", "payload"),
            *("-c", "1", "--warmup", "0", "--max-requests", "3"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=REPO,
        )
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert err == b""
    assert " req/s " in out.decode()
    assert "statuses 200=3 " in out.decode()
    assert seen == [b"payload"] * 3


@pytest.mark.parametrize(
    "options",
    [
        {"connections": 0, "duration": 1},
        {"connections": 1, "duration": 0},
        {"connections": 1, "duration": 1, "warmup": -1},
        {"connections": 1, "duration": 1, "timeout": 0},
        {"connections": 1, "duration": 1, "max_requests": 0},
    ],
)
async def test_run_load_rejects_bad_arguments(options: dict[str, float]) -> None:
    """Nonsense settings fail fast with ValueError instead of running."""
    with pytest.raises(ValueError, match="must"):
        await run_load("http://127.0.0.1:9/", **options)  # type: ignore[arg-type]


# --- building blocks -------------------------------------------------------------------


RESPONSES = {
    "content-length": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200, True),
    "chunked": (
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"4;a=b\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: 1\r\n\r\n",
        201,
        True,
    ),
    "no-body-204": (b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", 204, True),
    "not-modified": (b"HTTP/1.1 304 Not Modified\r\n\r\n", 304, True),
    "interim-100": (
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        200,
        True,
    ),
    "close": (b"HTTP/1.1 200 OK\r\nCONNECTION: Close\r\nContent-Length: 1\r\n\r\nx", 200, False),
    "http10": (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, False),
    "http10-keep": (
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
        200,
        True,
    ),
}


@pytest.mark.parametrize("name", list(RESPONSES))
@pytest.mark.parametrize("step", [None, 1, 3])
def test_parser_frames_responses_whole_or_in_pieces(name: str, step: int | None) -> None:
    """A response completes on its last byte, whether it arrives at once or byte by byte."""
    raw, status, keep_alive = RESPONSES[name]
    parser = ResponseParser()
    pieces = [raw] if step is None else [raw[i : i + step] for i in range(0, len(raw), step)]
    results = [parser.feed(piece) for piece in pieces]
    assert results == [False] * (len(pieces) - 1) + [True]
    assert (parser.status, parser.keep_alive, parser.fresh) == (status, keep_alive, True)


def test_parser_head_response_has_no_body() -> None:
    """A HEAD response ends with its head, whatever Content-Length it announces."""
    parser = ResponseParser(head_request=True)
    assert parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")


def test_parser_body_without_length_ends_at_close() -> None:
    """Without Content-Length or chunking the body runs until the server closes."""
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 200 OK\r\n\r\nsome body")
    assert not parser.feed(b" and more")
    assert parser.feed_eof()
    assert not parser.keep_alive


def test_parser_rejects_garbage_and_overlong_bodies() -> None:
    """Non-HTTP bytes and bytes beyond the declared length are protocol errors."""
    with pytest.raises(ProtocolError):
        ResponseParser().feed(b"220 smtp ready\r\n\r\n")
    with pytest.raises(ProtocolError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy")
    with pytest.raises(ProtocolError):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


def test_parser_mid_response_eof_is_not_a_response() -> None:
    """EOF inside a length-framed body does not complete it; `fresh` tells it began."""
    parser = ResponseParser()
    assert not parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhe")
    assert not parser.feed_eof()
    assert not parser.fresh


def test_request_bytes_are_built_once_from_the_url() -> None:
    """Host comes from the URL, Content-Length from the body, user headers are kept."""
    target = build_target(
        "http://[::1]:8080/a/b?x=1", method="POST", headers={"X-A": " v "}, body=b"abc"
    )
    assert (target.host, target.port, target.tls, target.head) == ("::1", 8080, False, False)
    assert target.request == (
        b"POST /a/b?x=1 HTTP/1.1\r\nHost: [::1]:8080\r\nX-A: v\r\nContent-Length: 3\r\n\r\nabc"
    )
    plain = build_target("https://example.test", method="HEAD", headers={"host": "other"})
    assert (plain.port, plain.tls, plain.head) == (443, True, True)
    assert plain.request == b"HEAD / HTTP/1.1\r\nhost: other\r\n\r\n"


@pytest.mark.parametrize(
    ("url", "headers"),
    [("ftp://x/", {}), ("http:///nohost", {}), ("http://x/", {"X": "a\r\nEvil: 1"})],
)
def test_request_rejects_bad_input(url: str, headers: dict[str, str]) -> None:
    """Bad URLs and header injection fail before any socket is opened."""
    with pytest.raises(ValueError, match=r"."):
        build_target(url, headers=headers)


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    """p50/p90/p99/max are observed values, converted from seconds to ms."""
    lat = summarize([i / 1000 for i in range(100, 0, -1)])
    assert lat == Latencies(p50=50.0, p90=90.0, p99=99.0, max=100.0)
    assert summarize([]) == Latencies(0.0, 0.0, 0.0, 0.0)


def test_result_serialises_to_json_and_one_line() -> None:
    """to_dict is JSON-ready and the summary line carries rate, latency, statuses and errors."""
    result = LoadResult(
        requests=300,
        duration=2.0,
        statuses={200: 299, 500: 1},
        errors={"connect": 0, "timeout": 2, "reset": 0, "protocol": 0},
        latencies_ms=Latencies(p50=1.5, p90=2.0, p99=3.25, max=9.0),
    )
    assert json.loads(json.dumps(result.to_dict()))["statuses"] == {"200": 299, "500": 1}
    assert result.rps == 150.0
    line = format_summary(result)
    assert line.startswith("150 req/s")
    assert all(part in line for part in ("p50 1.50 ms", "p99 3.25 ms", "500=1", "timeout=2"))
    assert "connect" not in line
