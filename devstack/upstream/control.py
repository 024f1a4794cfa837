"""Clients for the demo upstream's control port, used by tests, scenarios and benchmarks.

Both clients speak the same JSON API; every failure raises ``UpstreamControlError``
with the call and the reason in its message, so a broken fault scenario says why.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Self

import httpx

from devstack.upstream.behaviour import Mode

DEFAULT_TIMEOUT_S = 5.0
_PROBE_TIMEOUT_S = 1.0
_POLL_S = 0.05


class UpstreamControlError(RuntimeError):
    """A control call failed; the message names the call and the reason."""


class UpstreamNotReady(UpstreamControlError, TimeoutError):
    """The control port did not answer its health check before the deadline."""


def _mode_body(mode: Mode | str, **settings: object) -> dict[str, Any]:
    """The ``PUT /mode`` body: the mode and the settings given (None: the default)."""
    body: dict[str, Any] = {"mode": str(mode)}
    body.update((name, value) for name, value in settings.items() if value is not None)
    return body


def _reason(response: httpx.Response) -> str:
    """The upstream's own error message (and field) when it sent one."""
    try:
        error = response.json()["error"]
        field = f" (field {error['field']})" if "field" in error else ""
        return f"{error['message']}{field}"
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _checked(response: httpx.Response, call: str) -> httpx.Response:
    if response.is_success:
        return response
    raise UpstreamControlError(f"{call} failed: HTTP {response.status_code}: {_reason(response)}")


def _json(response: httpx.Response, call: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise UpstreamControlError(f"{call} answered invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise UpstreamControlError(f"{call} answered {type(payload).__name__}, not an object")
    return payload


def _probe_result(response: httpx.Response) -> str | None:
    return None if response.status_code == 200 else f"health answered {response.status_code}"


def _not_ready(url: str, timeout: float, problem: str) -> UpstreamNotReady:
    return UpstreamNotReady(f"upstream control at {url} not ready after {timeout}s: {problem}")


class UpstreamControl:
    """Blocking client for the control port (``httpx.Client``)."""

    def __init__(self, control_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = control_url.rstrip("/")
        # trust_env=False: a proxy from the environment must not sit in front of localhost.
        self._client = httpx.Client(base_url=self.url, timeout=timeout, trust_env=False)

    def set_mode(
        self,
        mode: Mode | str,
        *,
        delay_ms: int | None = None,
        status: int | None = None,
        size: int | None = None,
        chunked: bool | None = None,
        gzip: bool | None = None,
        garbage: str | None = None,
        jitter_ms: int | None = None,
        tail_ms: int | None = None,
        tail_every: int | None = None,
    ) -> dict[str, Any]:
        """Switch the mode; omitted settings take the upstream's defaults (`ModeState`)."""
        body = _mode_body(mode, delay_ms=delay_ms, status=status, size=size, chunked=chunked,
                          gzip=gzip, garbage=garbage, jitter_ms=jitter_ms, tail_ms=tail_ms,
                          tail_every=tail_every)  # fmt: skip
        return _json(self._call("PUT", "/mode", json=body), "PUT /mode")

    def mode(self) -> dict[str, Any]:
        return _json(self._call("GET", "/mode"), "GET /mode")

    def stats(self) -> dict[str, Any]:
        return _json(self._call("GET", "/stats"), "GET /stats")

    def reset_stats(self) -> None:
        self._call("POST", "/stats/reset")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll the control port's health check until it answers 200 or time runs out."""
        deadline = time.monotonic() + timeout
        while (problem := self._probe()) is not None:
            if time.monotonic() >= deadline:
                raise _not_ready(self.url, timeout, problem)
            time.sleep(_POLL_S)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _probe(self) -> str | None:
        try:
            return _probe_result(self._client.get("/health", timeout=_PROBE_TIMEOUT_S))
        except httpx.TransportError as exc:
            return repr(exc)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        call = f"{method} {self.url}{path}"
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamControlError(f"{call} failed: {exc!r}") from exc
        return _checked(response, call)


class AsyncUpstreamControl:
    """Async client for the control port (``httpx.AsyncClient``)."""

    def __init__(self, control_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = control_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False)

    async def set_mode(
        self,
        mode: Mode | str,
        *,
        delay_ms: int | None = None,
        status: int | None = None,
        size: int | None = None,
        chunked: bool | None = None,
        gzip: bool | None = None,
        garbage: str | None = None,
        jitter_ms: int | None = None,
        tail_ms: int | None = None,
        tail_every: int | None = None,
    ) -> dict[str, Any]:
        """Switch the mode; omitted settings take the upstream's defaults (`ModeState`)."""
        body = _mode_body(mode, delay_ms=delay_ms, status=status, size=size, chunked=chunked,
                          gzip=gzip, garbage=garbage, jitter_ms=jitter_ms, tail_ms=tail_ms,
                          tail_every=tail_every)  # fmt: skip
        return _json(await self._call("PUT", "/mode", json=body), "PUT /mode")

    async def mode(self) -> dict[str, Any]:
        return _json(await self._call("GET", "/mode"), "GET /mode")

    async def stats(self) -> dict[str, Any]:
        return _json(await self._call("GET", "/stats"), "GET /stats")

    async def reset_stats(self) -> None:
        await self._call("POST", "/stats/reset")

    async def wait_ready(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - mirrors the sync API
        """Poll the control port's health check until it answers 200 or time runs out."""
        deadline = time.monotonic() + timeout
        while (problem := await self._probe()) is not None:
            if time.monotonic() >= deadline:
                raise _not_ready(self.url, timeout, problem)
            await asyncio.sleep(_POLL_S)

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _probe(self) -> str | None:
        try:
            return _probe_result(await self._client.get("/health", timeout=_PROBE_TIMEOUT_S))
        except httpx.TransportError as exc:
            return repr(exc)

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        call = f"{method} {self.url}{path}"
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamControlError(f"{call} failed: {exc!r}") from exc
        return _checked(response, call)
