"""/api/reports over real HTTP on the real stack: jobs accepted through a transactional outbox.

No relay or worker runs in this module, so every accepted report stays `queued` and every
outbox message stays unsent: what the request itself committed can be read on the primary.
Rejected requests are proved to write nothing by counting the rows before and after (tests
run one at a time and nothing else writes reports here). The reports and messages this
module creates are deleted at its end, so no later test finds an old unsent backlog.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import psycopg
import pytest

from app.schemas import MAX_ORDER_BODY
from devstack.stack import Stack
from devstack.stack.ports import free_port
from resilience_async import parse_lsn
from tests.helpers import assert_error, wait_for
from tests.servers import WebServer, run_web

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}
SERVED_BY = re.compile(r"primary|replica-[0-9]+")
REPORT_KEYS = {"id", "status", "params", "attempts", "created_at", "updated_at"}


@pytest.fixture(scope="module")
def created_ids() -> list[str]:
    """Every report id this module's requests were given (deleted at the end)."""
    return []


@pytest.fixture(scope="module")
def web(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, created_ids: list[str]
) -> Iterator[WebServer]:
    """One server for the module, started once the primary and the replica both answer."""
    stack.heal()  # an earlier module may have left a database down
    with run_web(stack, tmp_path_factory.mktemp("web")) as server:
        wait_for(lambda: databases_pass(server))
        yield server
    stack.heal()
    with psycopg.connect(stack.services["primary"]["url"], autocommit=True) as conn:
        conn.execute(
            "DELETE FROM outbox WHERE actor = 'build_report' AND payload->>'report_id' = ANY(%s)",
            (created_ids,),
        )
        conn.execute("DELETE FROM reports WHERE id::text = ANY(%s)", (created_ids,))


def ready_checks(web: WebServer) -> dict[str, dict[str, Any]]:
    """The detailed readiness entries by component ("outbox:backlog" -> "outbox")."""
    checks = web.get("/health/ready").json()["checks"]
    return {key.split(":")[0]: entries[0] for key, entries in checks.items()}


def databases_pass(web: WebServer) -> bool:
    checks = ready_checks(web)
    return checks["primary"]["status"] == checks["replica-1"]["status"] == "pass"


@pytest.fixture
def primary(healthy_stack: Stack) -> Iterator[psycopg.Connection]:
    with psycopg.connect(healthy_stack.services["primary"]["url"], autocommit=True) as conn:
        yield conn


def post(web: WebServer, data: Any = ..., *, client: httpx.Client | None = None) -> httpx.Response:
    """POST /api/reports with `data` as JSON, or with no body at all when `data` is omitted."""
    client = client or web.client
    if data is ...:
        return client.post("/api/reports")
    return client.post("/api/reports", content=json.dumps(data), headers=JSON)


def accepted(response: httpx.Response, created_ids: list[str]) -> dict[str, Any]:
    """The 202's body, checked for its shape; the id is noted for the module's clean-up."""
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"id", "status", "consistency_token"}
    created_ids.append(body["id"])
    return body


def read(web: WebServer, body: dict[str, Any]) -> httpx.Response:
    """GET the report, with the token its POST returned (so a replica must have it)."""
    return web.client.get(
        f"/api/reports/{body['id']}", headers={"X-Consistency-Token": body["consistency_token"]}
    )


def row_counts(primary: psycopg.Connection) -> tuple[int, int]:
    """(reports, outbox messages) on the primary."""
    row = primary.execute("SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM outbox)")
    return row.fetchone()  # type: ignore[return-value]


def unsent(primary: psycopg.Connection) -> int:
    row = primary.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return row[0]  # type: ignore[index]


# --- accept and read back -----------------------------------------------------------------


