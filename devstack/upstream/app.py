"""The two raw ASGI apps of the demo upstream: the tips app and its control app.

The tips app is the upstream under test and sits on benchmark hot paths, so every body
it sends on the normal path is encoded once up front and reused. The control app is
the JSON API that switches the shared ``Behaviour`` between modes.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from devstack.upstream import bodies
from devstack.upstream.behaviour import (
    Behaviour,
    InvalidModeChange,
    Mode,
    ModeState,
    Stats,
    parse_mode_change,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ModeHook = Callable[[Mode], Awaitable[None]]
Reply = tuple[int, dict[str, Any] | None]

MAX_LIMIT = 50
MAX_CONTROL_BODY = 64 * 1024
_QUERY_CACHE_SIZE = 1024
_READ_METHODS = frozenset({"GET", "HEAD"})
_TIPS_PATHS = frozenset({"/tips", "/health"})

TIPS: tuple[str, ...] = (
    "Set a timeout on every network call; a call without one is an outage in waiting.",
    "Retry only idempotent operations, with exponential backoff and jitter.",
    "Cap retries with a budget so a slow dependency is not hit with a retry storm.",
    "Open a circuit breaker after repeated failures to give the dependency room to recover.",
    "Serve a cached answer when a dependency is down, and mark it as stale.",
    "Bound every queue and pool; unbounded buffers turn slowness into memory exhaustion.",
    "Shed load early with a fast 503 instead of letting every request time out.",
    "Give each dependency its own connection pool so one slow service cannot starve the rest.",
    "Pass deadlines downstream so work stops once the caller has given up.",
    "Inject faults in tests so the fallback paths are known to work before they are needed.",
)


class Prepared(NamedTuple):
    """A complete response as ready-made ASGI messages, built once and sent many times."""

    status: int
    start: dict[str, Any]
    body: dict[str, Any]


def prepare(status: int, payload: object, extra: tuple[tuple[bytes, bytes], ...] = ()) -> Prepared:
    """Encode a JSON response once, content-length included (no chunked encoding)."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    start = {"type": "http.response.start", "status": status, "headers": [*headers, *extra]}
    return Prepared(status, start, {"type": "http.response.body", "body": body, "more_body": False})


