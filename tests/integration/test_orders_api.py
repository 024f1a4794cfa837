"""/api/orders over real HTTP on the real stack: creates, idempotency, reads, paging, no 5xx.

Whether a rejected request created anything is checked on the primary itself, by counting
the rows whose item holds a marker unique to the test: other tests' orders cannot interfere.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psycopg
import pytest

from app.schemas import MAX_ORDER_BODY
from devstack.stack import Stack
from resilience_async import parse_lsn
from tests.helpers import assert_error, metric, wait_for
from tests.servers import WebServer, run_web

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
SERVED_BY = re.compile(r"primary|replica-[0-9]+")


@pytest.fixture(scope="module")
def web(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """One server for the module, started once the primary and the replica both answer."""
    stack.heal()  # an earlier module may have left a database down
    with run_web(stack, tmp_path_factory.mktemp("web")) as server:
        wait_for(lambda: databases_pass(server))
        yield server


def databases_pass(web: WebServer) -> bool:
    checks = web.get("/health/ready").json()["checks"]
    statuses = {key.split(":")[0]: entries[0]["status"] for key, entries in checks.items()}
    return statuses["primary"] == statuses["replica-1"] == "pass"


@pytest.fixture
def primary(healthy_stack: Stack) -> Iterator[psycopg.Connection]:
    with psycopg.connect(healthy_stack.services["primary"]["url"], autocommit=True) as conn:
        yield conn


def marker() -> str:
    return f"orders-api-test-{uuid.uuid4().hex}"


def rows_holding(primary: psycopg.Connection, mark: str) -> int:
    """The orders on the primary whose item contains `mark`."""
    row = primary.execute("SELECT count(*) FROM orders WHERE strpos(item, %s) > 0", (mark,))
    return row.fetchone()[0]  # type: ignore[index]


def post(
    web: WebServer, data: Any, *, key: str | None = None, client: httpx.Client | None = None
) -> httpx.Response:
    headers = dict(JSON)
    if key is not None:
        headers["Idempotency-Key"] = key
    return (client or web.client).post("/api/orders", content=json.dumps(data), headers=headers)


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    return response.json()


# --- create and read back -----------------------------------------------------------------


def test_created_order_is_described_and_readable_with_its_token(
    healthy_stack: Stack, web: WebServer
) -> None:
    """POST answers 201 with the order, its Location and token; GET with the token reads it."""
    item = marker()
    response = post(web, {"item": item, "quantity": 3})
    body = created(response)
    assert set(body) == {"id", "item", "quantity", "created_at", "consistency_token"}
    assert isinstance(body["id"], int)
    assert body["id"] > 0
    assert (body["item"], body["quantity"]) == (item, 3)
    created_at = datetime.datetime.fromisoformat(body["created_at"])
    assert created_at.tzinfo is not None
    assert response.headers["X-Consistency-Token"] == body["consistency_token"]
    parse_lsn(body["consistency_token"])
    assert response.headers["Location"] == f"/api/orders/{body['id']}"
    assert "Idempotent-Replayed" not in response.headers

    read = web.client.get(
        response.headers["Location"],
        headers={"X-Consistency-Token": body["consistency_token"]},
    )
    assert read.status_code == 200, read.text
    expected = {key: value for key, value in body.items() if key != "consistency_token"}
    assert read.json() == expected
    assert SERVED_BY.fullmatch(read.headers["X-Database-Server"])


@pytest.mark.parametrize(
    "suffix", ["x", "é", "\U0001f375", "雪"], ids=["ascii", "latin", "emoji", "cjk"]
)
def test_a_200_character_item_is_stored_verbatim(
    healthy_stack: Stack, web: WebServer, suffix: str
) -> None:
    """200 characters, whatever their UTF-8 size, are accepted and read back unchanged."""
    mark = marker()
    item = mark + suffix * (200 - len(mark))
    body = created(post(web, {"item": item, "quantity": 1}))
    read = web.client.get(
        f"/api/orders/{body['id']}", headers={"X-Consistency-Token": body["consistency_token"]}
    )
    assert read.json()["item"] == item


def test_a_body_of_exactly_the_limit_is_accepted(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection
) -> None:
    """A body of MAX_ORDER_BODY bytes (padded with whitespace) still creates the order."""
    mark = marker()
    raw = json.dumps({"item": mark, "quantity": 1}).encode()
    raw += b" " * (MAX_ORDER_BODY - len(raw))
    response = web.client.post("/api/orders", content=raw, headers=JSON)
    created(response)
    assert rows_holding(primary, mark) == 1


def test_a_chunked_body_is_read(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection
) -> None:
    """A body sent without Content-Length (chunked) is read and creates the order."""
    mark = marker()
    raw = json.dumps({"item": mark, "quantity": 1}).encode()
    response = web.client.post("/api/orders", content=iter([raw[:5], raw[5:]]), headers=JSON)
    assert "Content-Length" not in response.request.headers
    created(response)
    assert rows_holding(primary, mark) == 1


def test_an_oversized_chunked_body_is_refused(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection
) -> None:
    """Without Content-Length to check up front, an oversized body is still a 413 on `body`."""
    mark = marker()
    raw = json.dumps({"item": mark, "quantity": 1}).encode() + b" " * MAX_ORDER_BODY
    response = web.client.post("/api/orders", content=iter([raw]), headers=JSON)
    assert_error(response, 413, "body")
    assert rows_holding(primary, mark) == 0


# --- bad input ----------------------------------------------------------------------------


def _json(data: dict[str, Any]) -> Callable[[str], bytes]:
    """A body builder: `data` with "MARK" in its item replaced by the test's marker."""

    def build(mark: str) -> bytes:
        filled = {k: v.replace("MARK", mark) if k == "item" else v for k, v in data.items()}
        return json.dumps(filled).encode()

    return build