def test_an_accepted_report_is_queued_with_its_location_and_token(
    healthy_stack: Stack, web: WebServer, created_ids: list[str]
) -> None:
    """POST {} answers 202 with the id, status queued and a token, in body and headers."""
    response = post(web, {})
    body = accepted(response, created_ids)
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert body["status"] == "queued"
    parse_lsn(body["consistency_token"])
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Location"] == f"/api/reports/{body['id']}"
    assert response.headers["X-Consistency-Token"] == body["consistency_token"]


def test_a_queued_report_reads_back_with_its_token(
    healthy_stack: Stack, web: WebServer, created_ids: list[str]
) -> None:
    """GET with the token: 200, queued, the params echoed, no attempt yet, no result or error."""
    body = accepted(post(web, {}), created_ids)
    response = read(web, body)
    assert response.status_code == 200, response.text
    assert SERVED_BY.fullmatch(response.headers["X-Database-Server"])
    report = response.json()
    assert set(report) == REPORT_KEYS  # no "result", no "error"
    assert report["id"] == body["id"]
    assert report["status"] == "queued"
    assert report["params"] == {}
    assert report["attempts"] == 0
    created_at = datetime.datetime.fromisoformat(report["created_at"])
    assert created_at.tzinfo is not None
    assert report["updated_at"] == report["created_at"]


def test_a_report_is_readable_at_its_location(
    healthy_stack: Stack, web: WebServer, created_ids: list[str]
) -> None:
    """The Location header is a path GET answers (HEAD too, without a body)."""
    response = post(web, {})
    body = accepted(response, created_ids)
    token = {"X-Consistency-Token": body["consistency_token"]}
    got = web.client.get(response.headers["Location"], headers=token)
    assert got.status_code == 200, got.text
    assert got.json()["id"] == body["id"]
    head = web.client.head(response.headers["Location"], headers=token)
    assert head.status_code == 200
    assert head.content == b""


def test_a_post_with_no_body_asks_for_the_default_report(
    healthy_stack: Stack, web: WebServer, created_ids: list[str]
) -> None:
    """No body and no Content-Type at all: 202, and the report's params are {}."""
    response = post(web)
    assert "Content-Type" not in response.request.headers
    body = accepted(response, created_ids)
    assert read(web, body).json()["params"] == {}


def test_parameters_are_stored_normalised(
    healthy_stack: Stack, web: WebServer, created_ids: list[str]
) -> None:
    """Every parameter is kept; a naive `since` is stored as UTC, in isoformat."""
    sent = {"item_prefix": "50%_off\\", "since": "2024-05-01 12:00", "include_tips": False}
    body = accepted(post(web, sent), created_ids)
    assert read(web, body).json()["params"] == {
        "item_prefix": "50%_off\\",
        "since": "2024-05-01T12:00:00+00:00",
        "include_tips": False,
    }


# --- the transactional outbox -------------------------------------------------------------


def test_the_report_and_its_outbox_message_commit_together(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection, created_ids: list[str]
) -> None:
    """One outbox row per report, unsent, for build_report, written by the same transaction.

    Both rows are read on one connection to the primary (one database), and their `xmin`
    (the id of the transaction that inserted them) is the same: the request committed the
    report and its message atomically, and did not publish anything itself.
    """
    body = accepted(post(web, {"include_tips": True}), created_ids)
    messages = primary.execute(
        "SELECT actor, payload, sent_at, attempts, last_error, xmin::text FROM outbox "
        "WHERE payload->>'report_id' = %s",
        (body["id"],),
    ).fetchall()
    assert len(messages) == 1, messages
    actor, payload, sent_at, attempts, last_error, message_xmin = messages[0]
    assert actor == "build_report"
    assert payload == {"report_id": body["id"]}
    assert sent_at is None
    assert (attempts, last_error) == (0, "")
    report = primary.execute(
        "SELECT status, params, xmin::text FROM reports WHERE id = %s", (body["id"],)
    ).fetchone()
    assert report is not None
    assert report[:2] == ("queued", {"include_tips": True})
    assert report[2] == message_xmin


