"""The fault proxy's HTTP API against Toxiproxy's documented and coded behaviour (api.go):
routes, JSON shapes, status codes and error bodies, byte for byte where Toxiproxy fixes them.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devstack.faults.proxy import VERSION, ToxiproxyServer

UPSTREAM = "127.0.0.1:9"  # never dialled: no client connects in these tests


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    server = ToxiproxyServer(host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            yield client
    finally:
        await server.stop()
        await asyncio.sleep(0.01)


async def create(api: httpx.AsyncClient, name: str = "db", **fields: Any) -> dict[str, Any]:
    body = {"name": name, "listen": "127.0.0.1:0", "upstream": UPSTREAM, **fields}
    answer = await api.post("/proxies", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def assert_error(answer: httpx.Response, status: int, message: str) -> None:
    """An error as Go's http.Error writes Toxiproxy's ApiError."""
    assert answer.status_code == status
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.text == f'{{"error":"{message}","status":{status}}}\n'


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def accepts(listen: str) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port_of(listen))) == 0


async def test_create_answers_the_proxy_with_its_real_address(api: httpx.AsyncClient) -> None:
    """POST /proxies: 201 and the proxy, `listen` port 0 replaced by the port bound."""
    answer = await api.post(
        "/proxies", json={"name": "db", "listen": "127.0.0.1:0", "upstream": UPSTREAM}
    )
    assert answer.status_code == 201
    assert answer.headers["content-type"] == "application/json"
    proxy = answer.json()
    assert list(proxy) == ["name", "listen", "upstream", "enabled", "toxics"]
    assert proxy["listen"].startswith("127.0.0.1:")
    assert port_of(proxy["listen"]) > 0
    assert proxy == {"name": "db", "listen": proxy["listen"], "upstream": UPSTREAM,
                     "enabled": True, "toxics": []}  # fmt: skip
    assert accepts(proxy["listen"])
    assert (await api.get("/proxies")).json() == {"db": proxy}
    assert (await api.get("/proxies/db")).json() == proxy


async def test_create_disabled_does_not_listen(api: httpx.AsyncClient) -> None:
    """`enabled: false` creates the proxy without opening its port."""
    proxy = await create(api, listen="127.0.0.1:0", enabled=False)
    assert proxy["enabled"] is False
    assert proxy["listen"] == "127.0.0.1:0"


async def test_create_errors(api: httpx.AsyncClient) -> None:
    """Duplicates are 409, missing fields and bad bodies 400, a busy port 500."""
    first = await create(api)
    again = await api.post("/proxies", json={"name": "db", "upstream": UPSTREAM})
    assert_error(again, 409, "proxy already exists")
    assert_error(await api.post("/proxies", json={"upstream": UPSTREAM}), 400,
                 "missing required field: name")  # fmt: skip
    assert_error(await api.post("/proxies", json={"name": "x"}), 400,
                 "missing required field: upstream")  # fmt: skip
    assert_error(await api.post("/proxies", content=b""), 400, "bad request body: EOF")
    wrong = await api.post("/proxies", json={"name": "x", "upstream": UPSTREAM, "enabled": "1"})
    assert_error(wrong, 400, "bad request body: json: cannot unmarshal string into "
                 "Go struct field Proxy.enabled of type bool")  # fmt: skip
    busy = await api.post(
        "/proxies", json={"name": "x", "listen": first["listen"], "upstream": UPSTREAM}
    )
    assert_error(busy, 500, f"listen tcp {first['listen']}: bind: address already in use")
    assert set((await api.get("/proxies")).json()) == {"db"}


async def test_unknown_proxy_is_404_everywhere(api: httpx.AsyncClient) -> None:
    """Every route naming a missing proxy answers Toxiproxy's 404."""
    for method, path in [("GET", "/proxies/nope"), ("POST", "/proxies/nope"),
                         ("DELETE", "/proxies/nope"), ("GET", "/proxies/nope/toxics"),
                         ("POST", "/proxies/nope/toxics"), ("GET", "/proxies/nope/toxics/t"),
                         ("DELETE", "/proxies/nope/toxics/t")]:  # fmt: skip
        answer = await api.request(method, path, json={})
        assert_error(answer, 404, "proxy not found")