def error_payload(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The error shape both ports share."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}


_NOT_FOUND = prepare(404, error_payload("not_found", "no such path"))
_NOT_ALLOWED = prepare(
    405, error_payload("method_not_allowed", "use GET or HEAD"), ((b"allow", b"GET, HEAD"),)
)
_HEALTH = prepare(200, {"status": "pass"})
_REFUSING = prepare(503, error_payload("refusing", "the upstream is refusing connections"))
_SHUTTING_DOWN = prepare(503, error_payload("shutting_down", "the upstream is stopping"))
_TIPS_BY_LIMIT = tuple(
    prepare(200, {"tips": [{"id": i, "text": text} for i, text in enumerate(TIPS[:limit], 1)]})
    for limit in range(MAX_LIMIT + 1)
)


def _garbage(headers: tuple[tuple[bytes, bytes], ...], body: bytes) -> Prepared:
    headers = (*headers, (b"content-length", b"%d" % len(body)))
    start = {"type": "http.response.start", "status": 200, "headers": headers}
    return Prepared(200, start, {"type": "http.response.body", "body": body, "more_body": False})


_GARBAGE = {kind: _garbage(*answer) for kind, answer in bodies.GARBAGE.items()}


def _tips_for_query(query: bytes) -> Prepared:
    """Pick the tips response for a query string (a 400 when ``limit`` is bad)."""
    values = [value for key, value in parse_qsl(query.decode("latin-1"), True) if key == "limit"]
    if not values:
        return _TIPS_BY_LIMIT[MAX_LIMIT]
    raw = values[-1]
    if not (raw.isascii() and raw.isdecimal() and 1 <= int(raw) <= MAX_LIMIT):
        message = f"limit must be an integer 1..{MAX_LIMIT}, got {raw!r}"
        return prepare(400, error_payload("invalid", message, "limit"))
    return _TIPS_BY_LIMIT[int(raw)]


def _never() -> bool:
    return False


class TipsApp:
    """The upstream under test: serves tips, or fails the way the current mode says."""

    def __init__(self, behaviour: Behaviour, stats: Stats) -> None:
        self._behaviour = behaviour
        self._stats = stats
        self._by_query: dict[bytes, Prepared] = {b"": _TIPS_BY_LIMIT[MAX_LIMIT]}
        self._errors: dict[int, Prepared] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stats = self._stats
        stats.requests += 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            if self._behaviour.mode is Mode.NORMAL:
                response: Prepared | bodies.Streamed | None = self._route(scope)
            else:
                response = await self._faulted(scope, receive)
            if isinstance(response, bodies.Streamed):
                await bodies.stream(response, receive, send)
            elif response is not None:
                await send(response.start)
                await send(response.body)
            if response is not None:
                stats.responses[response.status] = stats.responses.get(response.status, 0) + 1
        finally:
            stats.in_flight -= 1

    def _route(self, scope: Scope) -> Prepared:
        path = scope["path"]
        if path not in _TIPS_PATHS:
            return _NOT_FOUND
        if scope["method"] not in _READ_METHODS:
            return _NOT_ALLOWED
        if path == "/health":
            return _HEALTH
        return self._tips(scope["query_string"])

    def _tips(self, query: bytes) -> Prepared:
        cached = self._by_query.get(query)
        if cached is None:
            cached = _tips_for_query(query)
            if len(self._by_query) < _QUERY_CACHE_SIZE:
                self._by_query[query] = cached
        return cached

    async def _faulted(self, scope: Scope, receive: Receive) -> Prepared | bodies.Streamed | None:
        """Answer per the current mode; ``None`` when the client left while parked."""
        while True:
            state = self._behaviour.state
            if state.mode is Mode.OVERSIZED:
                return await bodies.oversized(state)
            at_once = self._at_once(scope, state)
            if at_once is not None:
                return at_once
            if self._behaviour.closing:
                return _SHUTTING_DOWN
            if state.mode is Mode.SLOW:
                return await self._slow(scope, receive, state.delay_ms / 1000)
            if state.mode is Mode.TAIL:
                return await self._slow(scope, receive, self._tail_delay(state))
            if not await self._park(receive, self._not_hanging):
                return None

    def _at_once(self, scope: Scope, state: ModeState) -> Prepared | None:
        """The answer of a mode that answers without waiting (None: a waiting one)."""
        if state.mode is Mode.NORMAL:
            return self._route(scope)
        if state.mode is Mode.ERROR:
            return self._error(state.status)
        if state.mode is Mode.GARBAGE:
            return _GARBAGE[state.garbage]
        if state.mode is Mode.REFUSE:
            return _REFUSING
        return None

    async def _slow(self, scope: Scope, receive: Receive, seconds: float) -> Prepared | None:
        """Answer normally after the delay; a client that gives up first frees its task."""
        if not await self._park(receive, _never, seconds):
            return None
        return _SHUTTING_DOWN if self._behaviour.closing else self._route(scope)

    def _tail_delay(self, state: ModeState) -> float:
        """Seconds this ``tail`` answer waits: the delay, jittered; every ``tail_every``-th
        answer (the first included) ``tail_ms`` more."""
        late = self._behaviour.answered % state.tail_every == 0
        self._behaviour.answered += 1
        jitter = random.uniform(-state.jitter_ms, state.jitter_ms)  # noqa: S311 - not crypto
        delay_ms = max(0.0, state.delay_ms + jitter) + (state.tail_ms if late else 0)
        return delay_ms / 1000

    def _not_hanging(self) -> bool:
        return self._behaviour.mode is not Mode.HANG

    def _error(self, status: int) -> Prepared:
        prepared = self._errors.get(status)
        if prepared is None:
            message = f"injected fault: mode=error status={status}"
            prepared = self._errors[status] = prepare(status, error_payload("injected", message))
        return prepared

    async def _park(
        self, receive: Receive, released: Callable[[], bool], seconds: float | None = None
    ) -> bool:
        """Hold a request until ``released()`` (rechecked on each mode change), the upstream
        closes, or ``seconds`` pass; False if its client disconnects first."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        gone = asyncio.create_task(bodies.wait_disconnect(receive))
        try:
            while not (released() or self._behaviour.closing):
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return True
                changed = asyncio.create_task(self._behaviour.changed.wait())
                try:
                    await asyncio.wait(
                        (changed, gone), timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    changed.cancel()
                if gone.done():
                    return False
            return True
        finally:
            gone.cancel()


class ControlApp:
    """JSON API that reads and switches the mode and reads or resets the stats."""

    def __init__(self, behaviour: Behaviour, stats: Stats, on_change: ModeHook | None = None):
        self._behaviour = behaviour
        self._stats = stats
        self._on_change = on_change
        self._lock = asyncio.Lock()
        self._routes: dict[tuple[str, str], Callable[[Receive], Awaitable[Reply]]] = {
            ("GET", "/mode"): self._get_mode,
            ("PUT", "/mode"): self._put_mode,
            ("GET", "/stats"): self._get_stats,
            ("POST", "/stats/reset"): self._reset_stats,
            ("GET", "/health"): self._health,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self._routes.get((scope["method"], scope["path"]))
        if handler is not None:
            status, payload = await handler(receive)
        elif any(path == scope["path"] for _, path in self._routes):
            status, payload = 405, error_payload("method_not_allowed", "wrong method")
        else:
            status, payload = 404, error_payload("not_found", "no such path")
        await _send_json(send, status, payload)

    async def _get_mode(self, _receive: Receive) -> Reply:
        return 200, self._behaviour.state.as_dict()

    async def _put_mode(self, receive: Receive) -> Reply:
        try:
            state = parse_mode_change(_decode(await _read_body(receive)))
        except InvalidModeChange as exc:
            return 422, error_payload("invalid", exc.message, exc.field)
        async with self._lock:
            previous = self._behaviour.state
            self._behaviour.set(state)
            try:
                if self._on_change is not None:
                    await self._on_change(state.mode)
            except OSError as exc:
                self._behaviour.set(previous)
                message = f"could not switch to {state.mode}: {exc}"
                return 503, error_payload("apply_failed", message)
        return 200, state.as_dict()

    async def _get_stats(self, _receive: Receive) -> Reply:
        return 200, self._stats.as_dict()

    async def _reset_stats(self, _receive: Receive) -> Reply:
        self._stats.reset()
        return 204, None

    async def _health(self, _receive: Receive) -> Reply:
        return 200, {"status": "pass"}


async def _read_body(receive: Receive) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return bytes(body)
        body += message.get("body", b"")
        if len(body) > MAX_CONTROL_BODY:
            raise InvalidModeChange("body", f"larger than {MAX_CONTROL_BODY} bytes")
        if not message.get("more_body", False):
            return bytes(body)


def _decode(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidModeChange("body", f"invalid JSON: {exc}") from exc


async def _send_json(send: Send, status: int, payload: dict[str, Any] | None) -> None:
    if payload is None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    prepared = prepare(status, payload)
    await send(prepared.start)
    await send(prepared.body)