def test_each_report_gets_its_own_message(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection, created_ids: list[str]
) -> None:
    """Three accepted reports: three reports and three unsent messages more, one each."""
    reports_before, outbox_before = row_counts(primary)
    ids = [accepted(post(web, {}), created_ids)["id"] for _ in range(3)]
    assert len(set(ids)) == 3
    assert row_counts(primary) == (reports_before + 3, outbox_before + 3)
    payload_ids = primary.execute(
        "SELECT payload->>'report_id' FROM outbox WHERE sent_at IS NULL "
        "AND payload->>'report_id' = ANY(%s)",
        (ids,),
    ).fetchall()
    assert sorted(row[0] for row in payload_ids) == sorted(ids)


# --- bad input ----------------------------------------------------------------------------


class Bad(NamedTuple):
    """A refused POST: what is sent, and the status and field the answer must name."""

    content_type: str | None
    raw: bytes | list[bytes]  # a list is sent chunked, without Content-Length
    status: int
    field: str


_J = "application/json"
_OVERSIZED = b'{"include_tips": true' + b" " * MAX_ORDER_BODY + b"}"

BAD_INPUT = {
    "text-plain": Bad("text/plain", b"{}", 400, "Content-Type"),
    "form": Bad("application/x-www-form-urlencoded", b"include_tips=true", 400, "Content-Type"),
    "no-content-type": Bad(None, b'{"include_tips": true}', 400, "Content-Type"),
    "malformed-json": Bad(_J, b'{"include_tips": true', 400, "body"),
    "invalid-utf8": Bad(_J, b'{"item_prefix": "tea\xff"}', 400, "body"),
    "array-body": Bad(_J, b'[{"include_tips": true}]', 422, "body"),
    "null-body": Bad(_J, b"null", 422, "body"),
    "unknown-field": Bad(_J, b'{"include_tips": true, "format": "csv"}', 422, "format"),
    "item-prefix-number": Bad(_J, b'{"item_prefix": 5}', 422, "item_prefix"),
    "item-prefix-null": Bad(_J, b'{"item_prefix": null}', 422, "item_prefix"),
    "item-prefix-101": Bad(_J, json.dumps({"item_prefix": "x" * 101}).encode(), 422,
                           "item_prefix"),
    "item-prefix-nul": Bad(_J, b'{"item_prefix": "tea\\u0000"}', 422, "item_prefix"),
    "item-prefix-surrogate": Bad(_J, b'{"item_prefix": "tea \\ud800"}', 400, "body"),
    "since-garbage": Bad(_J, b'{"since": "last tuesday"}', 422, "since"),
    "since-int": Bad(_J, b'{"since": 1714564800}', 422, "since"),
    "since-too-long": Bad(_J, json.dumps({"since": "2024-05-01" + " " * 40}).encode(), 422,
                          "since"),
    "since-fractional-offset": Bad(_J, b'{"since": "2024-01-01T00:00:00+00:00:30.5"}', 422,
                                   "since"),
    "include-tips-1": Bad(_J, b'{"include_tips": 1}', 422, "include_tips"),
    "include-tips-string": Bad(_J, b'{"include_tips": "true"}', 422, "include_tips"),
    "include-tips-null": Bad(_J, b'{"include_tips": null}', 422, "include_tips"),
    "body-over-16k": Bad(_J, _OVERSIZED, 413, "body"),
    "chunked-body-over-16k": Bad(_J, [_OVERSIZED[:100], _OVERSIZED[100:]], 413, "body"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUT.values(), ids=BAD_INPUT.keys())
def test_bad_input_is_refused_naming_the_field_and_writes_nothing(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection, case: Bad
) -> None:
    """Each unreadable or invalid request is a 400/422 naming its field, never a 5xx, and
    neither a report nor an outbox message is written."""
    before = row_counts(primary)
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    content = iter(case.raw) if isinstance(case.raw, list) else case.raw
    response = web.client.post("/api/reports", content=content, headers=headers)
    assert response.status_code < 500, response.text
    assert_error(response, case.status, case.field)
    assert row_counts(primary) == before


# --- reads and methods --------------------------------------------------------------------


def test_an_unknown_report_is_a_json_404(healthy_stack: Stack, web: WebServer) -> None:
    """A well-formed id no report has: 404 in the error shape, saying which server looked."""
    response = web.client.get(f"/api/reports/{uuid.uuid4()}")
    error = assert_error(response, 404, None)
    assert error["code"] == "not_found"
    assert SERVED_BY.fullmatch(response.headers["X-Database-Server"])


@pytest.mark.parametrize(
    "path",
    ["/api/reports/not-a-uuid", "/api/reports/123", "/api/reports/" + "0" * 32 + "/x",
     "/api/reports/5F0B8A52-32B4-4A8A-9D43-3D3C1D7F0E11'"],
    ids=["word", "number", "extra-segment", "quote"],
)  # fmt: skip
def test_a_path_that_is_not_a_report_id_is_404(
    healthy_stack: Stack, web: WebServer, path: str
) -> None:
    """Anything but a UUID after /api/reports/ matches no route: a JSON 404, not a 500."""
    response = web.client.get(path)
    error = assert_error(response, 404, None)
    assert error["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/api/reports", "POST"),
        ("HEAD", "/api/reports", "POST"),
        ("PUT", "/api/reports", "POST"),
        ("DELETE", "/api/reports", "POST"),
        ("POST", "/api/reports/0d6f1e3a-5b7c-4e2d-9a8f-1c3b5d7e9f20", "GET, HEAD"),
        ("PUT", "/api/reports/0d6f1e3a-5b7c-4e2d-9a8f-1c3b5d7e9f20", "GET, HEAD"),
        ("DELETE", "/api/reports/0d6f1e3a-5b7c-4e2d-9a8f-1c3b5d7e9f20", "GET, HEAD"),
    ],
)
def test_other_methods_are_405_with_allow(
    healthy_stack: Stack, web: WebServer, method: str, path: str, allow: str
) -> None:
    """A method a route does not serve is a 405 naming the allowed ones (JSON, bar HEAD)."""
    response = web.client.request(method, path)
    assert response.status_code == 405, response.text
    assert response.headers["Allow"] == allow
    if method != "HEAD":
        assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize("token", ["garbage", "1/2/3", "123456789/0"])
