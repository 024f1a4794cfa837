"""The ASGI handler serves requests on the event loop alone, and keeps Django's behaviour."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import django.core.handlers.asgi as django_asgi
import httpx
import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from prometheus_client import REGISTRY

from resilience_async.django import EventLoopASGIHandler
from resilience_async.django._signals import send_request_signal

# --- views of this module's URLconf (tests point ROOT_URLCONF here) -----------------------
view_events: dict[str, Any] = {}


async def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b'{"ok":true}', content_type="application/json")


async def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("no such thing")


async def hangs(request: HttpRequest) -> HttpResponse:
    view_events["entered"].set()
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        view_events["cancelled"] = True
        raise
    return HttpResponse()


class ClosingBody:
    """A streaming body whose close() Django must call once the response is sent."""

    closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        yield b"chunk"

    def close(self) -> None:
        ClosingBody.closed = True


async def streams(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(ClosingBody())


def sync_view(request: HttpRequest) -> HttpResponse:
    view_events["sync_thread"] = threading.current_thread()
    return HttpResponse(b"sync")


async def explodes(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("bug in a view")


async def echo(request: HttpRequest) -> HttpResponse:
    return HttpResponse(request.body, content_type="application/octet-stream")


handler500 = "resilience_async.django.server_error"
urlpatterns = [
    path("bare", bare),
    path("missing", missing),
    path("hangs", hangs),
    path("streams", streams),
    path("sync", sync_view),
    path("explodes", explodes),
    path("echo", echo),
]


@pytest.fixture(autouse=True)
def _urls(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    view_events.clear()


@contextmanager
def count_hand_offs(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Count threads started and executor submissions (what sync_to_async does) in a block."""
    counts = {"threads": 0, "executor": 0}
    loop = asyncio.get_running_loop()
    start, run_in_executor = threading.Thread.start, loop.run_in_executor

    def counting_start(self: threading.Thread) -> None:
        counts["threads"] += 1
        start(self)

    def counting_run_in_executor(*args: Any) -> Any:
        counts["executor"] += 1
        return run_in_executor(*args)

    with monkeypatch.context() as patch:
        patch.setattr(threading.Thread, "start", counting_start)
        patch.setattr(loop, "run_in_executor", counting_run_in_executor)
        yield counts


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def serve_mix(client: httpx.AsyncClient, rounds: int) -> list[int]:
    """Successes, client errors and rejected hosts: every path a flood of requests takes."""
    statuses = []
    for _ in range(rounds):
        statuses.append((await client.get("/bare")).status_code)
        statuses.append((await client.get("/nowhere")).status_code)
        statuses.append((await client.get("/missing")).status_code)
        statuses.append((await client.get("/bare", headers={"Host": "evil.example"})).status_code)
    return statuses


async def test_requests_never_leave_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """200s, 404s and bad-host 400s start no thread and submit nothing to an executor."""
    async with client_for(EventLoopASGIHandler()) as client:
        await client.get("/bare")  # first request: lazy imports and caches
        with count_hand_offs(monkeypatch) as counts:
            statuses = await serve_mix(client, rounds=50)
    assert statuses == [200, 404, 404, 400] * 50
    assert counts == {"threads": 0, "executor": 0}


async def test_stock_django_hands_off_to_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The counter sees Django's own handler leave the loop on the same requests."""
    async with client_for(ASGIHandler()) as client:
        await client.get("/bare")
        with count_hand_offs(monkeypatch) as counts:
            await serve_mix(client, rounds=5)
    assert counts["executor"] >= 5 * 4
    assert counts["threads"] >= 5


async def test_sync_views_still_run_in_a_thread() -> None:
    """Code that is sync still gets Django's thread (and its connection housekeeping)."""
    async with client_for(EventLoopASGIHandler()) as client:
        response = await client.get("/sync")
    assert response.content == b"sync"
    assert view_events["sync_thread"] is not threading.main_thread()