async def test_update_moves_disables_and_enables(api: httpx.AsyncClient) -> None:
    """POST /proxies/{name}: `enabled` closes and reopens the port; a new `listen` moves it."""
    proxy = await create(api)
    off = await api.post("/proxies/db", json={"enabled": False})
    assert off.status_code == 200
    assert off.json()["enabled"] is False
    assert not accepts(proxy["listen"])
    on = await api.patch("/proxies/db", json={"enabled": True})
    assert on.json() == proxy
    assert accepts(proxy["listen"])
    moved = (await api.post("/proxies/db", json={"listen": "127.0.0.1:0"})).json()
    assert moved["listen"] != proxy["listen"]
    assert moved["enabled"] is True
    assert accepts(moved["listen"])
    assert not accepts(proxy["listen"])


async def test_delete_closes_the_port(api: httpx.AsyncClient) -> None:
    """DELETE /proxies/{name}: 204, the port is closed and the name is free again."""
    proxy = await create(api)
    answer = await api.delete("/proxies/db")
    assert answer.status_code == 204
    assert answer.content == b""
    assert not accepts(proxy["listen"])
    assert_error(await api.get("/proxies/db"), 404, "proxy not found")
    await create(api)


async def test_toxic_defaults_and_shape(api: httpx.AsyncClient) -> None:
    """POST /proxies/{name}/toxics: 200 and the toxic; name `<type>_<stream>`, stream
    downstream, toxicity 1, missing attributes 0."""
    await create(api)
    body = {"type": "latency", "attributes": {"latency": 100}}
    answer = await api.post("/proxies/db/toxics", json=body)
    assert answer.status_code == 200
    toxic = answer.json()
    assert list(toxic) == ["attributes", "name", "type", "stream", "toxicity"]
    assert toxic == {"attributes": {"latency": 100, "jitter": 0}, "name": "latency_downstream",
                     "type": "latency", "stream": "downstream", "toxicity": 1}  # fmt: skip
    assert (await api.get("/proxies/db/toxics/latency_downstream")).json() == toxic
    assert (await api.get("/proxies/db")).json()["toxics"] == [toxic]