def test_an_invalid_consistency_token_is_400_naming_the_header(
    healthy_stack: Stack, web: WebServer, token: str
) -> None:
    """A token that is not an LSN is refused before any database is asked."""
    response = web.client.get(
        f"/api/reports/{uuid.uuid4()}", headers={"X-Consistency-Token": token}
    )
    assert_error(response, 400, "X-Consistency-Token")


# --- readiness ----------------------------------------------------------------------------


def test_readiness_reports_the_broker_and_the_outbox_backlog(
    healthy_stack: Stack, web: WebServer, primary: psycopg.Connection, created_ids: list[str]
) -> None:
    """broker:responseTime and outbox:backlog are listed; the backlog counts unsent messages.

    Nothing publishes here, so the unsent count on the primary holds still, and readiness
    (read through the database layer, maybe from a replica) comes to report exactly it.
    """
    accepted(post(web, {}), created_ids)
    waiting = unsent(primary)
    assert waiting >= 1

    def backlog_seen() -> dict[str, Any] | None:
        response = web.get("/health/ready")
        entry = response.json()["checks"]["outbox:backlog"][0]
        return response.json() if entry.get("observedValue") == waiting else None

    report = wait_for(backlog_seen)
    assert {"broker:responseTime", "outbox:backlog"} <= set(report["checks"])
    outbox = report["checks"]["outbox:backlog"][0]
    assert outbox["observedUnit"] == "messages"
    assert outbox["componentId"] == "outbox"
    broker = report["checks"]["broker:responseTime"][0]
    assert broker["status"] == "pass"
    broker_url = httpx.URL(healthy_stack.env["BROKER_URL"])
    assert broker["componentId"] == f"{broker_url.host}:{broker_url.port or 6379}"


