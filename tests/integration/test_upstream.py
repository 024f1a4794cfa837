"""The demo tips upstream, run as a real process and failed for real through its control port."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from devstack.upstream import AsyncUpstreamControl, Mode, UpstreamControl
from devstack.upstream.control import UpstreamControlError
from tests.servers import UPSTREAM_STOP_TIMEOUT, Upstream, run_upstream

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
TIMEOUT = httpx.Timeout(10.0)


async def _until_in_flight(control: AsyncUpstreamControl, count: int) -> None:
    """Poll the stats with a deadline: the upstream has no push signal for a parked request."""
    deadline = time.monotonic() + 5.0
    while (await control.stats())["in_flight"] != count:
        if time.monotonic() >= deadline:
            raise AssertionError(f"in_flight never reached {count}")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with run_upstream() as running:
        yield running


@pytest.fixture(scope="module")
def control(upstream: Upstream) -> Iterator[UpstreamControl]:
    with UpstreamControl(upstream.control_url) as client:
        yield client


@pytest.fixture(autouse=True)
def _normal_and_fresh_stats(control: UpstreamControl) -> None:
    control.set_mode(Mode.NORMAL)
    control.reset_stats()


@pytest.fixture
def tips(upstream: Upstream) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=upstream.tips_url, timeout=TIMEOUT, trust_env=False) as client:
        yield client


@pytest.fixture
async def async_tips(upstream: Upstream) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=upstream.tips_url, timeout=TIMEOUT, trust_env=False
    ) as client:
        yield client


def test_normal_serves_tips_and_limit_truncates(tips: httpx.Client) -> None:
    """Normal mode serves the tips JSON, ?limit=N returns the first N, unknown paths are 404."""
    full = tips.get("/tips")
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/json"
    listed = full.json()["tips"]
    assert [tip["id"] for tip in listed] == list(range(1, 11))
    assert all(isinstance(tip["text"], str) and tip["text"] for tip in listed)
    assert tips.get("/tips", params={"limit": 3}).json() == {"tips": listed[:3]}
    assert tips.get("/tips", params={"limit": 50}).json() == {"tips": listed}
    assert tips.get("/health").json() == {"status": "pass"}
    assert tips.get("/nope").json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("limit", ["0", "51", "ten", "", "-1", "2.5"])
def test_bad_limit_is_400_naming_the_field(tips: httpx.Client, limit: str) -> None:
    """A limit outside 1..50 or not an integer is a 400 whose error names the limit field."""
    response = tips.get("/tips", params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == "limit"


async def test_slow_holds_a_request_then_answers_it_normally(
    upstream: Upstream, async_tips: httpx.AsyncClient
) -> None:
    """Slow mode parks a request for delay_ms, whatever happens meanwhile (a request sent
    after it, in normal mode, is answered first), then answers it normally."""
    async with AsyncUpstreamControl(upstream.control_url) as control:
        assert (await control.set_mode(Mode.SLOW, delay_ms=2000))["delay_ms"] == 2000
        slow = asyncio.create_task(async_tips.get("/tips", params={"limit": 1}))
        await _until_in_flight(control, 1)
        await control.set_mode(Mode.NORMAL)
        overtaking = await async_tips.get("/tips", params={"limit": 1})
        held = (await control.stats())["in_flight"]
        response = await slow
    assert (overtaking.status_code, held) == (200, 1)
    assert response.status_code == 200
    assert len(response.json()["tips"]) == 1


@pytest.mark.parametrize(("status", "expected"), [(None, 503), (500, 500), (502, 502), (429, 429)])
def test_error_answers_the_configured_status(
    control: UpstreamControl, tips: httpx.Client, status: int | None, expected: int
) -> None:
    """Error mode answers every path with the configured status (default 503) and a JSON error."""
    assert control.set_mode(Mode.ERROR, status=status)["status"] == expected
    for path in ("/tips", "/health"):
        response = tips.get(path)
        assert response.status_code == expected
        assert response.json()["error"]["code"] == "injected"


@pytest.mark.parametrize(("next_mode", "expected"), [(Mode.NORMAL, 200), (Mode.ERROR, 503)])
async def test_hang_holds_requests_until_the_mode_changes(
    upstream: Upstream, async_tips: httpx.AsyncClient, next_mode: Mode, expected: int
) -> None:
    """Hung requests stay unanswered until the mode changes, then answer per the new mode."""
    async with AsyncUpstreamControl(upstream.control_url) as control:
        await control.set_mode(Mode.HANG)
        pending = [asyncio.create_task(async_tips.get("/tips")) for _ in range(3)]
        await _until_in_flight(control, 3)
        assert not any(task.done() for task in pending)
        await control.set_mode(next_mode)
        responses = await asyncio.wait_for(asyncio.gather(*pending), timeout=5.0)
        assert [response.status_code for response in responses] == [expected] * 3
        stats = await control.stats()
    assert stats["in_flight"] == 0
    assert stats["max_in_flight"] == 3


@pytest.mark.parametrize("mode", [Mode.HANG, Mode.SLOW])
async def test_client_leaving_frees_a_parked_request(upstream: Upstream, mode: Mode) -> None:
    """A hung or slow request whose client disconnects stops being in flight: no task lingers."""
    async with AsyncUpstreamControl(upstream.control_url) as control:
        await control.set_mode(mode, delay_ms=600_000)
        _, writer = await asyncio.open_connection(HOST, upstream.port)
        writer.write(b"GET /tips HTTP/1.1\r\nHost: upstream\r\n\r\n")
        await writer.drain()
        await _until_in_flight(control, 1)
        writer.close()
        await writer.wait_closed()
        await _until_in_flight(control, 0)
        assert (await control.stats())["responses"] == {}


@pytest.mark.parametrize("gzip", [False, True])
@pytest.mark.parametrize("chunked", [False, True])
def test_oversized_answers_a_json_body_of_the_size_asked(
    control: UpstreamControl, tips: httpx.Client, gzip: bool, chunked: bool
) -> None:
    """Oversized answers 200 with a JSON object of exactly `size` bytes once decoded, its
    length declared unless chunked, gzip-compressed when asked (a bomb: ~1/1000 the size)."""
    size = 3 * 1024 * 1024 + 7
    mode = control.set_mode(Mode.OVERSIZED, size=size, chunked=chunked, gzip=gzip, delay_ms=0)
    assert (mode["size"], mode["chunked"], mode["gzip"]) == (size, chunked, gzip)
    with tips.stream("GET", "/tips") as response:
        raw = b"".join(response.iter_raw())
        headers = response.headers
    assert response.status_code == 200
    assert ("content-length" in headers) is not chunked
    assert headers.get("content-encoding") == ("gzip" if gzip else None)
    body = zlib.decompress(raw, zlib.MAX_WBITS | 16) if gzip else raw
    assert len(body) == size
    assert len(raw) < size // 500 if gzip else len(raw) == size
    assert json.loads(body)["tips"] == []


@pytest.mark.parametrize("gzip", [False, True])
async def test_a_client_leaving_an_oversized_answer_ends_it(upstream: Upstream, gzip: bool) -> None:
    """A client that reads the headers of a 512 MiB answer and hangs up ends the answer at
    once: nothing goes on streaming into a closed connection."""
    async with AsyncUpstreamControl(upstream.control_url) as control:
        await control.set_mode(Mode.OVERSIZED, gzip=gzip, chunked=True, delay_ms=0)
        reader, writer = await asyncio.open_connection(HOST, upstream.port)
        writer.write(b"GET /tips HTTP/1.1\r\nHost: upstream\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()
        await _until_in_flight(control, 0)
        assert (await control.stats())["responses"] == {"200": 1}


@pytest.mark.parametrize(
    ("garbage", "content_type", "encoding"),
    [
        ("truncated_json", "application/json", None),
        ("html", "text/html; charset=utf-8", None),
        ("wrong_shape", "application/json", None),
        ("bad_gzip", "application/json", "gzip"),
    ],
)
def test_garbage_answers_200_with_a_body_nobody_can_use(
    control: UpstreamControl, tips: httpx.Client, garbage: str, content_type: str,
    encoding: str | None,
) -> None:  # fmt: skip
    """Garbage answers every path 200 with a body that is not the tips: half a JSON document,
    HTML, JSON of the wrong shape, or a "gzip" body that is not gzip."""
    assert control.set_mode(Mode.GARBAGE, garbage=garbage)["garbage"] == garbage
    with tips.stream("GET", "/tips") as response:
        raw = b"".join(response.iter_raw())
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers.get("content-encoding") == encoding
    assert int(response.headers["content-length"]) == len(raw)
    try:
        tips_list = json.loads(raw)["tips"]
    except ValueError:
        tips_list = None
    assert not isinstance(tips_list, list)


def _read_health(sock: socket.socket) -> None:
    """Send GET /health on a raw keep-alive connection and read the whole answer."""
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: upstream\r\n\r\n")
    received = b""
    while not received.endswith(b'{"status":"pass"}'):
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {received!r}"
        received += chunk


def test_refuse_closes_the_tips_port_and_normal_reopens_it(
    upstream: Upstream, control: UpstreamControl, tips: httpx.Client
) -> None:
    """Refuse closes the tips port and its connections while control works; normal reopens it."""
    with socket.create_connection((HOST, upstream.port), timeout=5.0) as open_connection:
        _read_health(open_connection)
        assert control.set_mode(Mode.REFUSE)["mode"] == "refuse"
        assert open_connection.recv(1) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, upstream.port), timeout=5.0).close()
    with pytest.raises(httpx.ConnectError):
        tips.get("/tips")
    assert control.mode()["mode"] == "refuse"
    control.set_mode(Mode.NORMAL)
    assert tips.get("/tips", params={"limit": 2}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"mode": "sideways"}', "mode"),
        (b"{}", "mode"),
        (b'{"mode": 3}', "mode"),
        (b'{"mode": "slow", "delay_ms": -1}', "delay_ms"),
        (b'{"mode": "slow", "delay_ms": 600001}', "delay_ms"),
        (b'{"mode": "slow", "delay_ms": "100"}', "delay_ms"),
        (b'{"mode": "error", "status": 404}', "status"),
        (b'{"mode": "error", "status": true}', "status"),
        (b'{"mode": "normal", "colour": "red"}', "colour"),
        (b'{"mode": "oversized", "size": -1}', "size"),
        (b'{"mode": "oversized", "size": "512M"}', "size"),
        (b'{"mode": "oversized", "chunked": "yes"}', "chunked"),
        (b'{"mode": "oversized", "gzip": 1}', "gzip"),
        (b'{"mode": "garbage", "garbage": "noise"}', "garbage"),
        (b"not json", "body"),
        (b"[1, 2]", "body"),
    ],
)
def test_invalid_mode_change_is_422_naming_the_field(
    upstream: Upstream, control: UpstreamControl, body: bytes, field: str
) -> None:
    """An invalid mode change is a 422 naming the bad field, and the mode stays as it was."""
    with httpx.Client(base_url=upstream.control_url, timeout=TIMEOUT, trust_env=False) as client:
        response = client.put("/mode", content=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid"
    assert response.json()["error"]["field"] == field
    assert control.mode()["mode"] == "normal"


def test_control_client_error_names_the_field(control: UpstreamControl) -> None:
    """The control client raises with the failed call and the bad field in its message."""
    with pytest.raises(UpstreamControlError, match=r"PUT .*/mode failed: HTTP 422.*delay_ms"):
        control.set_mode(Mode.SLOW, delay_ms=-5)


def test_stats_count_requests_and_responses(control: UpstreamControl, tips: httpx.Client) -> None:
    """Stats count tips requests and responses by status, not control calls; reset clears them."""
    for _ in range(3):
        tips.get("/tips")
    tips.get("/nope")
    tips.get("/tips", params={"limit": 0})
    control.set_mode(Mode.ERROR, status=502)
    tips.get("/tips")
    assert control.stats() == {
        "requests": 6,
        "responses": {"200": 3, "400": 1, "404": 1, "502": 1},
        "in_flight": 0,
        "max_in_flight": 1,
    }
    control.reset_stats()
    assert control.stats() == {"requests": 0, "responses": {}, "in_flight": 0, "max_in_flight": 0}


async def test_sigterm_with_a_hung_request_exits_promptly() -> None:
    """SIGTERM stops the upstream even while a request hangs (within UPSTREAM_STOP_TIMEOUT, or the
    wait raises), answering the hung request 503."""
    with run_upstream() as own:
        async with (
            AsyncUpstreamControl(own.control_url) as control,
            httpx.AsyncClient(base_url=own.tips_url, timeout=TIMEOUT, trust_env=False) as client,
        ):
            await control.set_mode(Mode.HANG)
            pending = asyncio.create_task(client.get("/tips"))
            await _until_in_flight(control, 1)
            own.process.send_signal(signal.SIGTERM)
            returncode = await asyncio.to_thread(own.process.wait, UPSTREAM_STOP_TIMEOUT)
            assert returncode == 0
            response = await asyncio.wait_for(pending, timeout=5.0)
            assert response.status_code == 503