@pytest.mark.parametrize(("kind", "attributes"), [
    ("latency", {"latency": 0, "jitter": 0}),
    ("bandwidth", {"rate": 0}),
    ("slow_close", {"delay": 0}),
    ("timeout", {"timeout": 0}),
    ("reset_peer", {"timeout": 0}),
    ("slicer", {"average_size": 0, "size_variation": 0, "delay": 0}),
    ("limit_data", {"bytes": 0}),
    ("noop", {}),
])  # fmt: skip
async def test_every_toxic_type_has_toxiproxys_attributes(
    api: httpx.AsyncClient, kind: str, attributes: dict[str, int]
) -> None:
    """Each of Toxiproxy's toxic types is accepted, with its attributes in Go's order."""
    await create(api)
    answer = await api.post("/proxies/db/toxics", json={"type": kind, "stream": "upstream"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["attributes"] == attributes
    assert list(answer.json()["attributes"]) == list(attributes)


async def test_toxic_errors(api: httpx.AsyncClient) -> None:
    """Duplicate names 409, bad stream or type 400, non-integer attributes 400, missing 404."""
    await create(api)
    body = {"type": "timeout", "name": "t", "attributes": {"timeout": 5}}
    assert (await api.post("/proxies/db/toxics", json=body)).status_code == 200
    assert_error(await api.post("/proxies/db/toxics", json=body), 409, "toxic already exists")
    assert_error(await api.post("/proxies/db/toxics", json={"type": "latency", "stream": "up"}),
                 400, "stream was invalid, can be either upstream or downstream")  # fmt: skip
    assert_error(await api.post("/proxies/db/toxics", json={"type": "nope"}), 400,
                 "invalid toxic type")  # fmt: skip
    fractional = {"type": "latency", "attributes": {"latency": 1.5}}
    assert_error(await api.post("/proxies/db/toxics", json=fractional), 400,
                 "bad request body: json: cannot unmarshal number 1.5 into Go struct field "
                 "LatencyToxic.attributes.latency of type int64")  # fmt: skip
    assert_error(await api.get("/proxies/db/toxics/nope"), 404, "toxic not found")
    assert_error(await api.delete("/proxies/db/toxics/nope"), 404, "toxic not found")
    assert_error(await api.post("/proxies/db/toxics/nope", json={}), 404, "toxic not found")


async def test_toxic_update_merges_attributes(api: httpx.AsyncClient) -> None:
    """POST /proxies/{name}/toxics/{toxic}: attributes given replace theirs, the rest stay;
    toxicity changes when given."""
    await create(api)
    body = {"type": "latency", "attributes": {"latency": 100, "jitter": 10}}
    await api.post("/proxies/db/toxics", json=body)
    answer = await api.post("/proxies/db/toxics/latency_downstream",
                            json={"attributes": {"jitter": 30}, "toxicity": 0.5})  # fmt: skip
    assert answer.status_code == 200
    assert answer.json() == {"attributes": {"latency": 100, "jitter": 30},
                             "name": "latency_downstream", "type": "latency",
                             "stream": "downstream", "toxicity": 0.5}  # fmt: skip


async def test_toxics_are_listed_upstream_first(api: httpx.AsyncClient) -> None:
    """GET /proxies/{name}/toxics lists upstream toxics, then downstream, each in order."""
    await create(api)
    for name, stream in [("d1", "downstream"), ("u1", "upstream"), ("d2", "downstream")]:
        await api.post("/proxies/db/toxics", json={"type": "noop", "name": name, "stream": stream})
    names = [toxic["name"] for toxic in (await api.get("/proxies/db/toxics")).json()]
    assert names == ["u1", "d1", "d2"]
    assert (await api.delete("/proxies/db/toxics/d1")).status_code == 204
    assert [t["name"] for t in (await api.get("/proxies/db/toxics")).json()] == ["u1", "d2"]


async def test_populate_creates_keeps_and_replaces(api: httpx.AsyncClient) -> None:
    """POST /populate: 201 {"proxies": [...]}; the same list again changes nothing (toxics
    stay), a new upstream replaces the proxy (toxics gone)."""
    wanted = [{"name": "primary", "listen": "127.0.0.1:0", "upstream": UPSTREAM},
              {"name": "redis", "listen": "127.0.0.1:0", "upstream": UPSTREAM}]  # fmt: skip
    answer = await api.post("/populate", json=wanted)
    assert answer.status_code == 201
    created = answer.json()["proxies"]
    assert list(answer.json()) == ["proxies"]
    assert [p["name"] for p in created] == ["primary", "redis"]
    await api.post("/proxies/redis/toxics", json={"type": "latency"})
    fixed = [{**p, "listen": c["listen"]} for p, c in zip(wanted, created, strict=True)]
    again = (await api.post("/populate", json=fixed)).json()["proxies"]
    assert again[1]["toxics"] != []
    assert again[0] == created[0]
    fixed[1]["upstream"] = "127.0.0.1:10"
    replaced = (await api.post("/populate", json=fixed)).json()["proxies"][1]
    assert replaced["upstream"] == "127.0.0.1:10"
    assert replaced["toxics"] == []


async def test_populate_errors(api: httpx.AsyncClient) -> None:
    """A bad list is refused whole (400, proxies null); an empty one is 201 with null."""
    answer = await api.post("/populate", json=[{"name": "a", "upstream": UPSTREAM},
                                               {"upstream": UPSTREAM}])  # fmt: skip
    assert answer.status_code == 400
    assert answer.json() == {"error": "missing required field: name at proxy 2",
                             "status": 400, "proxies": None}  # fmt: skip
    assert (await api.get("/proxies")).json() == {}
    empty = await api.post("/populate", json=[])
    assert (empty.status_code, empty.json()) == (201, {"proxies": None})
    not_a_list = await api.post("/populate", json={"name": "a"})
    assert not_a_list.status_code == 400
    assert not_a_list.json()["proxies"] is None


async def test_reset_enables_proxies_and_removes_toxics(api: httpx.AsyncClient) -> None:
    """POST /reset: 204; every proxy enabled again on its address, every toxic gone."""
    proxy = await create(api)
    await api.post("/proxies/db/toxics", json={"type": "latency"})
    await api.post("/proxies/db", json={"enabled": False})
    answer = await api.post("/reset")
    assert answer.status_code == 204
    assert (await api.get("/proxies/db")).json() == proxy
    assert accepts(proxy["listen"])


async def test_version_and_refusals(api: httpx.AsyncClient) -> None:
    """GET /version as Toxiproxy writes it; browsers get 403, unknown routes 404, wrong
    methods 405."""
    version = await api.get("/version")
    assert version.headers["content-type"] == "application/json;charset=utf-8"
    assert version.text == f'{{"version": "{VERSION}"}}\n'
    browser = await api.get("/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert (browser.status_code, browser.text) == (403, "User agent not allowed\n")
    unknown = await api.get("/nope")
    assert (unknown.status_code, unknown.text) == (404, "404 page not found\n")
    assert (await api.put("/proxies")).status_code == 405
