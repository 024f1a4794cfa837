"""Toxiproxy's HTTP API (api.go) on aiohttp: the same routes, JSON, statuses and errors.

Successes are compact JSON (`application/json`); errors are written as Go's `http.Error`
writes them: the `{"error": ..., "status": ...}` JSON plus a newline, as `text/plain`. Every
change goes through the collection's lock, so concurrent calls apply one after the other.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from aiohttp import web

from devstack.faults.proxy import _decode
from devstack.faults.proxy.collection import ProxyCollection
from devstack.faults.proxy.errors import ApiError
from devstack.faults.proxy.proxy import Proxy

VERSION = "2.12.0"  # the Toxiproxy release whose API this follows

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(collection: ProxyCollection) -> web.Application:
    """The aiohttp application serving Toxiproxy's routes over `collection`."""
    api = _Api(collection)
    app = web.Application(middlewares=[_as_toxiproxy])
    add = app.router.add_route
    add("POST", "/reset", api.reset)
    add("GET", "/proxies", api.proxy_index)
    add("POST", "/proxies", api.proxy_create)
    add("POST", "/populate", api.populate)
    add("GET", "/proxies/{proxy}", api.proxy_show)
    add("POST", "/proxies/{proxy}", api.proxy_update)
    add("PATCH", "/proxies/{proxy}", api.proxy_update)
    add("DELETE", "/proxies/{proxy}", api.proxy_delete)
    add("GET", "/proxies/{proxy}/toxics", api.toxic_index)
    add("POST", "/proxies/{proxy}/toxics", api.toxic_create)
    add("GET", "/proxies/{proxy}/toxics/{toxic}", api.toxic_show)
    add("POST", "/proxies/{proxy}/toxics/{toxic}", api.toxic_update)
    add("PATCH", "/proxies/{proxy}/toxics/{toxic}", api.toxic_update)
    add("DELETE", "/proxies/{proxy}/toxics/{toxic}", api.toxic_delete)
    add("GET", "/version", api.version)
    return app


class _Api:
    def __init__(self, collection: ProxyCollection) -> None:
        self._proxies = collection

    async def reset(self, request: web.Request) -> web.Response:
        async with self._proxies.lock:
            await self._proxies.reset()
        return web.Response(status=204)

    async def proxy_index(self, request: web.Request) -> web.Response:
        return _json({name: p.as_json() for name, p in self._proxies.all().items()})

    async def proxy_create(self, request: web.Request) -> web.Response:
        body = _decode.parse(await request.read())
        async with self._proxies.lock:
            proxy = await self._proxies.create(body)
        return _json(proxy.as_json(), status=201)

    async def populate(self, request: web.Request) -> web.Response:
        done: list[Proxy] = []
        try:
            body = _decode.parse(await request.read())
            async with self._proxies.lock:
                done, error = await self._proxies.populate(body)
        except ApiError as exc:
            error = exc
        answer = error.as_json() if error is not None else {}
        answer["proxies"] = [proxy.as_json() for proxy in done] or None  # Go's nil slice
        return _json(answer, status=error.status if error is not None else 201)

    async def proxy_show(self, request: web.Request) -> web.Response:
        return _json(self._proxy(request).as_json())

    async def proxy_update(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        fields = _decode.as_object(_decode.parse(await request.read()), "toxiproxy.Proxy")
        async with self._proxies.lock:
            await proxy.update(
                listen=_decode.string(fields, "listen", "Proxy", proxy.listen),
                upstream=_decode.string(fields, "upstream", "Proxy", proxy.upstream),
                enabled=_decode.boolean(fields, "enabled", "Proxy", proxy.enabled),
            )
        return _json(proxy.as_json())

    async def proxy_delete(self, request: web.Request) -> web.Response:
        async with self._proxies.lock:
            await self._proxies.remove(request.match_info["proxy"])
        return web.Response(status=204)

    async def toxic_index(self, request: web.Request) -> web.Response:
        return _json([toxic.as_json() for toxic in self._proxy(request).toxic_list()])

    async def toxic_create(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        body = _decode.parse(await request.read())
        async with self._proxies.lock:
            toxic = proxy.add_toxic(body)
        return _json(toxic.as_json())  # 200, not 201: as Toxiproxy answers

    async def toxic_show(self, request: web.Request) -> web.Response:
        return _json(self._proxy(request).get_toxic(request.match_info["toxic"]).as_json())

    async def toxic_update(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        body = _decode.parse(await request.read())
        async with self._proxies.lock:
            toxic = proxy.update_toxic(request.match_info["toxic"], body)
        return _json(toxic.as_json())

    async def toxic_delete(self, request: web.Request) -> web.Response:
        proxy = self._proxy(request)
        async with self._proxies.lock:
            proxy.remove_toxic(request.match_info["toxic"])
        return web.Response(status=204)

    async def version(self, request: web.Request) -> web.Response:
        body = f'{{"version": "{VERSION}"}}\n'.encode()
        return web.Response(body=body, headers={"Content-Type": "application/json;charset=utf-8"})

    def _proxy(self, request: web.Request) -> Proxy:
        return self._proxies.get(request.match_info["proxy"])


@web.middleware
async def _as_toxiproxy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Toxiproxy's answers for what no handler answers: browsers, unknown routes, errors."""
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return _text(403, "User agent not allowed\n")  # Toxiproxy's CSRF guard
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc)
    except web.HTTPNotFound:
        return _text(404, "404 page not found\n")
    except web.HTTPMethodNotAllowed:
        return web.Response(status=405)
    except (OSError, ValueError) as exc:  # Go answers an error without a status with a 500
        return _error(ApiError(str(exc)))


def _json(data: object, *, status: int = 200) -> web.Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return web.Response(body=body, status=status, content_type="application/json")


def _error(exc: ApiError) -> web.Response:
    return _text(exc.status, json.dumps(exc.as_json(), separators=(",", ":")) + "\n")


def _text(status: int, text: str) -> web.Response:
    headers = {"Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff"}
    return web.Response(body=text.encode(), status=status, headers=headers)
