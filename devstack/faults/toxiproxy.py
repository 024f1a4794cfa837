"""A small synchronous client of Toxiproxy's HTTP API (our fault proxy, or a real one).

    with ToxiproxyClient("http://127.0.0.1:8474") as proxy:
        proxy.populate([{"name": "redis", "listen": "127.0.0.1:16379",
                         "upstream": "127.0.0.1:6379"}])
        name = proxy.add_toxic("redis", "latency", attributes={"latency": 500, "jitter": 50})
        ...
        proxy.remove_toxic("redis", name)

Only the documented API is used, so a real `toxiproxy-server` works the same. Every
failure, refused or unreachable, is a `ToxiproxyError` naming the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8474"

JSON = dict[str, Any]


class ToxiproxyError(RuntimeError):
    """A call to the Toxiproxy API failed; `status` is its HTTP status (None: no answer)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ToxiproxyClient:
    """Toxiproxy's API at `url`.

    Args:
        url: the API's base URL.
        timeout: seconds for each call (disabling a busy proxy is quick; this is a bound).
    """

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def __enter__(self) -> ToxiproxyClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- proxies --------------------------------------------------------------------------
    def version(self) -> str:
        return str(self._call("GET", "/version")["version"])

    def proxies(self) -> dict[str, JSON]:
        """Every proxy by name, each with its `toxics`."""
        return dict(self._call("GET", "/proxies"))

    def proxy(self, name: str) -> JSON:
        return dict(self._call("GET", f"/proxies/{name}"))

    def populate(self, proxies: Iterable[Mapping[str, Any]]) -> list[JSON]:
        """Create the proxies (name, listen, upstream[, enabled]); one of the same name is
        replaced only if its addresses differ. The proxies as created (real `listen`)."""
        return list(self._call("POST", "/populate", [dict(p) for p in proxies])["proxies"] or [])

    def create(
        self, name: str, *, upstream: str, listen: str = "127.0.0.1:0", enabled: bool = True
    ) -> JSON:
        body = {"name": name, "listen": listen, "upstream": upstream, "enabled": enabled}
        return dict(self._call("POST", "/proxies", body))

    def delete(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def set_enabled(self, proxy: str, enabled: bool) -> JSON:
        """Enable a proxy, or disable it: it stops listening and drops its connections."""
        return dict(self._call("POST", f"/proxies/{proxy}", {"enabled": enabled}))

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")

    # --- toxics ---------------------------------------------------------------------------
    def add_toxic(
        self,
        proxy: str,
        toxic_type: str,
        *,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: Mapping[str, int] | None = None,
        name: str | None = None,
    ) -> str:
        """Add a toxic to `proxy`; its name (by default `<type>_<stream>`).

        Args:
            toxic_type: latency, bandwidth, slow_close, timeout, reset_peer, slicer,
                limit_data or noop.
            stream: `downstream` (server to client) or `upstream` (client to server).
            toxicity: the chance (0..1) that each connection is affected.
            attributes: the type's settings, e.g. {"latency": 500, "jitter": 50} (ms).
        """
        body: JSON = {"type": toxic_type, "stream": stream, "toxicity": toxicity}
        body["attributes"] = dict(attributes or {})
        if name is not None:
            body["name"] = name
        return str(self._call("POST", f"/proxies/{proxy}/toxics", body)["name"])

    def update_toxic(
        self,
        proxy: str,
        name: str,
        *,
        attributes: Mapping[str, int] | None = None,
        toxicity: float | None = None,
    ) -> JSON:
        body: JSON = {"attributes": dict(attributes or {})}
        if toxicity is not None:
            body["toxicity"] = toxicity
        return dict(self._call("POST", f"/proxies/{proxy}/toxics/{name}", body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", f"/proxies/{proxy}/toxics/{name}")

    def toxics(self, proxy: str) -> list[JSON]:
        return list(self._call("GET", f"/proxies/{proxy}/toxics"))

    # --- transport ------------------------------------------------------------------------
    def _call(self, method: str, path: str, body: object = None) -> Any:
        what = f"{method} {self.url}{path}"
        try:
            answer = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ToxiproxyError(f"{what}: {type(exc).__name__}: {exc}") from exc
        if answer.status_code >= 400:
            raise ToxiproxyError(
                f"{what}: {answer.status_code} {_reason(answer)}", status=answer.status_code
            )
        return answer.json() if answer.content else None


def _reason(answer: httpx.Response) -> str:
    """Toxiproxy's `error` text (its errors are JSON, sent as text/plain)."""
    try:
        return str(answer.json()["error"])
    except (ValueError, KeyError, TypeError):
        return answer.text.strip() or answer.reason_phrase