def test_an_old_backlog_warns_with_its_size_and_age(
    healthy_stack: Stack, primary: psycopg.Connection, tmp_path: Path, created_ids: list[str]
) -> None:
    """Messages waiting longer than OUTBOX_WARN_AGE make the outbox check warn, not fail."""
    with run_web(healthy_stack, tmp_path, OUTBOX_WARN_AGE="0.001") as server:
        wait_for(lambda: databases_pass(server))
        accepted(post(server, {}), created_ids)
        outbox = wait_for(lambda: warned(server))
        response = server.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] != "fail"
    assert re.fullmatch(r"[0-9]+ message\(s\) unpublished, the oldest for [0-9]+ s",
                        outbox["output"])  # fmt: skip
    assert outbox["observedValue"] >= 1


def warned(web: WebServer) -> dict[str, Any] | None:
    entry = ready_checks(web)["outbox"]
    return entry if entry["status"] == "warn" else None


def test_jobs_are_accepted_while_the_broker_is_down(
    healthy_stack: Stack, primary: psycopg.Connection, tmp_path: Path, created_ids: list[str]
) -> None:
    """The request never talks to the broker: with nothing listening at BROKER_URL a report
    is still accepted and its message waits in the outbox; readiness fails the broker check
    but stays 200 (degraded), so the load balancer keeps sending jobs."""
    dead_broker = f"redis://127.0.0.1:{free_port()}/1"
    with run_web(healthy_stack, tmp_path, BROKER_URL=dead_broker) as server:
        wait_for(lambda: databases_pass(server))
        body = accepted(post(server, {"include_tips": True}), created_ids)
        broker = wait_for(lambda: broker_failed(server))
        response = server.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "warn"
    assert "output" in broker
    sent_at = primary.execute(
        "SELECT sent_at FROM outbox WHERE payload->>'report_id' = %s", (body["id"],)
    ).fetchall()
    assert sent_at == [(None,)]


def broker_failed(web: WebServer) -> dict[str, Any] | None:
    entry = ready_checks(web)["broker"]
    return entry if entry["status"] == "fail" else None


# --- Idempotency-Key ------------------------------------------------------------------------


def test_a_retried_post_with_its_key_answers_the_same_report_and_queues_nothing(
    web: WebServer, primary: psycopg.Connection, created_ids: list[str]
) -> None:
    """Same key, same body: 202 both times, one report, one outbox message."""
    headers = {**JSON, "Idempotency-Key": f'"report-{uuid.uuid4()}"'}
    body = json.dumps({"item_prefix": "retried"})
    first = web.client.post("/api/reports", content=body, headers=headers)
    again = web.client.post("/api/reports", content=body, headers=headers)
    report_id = accepted(first, created_ids)["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.status_code == 202
    assert again.json()["id"] == report_id
    assert again.headers["Idempotent-Replayed"] == "true"
    messages = primary.execute(
        "SELECT count(*) FROM outbox WHERE payload->>'report_id' = %s", (report_id,)
    ).fetchone()
    assert messages == (1,)


def test_a_key_sent_with_other_parameters_is_422(web: WebServer, created_ids: list[str]) -> None:
    headers = {**JSON, "Idempotency-Key": f"report-{uuid.uuid4()}"}
    accepted(web.client.post("/api/reports", content=b'{"item_prefix": "a"}', headers=headers),
             created_ids)  # fmt: skip
    other = web.client.post("/api/reports", content=b'{"item_prefix": "b"}', headers=headers)
    assert_error(other, 422, "Idempotency-Key")
