"""`ResilientClient`: one shared `httpx.AsyncClient` per upstream, guarded.

Every request goes bulkhead → (breaker → httpx) per attempt → retry decision:
- timeouts are always set: connect, read/write and pool wait, plus a total per attempt (the
  breaker's `call_timeout`), so a hanging upstream costs a bounded wait;
- the breaker sees the upstream's failures only: a 5xx or 429 answer, a timeout, a refused or
  broken connection; waiting for one of our own pooled connections (`PoolExhaustedError`) or
  a full bulkhead is our saturation and is excluded;
- only idempotent requests are retried, on a connection failure, a timeout or an overload
  answer (429/502/503/504), with full-jitter backoff (or the upstream's `Retry-After`), and
  only while the retry budget allows: an outage is never multiplied;
- a body is read within `max_body` bytes, declared, received and decoded (`_body.py`):
  past it the answer is the upstream's failure (`ResponseTooLargeError`, which the breaker
  counts); every unusable answer (too large, undecodable, malformed JSON, or the caller's
  "wrong shape") is counted by reason and logged, throttled (`_unusable.py`);
- with a `Hedge`, a read's (GET, HEAD, OPTIONS) attempt that is later than usual is overtaken
  by a second one (the first answer wins, a 5xx included; the loser is cancelled, its
  connection dropped): see `ResilientClient`'s `hedge`;
- httpx's exceptions are translated here, once, into the library's exception tree.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

import httpx

from resilience_async._body import ACCEPT_ENCODING, read_within
from resilience_async._breaker import Guard
from resilience_async._errors import (
    CallTimeoutError,
    PoolExhaustedError,
    UnusableResponseError,
    UpstreamError,
    UpstreamStatusError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from resilience_async._extras import extra_needed
from resilience_async._hedge import Hedge
from resilience_async._hooks import Hooked
from resilience_async._limits import Bulkhead
from resilience_async._resource import AsyncResource
from resilience_async._retry import IDEMPOTENT_METHODS, RetryBudget, RetryPolicy
from resilience_async._unusable import UnusableAnswers

MAX_BODY = 4 * 1024 * 1024  # bytes: a service-to-service JSON client, not a downloader
# Hedged: reads only. A PUT or DELETE may be retried (one after the other) but not hedged: two
# copies in flight at once may land on either side of another client's write.
HEDGED_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamHook(Protocol):
    """Told of every attempt, retry decision and unusable answer of one client (on the call
    path: keep it cheap).

    `record_attempt` gets the attempt's outcome: the status code as text ("200", "503"), or
    "timeout", "unavailable", "pool_timeout", "too_large", "bad_encoding", or "abandoned"
    (a hedged attempt cancelled because the other one answered first, or the caller left);
    `record_retry` whether a retry was allowed (False: the retry budget refused it);
    `record_unusable` the reason an answer could not be used (`UnusableResponseError.reason`).
    """

    def record_attempt(self, outcome: str, /) -> None: ...

    def record_retry(self, allowed: bool, /) -> None: ...

    def record_unusable(self, reason: str, /) -> None: ...


def is_server_failure(response: Any) -> bool:
    """A breaker's result predicate: 5xx and 429 are the upstream's failures, 4xx are ours."""
    status = getattr(response, "status_code", 200)
    return status >= 500 or status == 429


class ResilientClient(AsyncResource, Hooked[UpstreamHook]):
    """HTTP calls to one upstream, with timeouts, a breaker, budgeted retries and a bulkhead.

    `async with client:` opens its httpx client and transport on the running loop (an
    unopened client opens its transport on first use); `aclose()` closes them. The breaker
    and the bulkhead are the caller's: they may be shared, and are closed by their owner.

    Args:
        name: the upstream's name in errors, logs and metrics.
        base_url: prefix of every request URL.
        timeout: seconds to read or write, and the default total per attempt.
        connect_timeout: seconds to establish a connection.
        pool_timeout: seconds to wait for a pooled connection before `PoolExhaustedError`.
        max_connections: connections kept open to the upstream at most.
        max_body: bytes an answer's body may hold, as sent and decoded; past it (or a
            Content-Length past it) `ResponseTooLargeError`, and the connection is dropped.
        breaker: guards each attempt (None: no breaker, the timeouts still apply).
        retry: which failures are retried and the backoff between attempts.
        budget: caps retries to a fraction of recent requests (default: 20 %).
        bulkhead: bounds concurrent requests to the upstream (None: only max_connections).
        transport: the httpx transport; default `AiohttpTransport(max_connections=...)`.
        hedge: hedges GET, HEAD and OPTIONS (None: never, at no cost). Each attempt of the
            retry loop is hedged: once it is later than the hedge's delay (a recent
            percentile of attempts), a second attempt is sent, within the hedge's budget,
            and the first answer wins, whatever its status (a 5xx is an answer; the retry
            loop judges it); a failed attempt lets the other one win. Both attempts go
            through the breaker, each with its own call timeout, and count in `attempts`
            (a cancelled loser as "abandoned"; the breaker ignores it). The loser's
            connection is dropped, not pooled. `aclose()` waits for the losers first.
        hooks: told of every attempt, retry decision and unusable answer (`UpstreamHook`).

    `client` is the shared `httpx.AsyncClient` on the same transport, with the same base URL
    and timeouts, for what this class does not do (streaming, redirects, cookies): its
    reads are not bounded by `max_body`. The client's own requests go straight to the
    transport: measured here, httpx's redirect, auth and cookie-jar layers doubled the cost
    of a call that uses none of them.
    """

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float = 2.0,
        connect_timeout: float = 1.0,
        pool_timeout: float = 0.5,
        max_connections: int = 100,
        max_body: int = MAX_BODY,
        breaker: Guard | None = None,
        retry: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        bulkhead: Bulkhead | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        hedge: Hedge[Any] | None = None,
        hooks: Iterable[UpstreamHook] = (),
    ) -> None:
        if min(timeout, connect_timeout, pool_timeout) <= 0:
            raise ValueError("timeout, connect_timeout and pool_timeout must be > 0 seconds")
        if max_body < 1:
            raise ValueError(f"max_body must be at least 1 byte, got {max_body}")
        self.name = name
        self.max_body = max_body
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.hedge = hedge
        self._retry = retry or RetryPolicy()
        self._budget = budget or RetryBudget()
        self._timeout = timeout
        self._transport = transport or _default_transport(max_connections)
        timeouts = httpx.Timeout(timeout, connect=connect_timeout, pool=pool_timeout)
        self.client = httpx.AsyncClient(
            base_url=base_url, timeout=timeouts, transport=self._transport,
            headers={"Accept-Encoding": ACCEPT_ENCODING},  # what `max_body` can bound
        )  # fmt: skip
        self._timeouts = timeouts.as_dict()
        self._urls: dict[str, httpx.URL] = {}
        self._requests = 0
        self._attempts: dict[str, int] = {}
        self._retries = {True: 0, False: 0}
        self._unusable = UnusableAnswers(name)
        self._hooks = tuple(hooks)

    def stats(self) -> dict[str, Any]:
        """Requests made, attempts by outcome, retries made and refused by the budget, and
        unusable answers by reason.

        Keys: `requests`, `attempts` (outcome -> count, as `UpstreamHook` names outcomes),
        `retries`, `retries_refused`, `unusable` (reason -> count).
        """
        return {
            "requests": self._requests,
            "attempts": dict(self._attempts),
            "retries": self._retries[True],
            "retries_refused": self._retries[False],
            "unusable": dict(self._unusable.counts),
        }

    def unusable(self, reason: str, detail: str) -> UnusableResponseError:
        """An answer the caller cannot use, counted and logged as the client's own are: raise it.

        `raise client.unusable("wrong_shape", "answered JSON without a list of tips")`

        Args:
            reason: a word for the metric label ("wrong_shape").
            detail: what was wrong, after the upstream's name; never the body itself.
        """
        error = UnusableResponseError(self.name, reason, detail)
        self._report(error)
        return error

    async def _open(self) -> None:
        await self.client.__aenter__()  # httpx opens its transport (aiohttp's session) here

    async def aclose(self) -> None:
        if self.hedge is not None:  # its losers give their connections back to our transport
            await self.hedge.aclose()
        await self.client.aclose()

    async def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET `url` and decode its JSON; `UpstreamStatusError` unless the answer is 2xx."""
        response = await self.request("GET", url, **kwargs)
        if not response.is_success:
            raise UpstreamStatusError(self.name, response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            detail = f"answered malformed JSON ({exc})"
        # Raised here, not from the decoding error (whose `doc` is the body), and without the
        # answer: the error may wait in a reference cycle for the collector, the body not.
        del response
        raise self.unusable("malformed_json", detail)

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with retries; return the last answer, or raise a `ResilienceError`."""
        if self.bulkhead is None:
            return await self._with_retries(method, url, kwargs)
        async with self.bulkhead:
            return await self._with_retries(method, url, kwargs)

    async def _with_retries(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        self._requests += 1
        self._budget.record_request()
        retryable = method.upper() in IDEMPOTENT_METHODS
        hedged = self.hedge is not None and method.upper() in HEDGED_METHODS
        loop = asyncio.get_running_loop()
        # One deadline for the whole request: retries only spend what the first attempt left,
        # so a hanging upstream costs one timeout, not one per attempt.
        deadline = loop.time() + self._timeout
        attempt = 0
        while True:
            attempt += 1
            response, error = await self._try(method, url, kwargs, attempt, deadline, hedged=hedged)
            if response is not None and response.status_code not in self._retry.retry_statuses:
                return response
            hint = _retry_after(response) if response is not None else None
            delay = self._retry.delay(attempt, hint)
            if not (retryable and loop.time() + delay < deadline and self._may_retry(attempt)):
                if error is not None:
                    raise error
                assert response is not None  # one of the two is always set
                return response
            if response is not None:
                await response.aclose()
            await asyncio.sleep(delay)

    async def _try(
        self,
        method: str,
        url: str,
        kwargs: dict[str, Any],
        attempt: int,
        deadline: float,
        *,
        hedged: bool,
    ) -> tuple[httpx.Response | None, Exception | None]:
        """One attempt; a failure worth retrying is returned (with the attempt count), not raised.

        The first attempt is bounded by the breaker's own call timeout, so that it counts a
        hanging upstream as a failure (hedged, each of its two attempts is); later ones also
        by the request's deadline.
        """
        send = self._hedged if hedged else self._attempt
        try:
            if attempt == 1:
                return await send(method, url, kwargs), None
            async with asyncio.timeout_at(deadline):
                return await send(method, url, kwargs), None
        except (UpstreamUnavailableError, UpstreamTimeoutError, CallTimeoutError) as exc:
            if isinstance(exc, UpstreamError):
                exc.attempts = attempt
            return None, exc
        except TimeoutError as exc:  # the request's deadline, between two attempts' timeouts
            error = UpstreamTimeoutError(self.name, "gave no answer in time", attempts=attempt)
            error.__cause__ = exc
            return None, error

    def _may_retry(self, attempt: int) -> bool:
        if attempt >= self._retry.attempts:
            return False
        allowed = self._budget.try_spend()
        self._retries[allowed] += 1
        for hook in self._hooks:
            hook.record_retry(allowed)
        return allowed

    async def _hedged(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        """One attempt, overtaken by a second one if it is late (`hedge`)."""
        assert self.hedge is not None

        async def contender() -> httpx.Response:
            try:
                return await self._attempt(method, url, kwargs)
            except asyncio.CancelledError:  # the other attempt won, or the caller left
                self._count("abandoned")
                raise

        response: httpx.Response = await self.hedge.run(contender, contender)
        return response

    async def _attempt(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        if self.breaker is not None:
            return await self.breaker.call_async(self._send, method, url, kwargs)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._send(method, url, kwargs)
        except TimeoutError as exc:
            raise UpstreamTimeoutError(self.name, "gave no answer in time") from exc

    async def _send(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        """One attempt, httpx's errors translated (the breaker judges what comes out of here)."""
        request = self._build(method, url, kwargs)
        try:
            response = await self._transport.handle_async_request(request)
            response = await read_within(response, request, limit=self.max_body, upstream=self.name)
        except UnusableResponseError as exc:
            self._count(exc.reason)
            self._report(exc)
            raise
        except httpx.PoolTimeout as exc:
            self._count("pool_timeout")
            raise PoolExhaustedError(self.name, self._timeouts["pool"] or 0.0) from exc
        except httpx.TimeoutException as exc:
            self._count("timeout")
            raise UpstreamTimeoutError(self.name, f"gave no answer in time ({exc})") from exc
        except httpx.TransportError as exc:
            self._count("unavailable")
            raise UpstreamUnavailableError(self.name, f"is unreachable ({exc})") from exc
        self._count(str(response.status_code))
        return response

    def _build(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Request:
        """An httpx request with the client's base URL, headers and timeouts."""
        full = self._urls.get(url)
        if full is None:
            full = self.client.base_url.join(url)
            if len(self._urls) < 256:  # a client calls a few paths; don't grow on odd ones
                self._urls[url] = full
        headers = self.client.headers
        if "headers" in kwargs:  # kwargs is reused by every attempt: copied, never changed
            headers = httpx.Headers(headers)
            headers.update(kwargs["headers"])
            kwargs = {key: value for key, value in kwargs.items() if key != "headers"}
        return httpx.Request(
            method, full, headers=headers, extensions={"timeout": self._timeouts}, **kwargs
        )

    def _count(self, outcome: str) -> None:
        self._attempts[outcome] = self._attempts.get(outcome, 0) + 1
        for hook in self._hooks:
            hook.record_attempt(outcome)

    def _report(self, error: UnusableResponseError) -> None:
        self._unusable.record(error)
        for hook in self._hooks:
            hook.record_unusable(error.reason)


def _default_transport(max_connections: int) -> httpx.AsyncBaseTransport:
    """`AiohttpTransport`, imported only when no transport is given: with one of its own,
    a client needs httpx alone (the `http` extra), not aiohttp."""
    with extra_needed("ResilientClient's default transport (AiohttpTransport)"):
        from resilience_async._transport import AiohttpTransport  # noqa: PLC0415

    return AiohttpTransport(max_connections=max_connections)


def _retry_after(response: httpx.Response) -> float | None:
    """An upstream's Retry-After in seconds (the HTTP-date form is ignored)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return float(value)
    return None