async def test_streaming_bodies_are_closed_and_request_finished_sent() -> None:
    """Response closers run after sending, and request_finished reaches async receivers."""
    finished = asyncio.Event()

    async def on_finished(**kwargs: Any) -> None:
        finished.set()

    ClosingBody.closed = False
    request_finished.connect(on_finished)
    try:
        async with client_for(EventLoopASGIHandler()) as client:
            response = await client.get("/streams")
    finally:
        request_finished.disconnect(on_finished)
    assert response.content == b"chunk"
    assert ClosingBody.closed
    assert finished.is_set()


async def test_client_disconnect_cancels_the_view() -> None:
    """A client that goes away cancels its view, as in Django, and request_finished is sent."""
    view_events["entered"] = asyncio.Event()
    finished: list[bool] = []

    async def on_finished(**kwargs: Any) -> None:
        finished.append(True)

    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await messages.put({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/hangs",
        "raw_path": b"/hangs",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    request_finished.connect(on_finished)
    try:
        handling = asyncio.create_task(EventLoopASGIHandler()(scope, messages.get, send))
        await view_events["entered"].wait()
        await messages.put({"type": "http.disconnect"})
        await asyncio.wait_for(handling, timeout=5)
    finally:
        request_finished.disconnect(on_finished)
    assert view_events["cancelled"] is True
    assert sent == []
    assert finished == [True]


async def test_a_quick_answer_never_starts_watching_for_a_disconnect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Requests answered within DISCONNECT_WATCH_AFTER start no listener task (the costliest
    part of a quick request to cancel); the slow one above still had one, and was cancelled."""
    watched: list[bool] = []
    listen = EventLoopASGIHandler.listen_for_disconnect

    def counting_listen(self: Any, receive: Any) -> Any:
        watched.append(True)  # counted when the listener is made, not when it first runs
        return listen(self, receive)

    monkeypatch.setattr(EventLoopASGIHandler, "listen_for_disconnect", counting_listen)
    async with client_for(EventLoopASGIHandler()) as client:
        statuses = [(await client.get("/bare")).status_code for _ in range(20)]
    assert statuses == [200] * 20
    assert watched == []


async def test_unhandled_view_errors_are_a_500_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bug in a view still becomes Django's 500, in problem details (`handler500`), and
    the one answer Django logs as an ERROR, with the traceback; the body tells nothing."""
    async with client_for(EventLoopASGIHandler()) as client:
        response = await client.get("/explodes")
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "internal_error"
    assert "bug in a view" not in response.text
    [logged] = [r for r in caplog.records if r.name == "django.request"]
    assert logged.levelno == logging.ERROR
    assert logged.exc_info is not None


async def test_client_errors_are_problem_details() -> None:
    """Unknown paths and Http404 answer RFC 9457 problem details."""
    async with client_for(EventLoopASGIHandler()) as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json() == {
        "type": "/problems/not_found", "title": "Not found", "status": 404,
        "detail": "nothing at /nowhere", "code": "not_found",
    }  # fmt: skip


async def test_user_sync_receivers_run_in_a_thread_async_ones_on_the_loop() -> None:
    """A third-party sync receiver is never run on the loop; async receivers are."""
    seen: dict[str, threading.Thread] = {}

    def sync_receiver(**kwargs: Any) -> None:
        seen["sync"] = threading.current_thread()

    async def async_receiver(**kwargs: Any) -> None:
        seen["async"] = threading.current_thread()

    request_finished.connect(sync_receiver)
    request_finished.connect(async_receiver)
    try:
        await send_request_signal(request_finished, ASGIHandler, sync_thread_used=False)
    finally:
        request_finished.disconnect(sync_receiver)
        request_finished.disconnect(async_receiver)
    assert seen["async"] is threading.main_thread()
    assert seen["sync"] is not threading.main_thread()


# --- middleware -------------------------------------------------------------------------
async def test_request_ids_are_made_or_accepted() -> None:
    """A sane incoming X-Request-ID is echoed; a missing or unsafe one is replaced."""
    async with client_for(EventLoopASGIHandler()) as client:
        made = await client.get("/bare")
        kept = await client.get("/bare", headers={"X-Request-ID": "abc-123"})
        unsafe = await client.get("/bare", headers={"X-Request-ID": "x" * 65})
    assert len(made.headers["X-Request-ID"]) == 16
    assert kept.headers["X-Request-ID"] == "abc-123"
    assert unsafe.headers["X-Request-ID"] not in ("x" * 65, "")


async def test_requests_are_counted_by_route_and_status() -> None:
    """Each request adds one to the request count under its route pattern and status."""
    bare = {"method": "GET", "route": "bare", "status": "200"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}

    def count(labels: dict[str, str]) -> float:
        return REGISTRY.get_sample_value("http_request_duration_seconds_count", labels) or 0.0

    before = count(bare), count(unmatched)
    async with client_for(EventLoopASGIHandler()) as client:
        for _ in range(3):
            await client.get("/bare")
        await client.get("/nowhere")
    assert (count(bare), count(unmatched)) == (before[0] + 3, before[1] + 1)


async def test_security_headers_and_host_validation() -> None:
    """Responses carry the security headers; an unknown Host is a JSON 400 naming the field."""
    async with client_for(EventLoopASGIHandler()) as client:
        ok = await client.get("/bare")
        rejected = await client.get("/bare", headers={"Host": "evil.example"})
    assert ok.headers["X-Content-Type-Options"] == "nosniff"
    assert ok.headers["X-Frame-Options"] == "DENY"
    assert rejected.status_code == 400
    assert rejected.json()["field"] == "Host"


async def test_refused_hosts_are_logged_once_per_interval_cut_short(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """50 requests with a 5 kB junk Host: 50 JSON 400s, one warning naming 100 characters of
    it, and no line per request (neither Django's request log nor an error)."""
    junk = "x" * 5000 + ".example"
    with caplog.at_level(logging.INFO):
        async with client_for(EventLoopASGIHandler()) as client:
            statuses = [(await client.get("/bare", headers={"Host": junk})).status_code
                        for _ in range(50)]  # fmt: skip
    assert statuses == [400] * 50
    refusals = [r for r in caplog.records if r.name.startswith("django.")]
    assert [(r.name, r.levelno) for r in refusals] == [
        ("django.security.DisallowedHost", logging.WARNING)
    ]
    assert refusals[0].host == "x" * 100  # type: ignore[attr-defined]
    assert refusals[0].refused == 1  # type: ignore[attr-defined]
    assert len(refusals[0].getMessage()) < 200


async def test_bodies_are_read_in_memory_up_to_the_limit_never_spooled(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With MAX_REQUEST_BODY set, a body is read into memory (Django's temporary file is never
    made), whole up to the limit; past it, declared or not, the answer is 413 and close."""
    settings.MAX_REQUEST_BODY = 1000

    def no_temporary_file(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a request body was spooled to a temporary file")

    monkeypatch.setattr(django_asgi.tempfile, "SpooledTemporaryFile", no_temporary_file)

    async def chunked(size: int) -> AsyncIterator[bytes]:
        for _ in range(size // 100):
            yield b"x" * 100

    async with client_for(EventLoopASGIHandler()) as client:
        whole = await client.post("/echo", content=b"x" * 1000)
        declared = await client.post("/echo", content=b"x" * 1001)
        streamed = await client.post("/echo", content=chunked(1100))
    assert (whole.status_code, len(whole.content)) == (200, 1000)
    for refused in (declared, streamed):
        assert (refused.status_code, refused.headers["Connection"]) == (413, "close")
        assert refused.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    "make",
    [
        lambda: HttpResponse("tea", content_type="text/plain; charset=utf-8"),
        lambda: HttpResponse(b"", status=204),
        lambda: _with_cookie(HttpResponse("ok")),
        lambda: HttpResponse("é" * 70_000),  # over one chunk: sent Django's way, in parts
        lambda: StreamingHttpResponse(_parts(b"a", b"b")),
    ],
)
async def test_responses_go_out_as_djangos_handler_sends_them(make: Any) -> None:
    """The lean send_response sends what Django's would, message for message."""

    async def messages(handler: ASGIHandler) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await handler.send_response(make(), send)
        return [{"more_body": False, **m} if m["type"] == "http.response.body" else m
                for m in sent]  # fmt: skip

    ours, djangos = await messages(EventLoopASGIHandler()), await messages(ASGIHandler())
    assert ours == djangos


def _with_cookie(response: HttpResponse) -> HttpResponse:
    response.set_cookie("flavour", "mint", httponly=True)
    return response


async def _parts(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
