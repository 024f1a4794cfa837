"""The set of proxies by name: create, populate, delete, reset (Toxiproxy's ProxyCollection)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from devstack.faults.proxy import _decode
from devstack.faults.proxy.errors import (
    ApiError,
    MissingField,
    ProxyAlreadyExists,
    ProxyAlreadyStarted,
    ProxyNotFound,
)
from devstack.faults.proxy.proxy import Proxy

logger = logging.getLogger("devstack.faults.proxy")


class ProxyCollection:
    """Every proxy of one server; `lock` serialises the API's changes to them."""

    def __init__(self) -> None:
        self._proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def all(self) -> dict[str, Proxy]:
        return dict(self._proxies)

    def get(self, name: str) -> Proxy:
        proxy = self._proxies.get(name)
        if proxy is None:
            raise ProxyNotFound
        return proxy

    async def create(self, body: object) -> Proxy:
        """A new proxy from POST /proxies (enabled unless told otherwise)."""
        fields = _decode.as_object(body, "toxiproxy.Proxy")
        name, listen, upstream = _address_fields(fields)
        if not name:
            raise MissingField("name")
        if not upstream:
            raise MissingField("upstream")
        if name in self._proxies:
            raise ProxyAlreadyExists
        proxy = Proxy(name, listen, upstream)
        if _decode.boolean(fields, "enabled", "Proxy", default=True):
            await proxy.start()
        self._proxies[name] = proxy
        logger.info("proxy %s created: %s", name, proxy.describe())
        return proxy

    async def populate(self, body: object) -> tuple[list[Proxy], ApiError | None]:
        """POST /populate: create the proxies listed, replacing one of the same name only
        when its listen or upstream address differs; those done so far, and the error that
        stopped the rest."""
        items = _decode.as_list(body, "[]toxiproxy.Proxy")
        wanted = []
        for number, item in enumerate(items, start=1):
            fields = _decode.as_object(item, "toxiproxy.Proxy")
            name, listen, upstream = _address_fields(fields)
            if not name:
                raise MissingField(f"name at proxy {number}")
            if not upstream:
                raise MissingField(f"upstream at proxy {number}")
            enabled = _decode.boolean(fields, "enabled", "Proxy", default=True)
            wanted.append((name, listen, upstream, enabled))
        done: list[Proxy] = []
        for name, listen, upstream, enabled in wanted:
            try:
                done.append(await self._add_or_replace(name, listen, upstream, enabled=enabled))
            except ApiError as exc:
                return done, exc
            except (OSError, ValueError) as exc:  # an address that does not resolve: a 500
                return done, ApiError(str(exc))
        return done, None

    async def remove(self, name: str) -> None:
        proxy = self.get(name)
        await proxy.stop()
        del self._proxies[name]
        logger.info("proxy %s deleted", name)

    async def reset(self) -> None:
        """POST /reset: every proxy enabled, every toxic removed."""
        for proxy in self._proxies.values():
            with contextlib.suppress(ProxyAlreadyStarted):
                await proxy.start()
            proxy.reset_toxics()
        logger.info("reset: all proxies enabled, all toxics removed")

    async def clear(self) -> None:
        for name in list(self._proxies):
            await self.remove(name)

    async def _add_or_replace(
        self, name: str, listen: str, upstream: str, *, enabled: bool
    ) -> Proxy:
        existing = self._proxies.get(name)
        if existing is not None:
            if not await existing.differs(listen, upstream):
                return existing
            await existing.stop()
        proxy = Proxy(name, listen, upstream)
        if enabled:
            await proxy.start()
        self._proxies[name] = proxy
        verb = "replaced" if existing is not None else "created"
        logger.info("proxy %s %s by populate: %s", name, verb, proxy.describe())
        return proxy


def _address_fields(fields: dict[str, object]) -> tuple[str, str, str]:
    return (
        _decode.string(fields, "name", "Proxy", ""),
        _decode.string(fields, "listen", "Proxy", ""),
        _decode.string(fields, "upstream", "Proxy", ""),
    )