def _oversized(mark: str) -> bytes:
    raw = json.dumps({"item": mark, "quantity": 1}).encode()
    return raw[:-1] + b" " * (MAX_ORDER_BODY + 1 - len(raw)) + b"}"


def _item_of_201(mark: str) -> bytes:
    return json.dumps({"item": mark + "x" * (201 - len(mark)), "quantity": 1}).encode()


_GOOD = _json({"item": "MARK", "quantity": 1})
_JSON_TYPE = "application/json"


class Bad(NamedTuple):
    """A rejected create: what is sent, and the status and field the answer must have."""

    content_type: str | None
    build: Callable[[str], bytes]
    status: int
    field: str


BAD_INPUT = {
    "text-plain": Bad("text/plain", _GOOD, 400, "Content-Type"),
    "form": Bad("application/x-www-form-urlencoded", _GOOD, 400, "Content-Type"),
    "no-content-type": Bad(None, _GOOD, 400, "Content-Type"),
    "malformed-json": Bad(
        _JSON_TYPE, lambda m: b'{"item": "' + m.encode() + b'", "quantity": 1', 400, "body"
    ),
    "invalid-utf8": Bad(
        _JSON_TYPE, lambda m: b'{"item": "' + m.encode() + b'\xff", "quantity": 1}', 400, "body"
    ),
    "array-body": Bad(
        _JSON_TYPE, lambda m: json.dumps([{"item": m, "quantity": 1}]).encode(), 422, "body"
    ),
    "unknown-field": Bad(_JSON_TYPE, _json({"item": "MARK", "quantity": 1, "price": 2}), 422,
                         "price"),
    "missing-item": Bad(_JSON_TYPE, _json({"quantity": 1}), 422, "item"),
    "blank-item": Bad(_JSON_TYPE, _json({"item": "   ", "quantity": 1}), 422, "item"),
    "201-char-item": Bad(_JSON_TYPE, _item_of_201, 422, "item"),
    "nul-in-item": Bad(_JSON_TYPE, _json({"item": "MARK\x00", "quantity": 1}), 422, "item"),
    "missing-quantity": Bad(_JSON_TYPE, _json({"item": "MARK"}), 422, "quantity"),
    "quantity-0": Bad(_JSON_TYPE, _json({"item": "MARK", "quantity": 0}), 422, "quantity"),
    "quantity-10001": Bad(_JSON_TYPE, _json({"item": "MARK", "quantity": 10_001}), 422,
                          "quantity"),
    "quantity-string": Bad(_JSON_TYPE, _json({"item": "MARK", "quantity": "3"}), 422, "quantity"),
    "quantity-float": Bad(_JSON_TYPE, _json({"item": "MARK", "quantity": 2.5}), 422, "quantity"),
    "quantity-bool": Bad(_JSON_TYPE, _json({"item": "MARK", "quantity": True}), 422, "quantity"),
    "body-over-16k": Bad(_JSON_TYPE, _oversized, 413, "body"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_refused_naming_the_field_and_creates_nothing(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection, case: Bad
) -> None:
    """Each malformed or invalid order is a 400/422 naming its field, and no row is written."""
    mark = marker()
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    response = web.client.post("/api/orders", content=case.build(mark), headers=headers)
    assert response.status_code < 500, response.text
    assert_error(response, case.status, case.field)
    assert rows_holding(primary, mark) == 0


def test_a_lone_surrogate_in_item_is_refused_not_a_server_error(
    healthy_stack: Stack, web: WebServer
) -> None:
    """JSON's "\\ud800" would decode to text PostgreSQL cannot store: refused as malformed
    (the body is not text), not a 500."""
    raw = b'{"item": "tea \\ud800", "quantity": 1}'
    response = web.client.post("/api/orders", content=raw, headers=JSON)
    assert response.status_code < 500, response.text
    assert_error(response, 400, "body")


# --- idempotency --------------------------------------------------------------------------


def test_a_retried_create_with_its_key_replays_the_first(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection
) -> None:
    """Same key, same body: both 201 with one order; the second is marked replayed."""
    mark, key = marker(), uuid.uuid4().hex
    first = post(web, {"item": mark, "quantity": 2}, key=key)
    second = post(web, {"item": mark, "quantity": 2}, key=key)
    assert created(first)["id"] == created(second)["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.headers["Location"] == first.headers["Location"]
    assert {k: v for k, v in second.json().items() if k != "consistency_token"} == {
        k: v for k, v in first.json().items() if k != "consistency_token"
    }
    assert rows_holding(primary, mark) == 1


def test_a_quoted_key_is_the_same_key_as_the_bare_token(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection
) -> None:
    """`"k"` (an sf-string) and `k` name one key: the second request replays the first."""
    mark, key = marker(), uuid.uuid4().hex
    first = created(post(web, {"item": mark, "quantity": 1}, key=key))
    second = post(web, {"item": mark, "quantity": 1}, key=f'"{key}"')
    assert created(second)["id"] == first["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
    assert rows_holding(primary, mark) == 1


def test_a_key_reused_with_another_body_is_refused(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection
) -> None:
    """Same key, different order: 422 naming Idempotency-Key, and the second is not created."""
    first_mark, second_mark, key = marker(), marker(), uuid.uuid4().hex
    created(post(web, {"item": first_mark, "quantity": 1}, key=key))
    reused = post(web, {"item": second_mark, "quantity": 1}, key=key)
    error = assert_error(reused, 422, "Idempotency-Key")
    assert error["code"] == "idempotency_key_reused"
    changed_quantity = post(web, {"item": first_mark, "quantity": 2}, key=key)
    assert_error(changed_quantity, 422, "Idempotency-Key")
    assert rows_holding(primary, first_mark) == 1
    assert rows_holding(primary, second_mark) == 0


@pytest.mark.parametrize(
    "key",
    ["k" * 300, "", "two words", '"unterminated', "caf\u00e9"],
    ids=["300-chars", "empty", "space", "bad-quoting", "non-ascii"],
)
def test_an_invalid_key_is_400_and_creates_nothing(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection, key: str
) -> None:
    """A malformed Idempotency-Key header is refused before anything is written."""
    mark = marker()
    headers = {**JSON, "Idempotency-Key": key.encode("utf-8")}
    content = json.dumps({"item": mark, "quantity": 1})
    response = web.client.post("/api/orders", content=content, headers=headers)
    assert_error(response, 400, "Idempotency-Key")
    assert rows_holding(primary, mark) == 0


def test_concurrent_creates_with_one_key_make_one_order(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection
) -> None:
    """Twenty simultaneous identical requests with one key: all 201, one order, one original."""
    mark, key = marker(), uuid.uuid4().hex
    data = {"item": mark, "quantity": 4}
    with (
        httpx.Client(base_url=web.url, timeout=10, headers=web.client.headers) as client,
        concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool,
    ):
        responses = list(pool.map(lambda _: post(web, data, key=key, client=client), range(20)))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    originals = [r for r in responses if "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1
    assert rows_holding(primary, mark) == 1


def test_a_key_past_its_lifetime_creates_afresh(
    healthy_stack: Stack, tmp_path: Path, primary: psycopg.Connection
) -> None:
    """Once IDEMPOTENCY_KEY_TTL has passed, the same key and body create a second order."""
    mark, key = marker(), uuid.uuid4().hex
    data = {"item": mark, "quantity": 1}
    with run_web(healthy_stack, tmp_path, IDEMPOTENCY_KEY_TTL="0.5") as server:
        first = created(post(server, data, key=key))

        def fresh_create() -> httpx.Response | None:
            """A retry: replayed within the lifetime, a new order once it is over."""
            response = post(server, data, key=key)
            return None if "Idempotent-Replayed" in response.headers else response

        fresh = wait_for(fresh_create)
        assert created(fresh)["id"] != first["id"]
        again = post(server, data, key=key)
    assert created(again)["id"] == fresh.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert rows_holding(primary, mark) == 2


# --- reads --------------------------------------------------------------------------------


@pytest.mark.parametrize("order_id", [2**63 - 1, 0], ids=["max-bigint", "zero"])
def test_an_absent_order_is_a_json_404(healthy_stack: Stack, web: WebServer, order_id: int) -> None:
    """An id no order has is a 404 in the error shape, saying which server looked."""
    response = web.client.get(f"/api/orders/{order_id}")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    assert SERVED_BY.fullmatch(response.headers["X-Database-Server"])


def test_an_id_beyond_bigint_is_404_not_500(healthy_stack: Stack, web: WebServer) -> None:
    """An id too large for the column cannot name an order: 404, not a database error."""
    response = web.client.get("/api/orders/99999999999999999999")
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/orders/1", "/api/orders"])
@pytest.mark.parametrize("token", ["garbage", "1/2/3", "123456789/0"])
def test_an_invalid_consistency_token_is_400_naming_the_header(
    healthy_stack: Stack, web: WebServer, path: str, token: str
) -> None:
    """A consistency token that is not an LSN is refused on every read."""
    response = web.client.get(path, headers={"X-Consistency-Token": token})
    assert_error(response, 400, "X-Consistency-Token")


def test_a_token_ahead_of_every_replica_is_served_by_the_primary(
    healthy_stack: Stack, web: WebServer
) -> None:
    """A token no replica has replayed yet sends the read to the primary, which has it all."""
    body = created(post(web, {"item": marker(), "quantity": 1}))
    response = web.client.get(
        f"/api/orders/{body['id']}", headers={"X-Consistency-Token": "FFFFFFFF/FFFFFFFF"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Database-Server"] == "primary"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/orders", "GET, HEAD, POST"),
        ("PUT", "/api/orders", "GET, HEAD, POST"),
        ("PATCH", "/api/orders", "GET, HEAD, POST"),
        ("DELETE", "/api/orders/1", "GET, HEAD"),
        ("POST", "/api/orders/1", "GET, HEAD"),
    ],
)
def test_other_methods_are_405_with_allow(
    healthy_stack: Stack, web: WebServer, method: str, path: str, allow: str
) -> None:
    """A method a route does not serve is a JSON 405 naming the allowed ones."""
    response = web.client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == allow
    assert response.json()["code"] == "method_not_allowed"


# --- paging -------------------------------------------------------------------------------


def test_keyset_pages_walk_newest_first_without_gaps_or_repeats(
    healthy_stack: Stack, web: WebServer
) -> None:
    """limit=2 pages followed by next_before: ids strictly decrease and every order is seen."""
    mark = marker()
    bodies = [created(post(web, {"item": f"{mark}-{n}", "quantity": 1})) for n in range(5)]
    mine = {body["id"] for body in bodies}
    token = bodies[-1]["consistency_token"]  # every page must include our writes

    seen: list[int] = []
    before: int | None = None
    while True:
        params = {"limit": "2"} if before is None else {"limit": "2", "before": str(before)}
        response = web.client.get(
            "/api/orders", params=params, headers={"X-Consistency-Token": token}
        )
        assert response.status_code == 200, response.text
        assert SERVED_BY.fullmatch(response.headers["X-Database-Server"])
        page = response.json()
        ids = [order["id"] for order in page["orders"]]
        assert len(ids) <= 2
        seen += ids
        before = page["next_before"]
        if before is None or before < min(mine):
            break
        assert before == ids[-1]
    assert seen == sorted(seen, reverse=True)
    assert len(seen) == len(set(seen))
    assert mine <= set(seen)


def test_a_page_ends_with_no_next_cursor(healthy_stack: Stack, web: WebServer) -> None:
    """Paging below the oldest order gives an empty page and next_before null."""
    response = web.client.get("/api/orders", params={"before": "1"})
    assert response.status_code == 200, response.text
    assert response.json() == {"orders": [], "next_before": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"before": "0"}, "before"),
        ({"before": "x"}, "before"),
        ({"before": "99999999999999999999"}, "before"),
    ],
)
def test_bad_page_parameters_are_400_naming_them(
    healthy_stack: Stack, web: WebServer, params: dict[str, str], field: str
) -> None:
    """Out-of-range or non-integer paging parameters are refused, naming the parameter."""
    response = web.client.get("/api/orders", params=params)
    error = assert_error(response, 400, field)
    assert error["code"] == "invalid_parameter"


def test_reads_name_the_server_that_answered(healthy_stack: Stack, web: WebServer) -> None:
    """Every read, list or single, says which database server served it."""
    body = created(post(web, {"item": marker(), "quantity": 1}))
    one = web.client.get(f"/api/orders/{body['id']}")
    many = web.client.get("/api/orders", params={"limit": "1"})
    assert one.status_code in (200, 404)  # a lagging replica may not have it yet
    assert many.status_code == 200
    for response in (one, many):
        assert SERVED_BY.fullmatch(response.headers["X-Database-Server"])


def test_metrics_count_queries_by_server_and_show_the_monitor(web: WebServer) -> None:
    """/metrics: reads and writes by the server that ran them; each server up; replica lag."""
    body = created(post(web, {"item": "metrics tea", "quantity": 1}))
    read = web.client.get(f"/api/orders/{body['id']}")
    metrics = web.client.get("/metrics").text

    def value(name: str, **labels: str) -> float:
        found = metric(metrics, name, **labels)
        assert found is not None, f"no {name}{labels} in /metrics"
        return found

    server = read.headers["X-Database-Server"]
    assert value("database_queries_total", kind="write", outcome="ok", server="primary") >= 1
    assert value("database_queries_total", kind="read", outcome="ok", server=server) >= 1
    assert value("database_up", server="primary") == 1
    assert value("database_up", server="replica-1") == 1
    assert value("database_replica_lag_seconds", server="replica-1") >= 0
