"""Django's ASGI handler with no thread hand-off on the request path.

Stock `ASGIHandler` leaves the event loop on every request: it sends `request_started` and
`request_finished` through `sync_to_async` (Django's receivers are sync), closes the response
with `sync_to_async(response.close)` inside a per-request `ThreadSensitiveContext` (so a new
thread per request), and logs every 4xx/5xx and renders every Http404 in a thread too. This
handler keeps Django's behaviour (disconnect handling, the request signals, their async
receivers, closers) and does that work on the loop. A request that really does run sync code
(`sync_to_async`, a sync view) still gets its thread, and the housekeeping that goes with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
from collections.abc import Awaitable, Callable
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.conf import settings
from django.core import signals
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestAborted,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.urls import set_script_prefix
from django.utils.log import log_response

from resilience_async.django._admission import Admission
from resilience_async.django._middleware import (
    KNOWN_METHODS,
    request_recorder,
    security_headers,
    valid_request_id,
)
from resilience_async.django._responses import problem_response
from resilience_async.django._signals import send_request_signal

Scope = dict[str, Any]
Receive = Any
Send = Any


def sync_thread_used() -> bool:
    """Whether the current request's ThreadSensitiveContext has started its thread.

    Reads asgiref's executor map; if a future asgiref renames it, answer True, which is
    Django's own (slower, always correct) behaviour.
    """
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    context = SyncToAsync.thread_sensitive_context.get(None)
    if executors is None or context is None:
        return True
    return context in executors


def resource_closers(response: HttpResponseBase) -> list[Callable[[], object]]:
    """The response's closers (a private list of Django's, missing from django-stubs)."""
    closers: list[Callable[[], object]] = response._resource_closers  # type: ignore[attr-defined]
    return closers


def close_response(response: HttpResponseBase) -> None:
    """`HttpResponseBase.close()` without its synchronous `request_finished.send()`."""
    closers = resource_closers(response)
    for closer in closers:
        # As Django: a failing closer must not stop the others.
        with contextlib.suppress(Exception):
            closer()
    closers.clear()
    response.closed = True


def _admission() -> Admission | None:
    """The in-flight limit, `MAX_IN_FLIGHT_REQUESTS` (0 or unset: none) with its wait,
    `MAX_IN_FLIGHT_WAIT`, counted in Prometheus when `METRICS_ENABLED`.

    `MAX_IN_FLIGHT_LIMIT = "adaptive"` makes it follow latency between
    `MAX_IN_FLIGHT_MIN` and `MAX_IN_FLIGHT_REQUESTS`, from `MAX_IN_FLIGHT_INITIAL`, with
    Gradient2's `MAX_IN_FLIGHT_TOLERANCE`; the
    default, "fixed", keeps it at `MAX_IN_FLIGHT_REQUESTS`.
    """
    limit = getattr(settings, "MAX_IN_FLIGHT_REQUESTS", 0)
    if limit <= 0:
        return None
    wait = getattr(settings, "MAX_IN_FLIGHT_WAIT", 0.0)
    options: dict[str, Any] = {"headers": security_headers(), "valid_id": valid_request_id}
    kind = getattr(settings, "MAX_IN_FLIGHT_LIMIT", "fixed")
    if kind == "adaptive":
        minimum = min(getattr(settings, "MAX_IN_FLIGHT_MIN", 20), limit)
        initial = min(max(getattr(settings, "MAX_IN_FLIGHT_INITIAL", 20), minimum), limit)
        tolerance = getattr(settings, "MAX_IN_FLIGHT_TOLERANCE", 1.5)
        admission = Admission.adaptive(limit, initial=initial, minimum=minimum, wait=wait,
                                       tolerance=tolerance, **options)  # fmt: skip
    elif kind == "fixed":
        admission = Admission(limit, wait=wait, **options)
    else:
        raise ValueError(f"MAX_IN_FLIGHT_LIMIT must be 'adaptive' or 'fixed', not {kind!r}")
    if getattr(settings, "METRICS_ENABLED", True):
        from resilience_async.prometheus import instrument  # noqa: PLC0415

        instrument(admission.requests)
    return admission


# A request that answers sooner than this never starts watching for the client's disconnect
# (a task that would then have to be cancelled, the most expensive part of a quick request).
DISCONNECT_WATCH_AFTER = 0.05


class EventLoopASGIHandler(ASGIHandler):
    """An `ASGIHandler` whose requests never leave the event loop unless their code does."""

    # Set by Django's BaseHandler.load_middleware (not in django-stubs).
    _middleware_chain: Callable[[HttpRequest], Awaitable[HttpResponseBase]]
    _exception_middleware: list[Callable[..., Any]]

    def __init__(self) -> None:
        self._client_error_views: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._recorder = request_recorder()
        # Bodies over this many bytes are refused unread (None: Django's own reading).
        self._body_limit: int | None = getattr(settings, "MAX_REQUEST_BODY", None)
        self.admission = _admission()
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._refuse_websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"Django serves only ASGI/HTTP connections, not {scope['type']}")
        admission = self.admission
        if admission is None or admission.exempt(scope):
            async with ThreadSensitiveContext():
                await self.handle(scope, receive, send)
        elif admission.try_enter() or await admission.enter():
            started = admission.clock()
            try:
                async with ThreadSensitiveContext():
                    await self.handle(scope, receive, send)
            finally:
                admission.leave(started)
        else:
            await admission.refuse(scope, send)
            self._record(scope.get("method", "OTHER"), "unmatched", 503)

    async def _refuse_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake is refused: the service speaks HTTP only.

        Closing before accepting is the ASGI way to refuse one; the server answers the
        handshake 403. (An HTTP body through the denial-response extension would say more,
        but uvicorn's default WebSocket protocol logs every such answer as an error.)
        """
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008})
            self._record("GET", "websocket", 403)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._body_limit
        try:
            if limit is None:
                body_file = await self.read_body(receive)
            elif declared_length(scope) > limit:
                raise BodyTooLarge(limit)  # refused before a byte of it is read
            else:
                body_file = await read_bounded_body(receive, limit)
        except RequestAborted:
            return
        except BodyTooLarge as exc:
            await self._refuse_body(scope, send, exc.limit)
            return
        try:
            await self._handle_request(scope, body_file, receive, send)
        finally:
            body_file.close()

    async def _refuse_body(self, scope: Scope, send: Send, limit: int) -> None:
        """413 with the error body, and `Connection: close`: the rest of the body is not
        parsed, so the connection can't carry another request. Served by
        `resilience_async.uvicorn`'s protocol, the connection then lingers (reads and
        discards, bounded) before it closes, so a client still sending reads the 413; this
        request is over meanwhile."""
        refusal = problem_response(
            413, "payload_too_large", f"the body is larger than {limit} bytes",
            field="body", headers={"Connection": "close"},
        )  # fmt: skip
        refusal["Content-Length"] = str(len(refusal.content))
        await self.send_response(refusal, send)
        self._record(scope.get("method", "OTHER"), "unmatched", 413)

    def _record(self, method: str, route: str, status: int) -> None:
        """Count an answer given before Django's middleware (which counts the others)."""
        if self._recorder is not None:
            label = method if method in KNOWN_METHODS else "OTHER"
            self._recorder.record(label, route, status, 0.0)

    async def _handle_request(
        self, scope: Scope, body_file: Any, receive: Receive, send: Send
    ) -> None:
        prefix = get_script_prefix(scope)
        if prefix not in ("", "/"):  # "/" is the default: each request's context starts clean
            set_script_prefix(prefix)
        await self._send_signal(signals.request_started, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # Django makes one when it makes no request
            await self.send_response(error_response, send)
            await self._finish(error_response)
            return
        response = await self._respond_unless_disconnected(request, receive, send)
        await self._finish(response)

    async def _respond_unless_disconnected(
        self, request: HttpRequest, receive: Receive, send: Send
    ) -> HttpResponseBase | None:
        """Serve `request`; on client disconnect cancel the view and return None (as Django).

        Unlike Django, the view runs in this task, not in one of its own joined by
        `asyncio.wait` (a task and a loop step per request, which cost as much as a quick
        view): a request still running after `DISCONNECT_WATCH_AFTER` gets a listener, which
        cancels this task on a disconnect; that cancellation is taken back here.
        """
        task = asyncio.current_task()
        assert task is not None  # an ASGI app runs in a task
        watch = _DisconnectWatch(task, functools.partial(self.listen_for_disconnect, receive))
        timer = asyncio.get_running_loop().call_later(DISCONNECT_WATCH_AFTER, watch.start)
        try:
            response = await self.run_get_response(request)
            try:
                await self.send_response(response, send)
            except asyncio.CancelledError:
                # The client may go away while the response is being sent: not an error.
                if not watch.take_back():
                    raise
            return response
        except asyncio.CancelledError:
            if not watch.take_back():
                raise  # this task itself was cancelled (server shutdown): not a disconnect
            return None
        finally:
            timer.cancel()
            watch.stop()

    async def send_response(self, response: HttpResponseBase, send: Send) -> None:
        """Django's, without its per-header conversions for a plain response: the headers
        are taken as Django stored them (already checked and converted), the body is sent in
        one message. Streaming and large responses go Django's way."""
        store = getattr(response.headers, "_store", None)
        if response.streaming or type(store) is not dict:
            await super().send_response(response, send)
            return
        body = response.content  # type: ignore[attr-defined]  # not streaming: an HttpResponse
        if len(body) > self.chunk_size:
            await super().send_response(response, send)
            return
        headers = [(key.encode("ascii"), value.encode("latin-1")) for key, value in store.values()]
        for cookie in response.cookies.values():
            headers.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    async def _finish(self, response: HttpResponseBase | None) -> None:
        if response is not None:
            close_response(response)
        await self._send_signal(signals.request_finished)

    async def _send_signal(self, signal: Any, **named: Any) -> None:
        await send_request_signal(
            signal, self.__class__, sync_thread_used=sync_thread_used(), **named
        )

    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        # No set_urlconf(ROOT_URLCONF): Django resets the thread's urlconf a previous request
        # may have left; here each request runs in a fresh context, where it is the default.
        response = await self._middleware_chain(request)
        resource_closers(response).append(request.close)
        if isinstance(response, HttpResponse) and "Content-Length" not in response:
            # As Django's CommonMiddleware does: a plain body, not a chunked one, on the wire.
            response["Content-Length"] = str(len(response.content))
        if response.status_code >= 400:
            # Django does this in a thread; a log call is as sync on the loop as anywhere.
            log_response(
                "%s: %s",
                response.reason_phrase,
                request.path,
                response=response,  # type: ignore[arg-type]  # any response, as in Django
                request=request,
            )
        return response

    async def _get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        """Render client errors (unknown path included) as JSON on the loop, not in a thread."""
        try:
            # BaseHandler's, missing from django-stubs.
            response: HttpResponseBase = await super()._get_response_async(request)  # type: ignore[misc]
            return response
        except CLIENT_ERRORS as exc:
            return client_error_response(request, exc)

    def make_view_atomic(self, view: Callable[..., Any]) -> Callable[..., Any]:
        """Also catch a view's client errors before Django hands them to a thread.

        Django passes a view's exception to `process_exception` middleware in a thread even
        when there is none; with none installed the result is the same, minus the thread.
        """
        view = super().make_view_atomic(view)
        if self._exception_middleware or not iscoroutinefunction(view):
            return view
        wrapped = self._client_error_views.get(view)
        if wrapped is None:
            wrapped = self._client_error_views[view] = _answering_client_errors(view)
        return wrapped


class BodyTooLarge(Exception):
    """The request body is (or says it will be) over the limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"the body is larger than {limit} bytes")


def declared_length(scope: Scope) -> int:
    """The request's Content-Length, or -1 without one (a chunked body)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else -1
    return -1


async def read_bounded_body(receive: Receive, limit: int) -> io.BytesIO:
    """The body, in memory, or `BodyTooLarge` as soon as more than `limit` bytes came.

    Django's `read_body` spools a large body to a temporary file before any limit is
    checked; this stops reading at the limit, so nothing big is held or written.
    """
    body = io.BytesIO()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestAborted
        body.write(message.get("body", b""))
        if body.tell() > limit:
            raise BodyTooLarge(limit)
        if not message.get("more_body", False):
            body.seek(0)
            return body


class _DisconnectWatch:
    """Listens for the client's disconnect (once started) and cancels `task` on one."""

    def __init__(self, task: asyncio.Task[Any], listen: Callable[[], Awaitable[Any]]) -> None:
        self._task = task
        self._listen = listen
        self._listener: asyncio.Task[Any] | None = None
        self._stopped = False
        self._cancelled = False

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen())  # type: ignore[arg-type]
        self._listener.add_done_callback(self._heard)

    def _heard(self, listener: asyncio.Task[Any]) -> None:
        """The listener ended: on a client disconnect, cancel the view if it still runs."""
        if listener.cancelled():
            return
        exc = listener.exception()  # also marks it retrieved
        if self._stopped:
            return  # the request ended meanwhile: nothing left to cancel
        if isinstance(exc, RequestAborted):
            self._cancelled = True
            self._task.cancel()
        elif exc is not None:  # an ASGI protocol error (Django asserts on it too)
            self._cancelled = True
            self._task.cancel(msg=f"invalid ASGI message after request body: {exc}")

    def take_back(self) -> bool:
        """After a CancelledError: whether it was ours alone (then it is undone)."""
        if not self._cancelled:
            return False
        self._cancelled = False
        return self._task.uncancel() == 0  # else someone else cancelled the task too

    def stop(self) -> None:
        self._stopped = True
        if self._listener is not None:
            self._listener.cancel()


CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)


def client_error_response(request: HttpRequest, exc: Exception) -> HttpResponseBase:
    """The problem details for an exception that means the client asked wrongly (mapped as
    Django maps them)."""
    if isinstance(exc, Http404):
        return problem_response(404, "not_found", f"nothing at {request.path}")
    if isinstance(exc, PermissionDenied):
        return problem_response(403, "forbidden", "permission denied")
    if isinstance(exc, RequestDataTooBig):
        return problem_response(413, "payload_too_large", "request body is too large")
    if isinstance(exc, SuspiciousOperation):
        security_logger = logging.getLogger(f"django.security.{exc.__class__.__name__}")
        security_logger.error(str(exc), extra={"status_code": 400})
    return problem_response(400, "bad_request", "the request could not be understood")


def _answering_client_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    async def answering(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return await view(request, *args, **kwargs)
        except CLIENT_ERRORS as exc:
            return client_error_response(request, exc)

    return answering
