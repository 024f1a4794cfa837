"""The async API: thin views that parse, call a service, and render."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from app import orders as orders_service
from app import reports as reports_service
from app import schemas, services
from app.idempotency import IdempotencyKeyReused
from app.schemas import InvalidInput
from resilience_async.db import ReadResult
from resilience_async.django.errors import answers_resilience_errors
from resilience_async.django.responses import JSON, json_error, json_response, method_not_allowed

# Which database server answered a read: primary, replica-1...
SERVED_BY = "X-Database-Server"


class _EncodedOnce:
    """The JSON of the last list served, kept while the same list object is served again.

    Cached, stale and fallback answers return the same list object request after request;
    encoding it measured as the largest single cost of the view (more than the cache and the
    breaker together), so it is encoded once per object.
    """

    def __init__(self) -> None:
        self._value: object = None
        self._encoded = b""

    def __call__(self, value: Any) -> bytes:
        if value is not self._value:
            self._encoded = json.dumps(value, separators=(",", ":")).encode()
            self._value = value
        return self._encoded


_encode_tips = _EncodedOnce()


@answers_resilience_errors
async def tips(request: HttpRequest) -> HttpResponse:
    """Tips from the upstream; `source` says whether they are live, cached, stale or a fallback."""
    rejected = method_not_allowed(request, "GET", "HEAD")
    if rejected is not None:
        return rejected
    result = await services.tips()
    body = b'{"tips":%s,"source":"%s"' % (_encode_tips(result.value), result.source.encode())
    headers = {}
    if result.source in ("cache", "stale"):
        body += b',"age":%.3f' % result.age
        headers["Age"] = str(int(result.age))  # RFC 9111: seconds since it was fetched
    return HttpResponse(body + b"}", content_type=JSON, headers=headers)


def _consistency_token(request: HttpRequest) -> str | None:
    # META, not request.headers: that builds a mapping of every header on first use.
    return schemas.parse_consistency_token(request.META.get("HTTP_X_CONSISTENCY_TOKEN"))


def _invalid(exc: InvalidInput) -> HttpResponse:
    return json_error(exc.status, exc.code, exc.message, field=exc.field)


@answers_resilience_errors
async def orders(request: HttpRequest) -> HttpResponse:
    """`POST`: create an order (idempotent with a key). `GET`: newest first, keyset pages."""
    rejected = method_not_allowed(request, "GET", "HEAD", "POST")
    if rejected is not None:
        return rejected
    try:
        if request.method == "POST":
            return await _create_order(request)
        limit, before = schemas.parse_page(request.GET)
        token = _consistency_token(request)
    except InvalidInput as exc:
        return _invalid(exc)
    read = await orders_service.page(limit, before, token=token)
    found = read.value
    body: dict[str, Any] = {"orders": [order.to_json() for order in found]}
    body["next_before"] = found[-1].id if len(found) == limit else None
    return json_response(body, headers={SERVED_BY: read.server})


@answers_resilience_errors
async def order(request: HttpRequest, order_id: int) -> HttpResponse:
    """One order, from a replica that has the caller's writes (`X-Consistency-Token`)."""
    if order_id > schemas.MAX_ID:
        return json_error(404, "not_found", f"no order {order_id}")
    return await _one(request, f"order {order_id}",
                      lambda token: orders_service.get(order_id, token=token))  # fmt: skip


async def _one(
    request: HttpRequest, what: str, load: Callable[[str | None], Awaitable[ReadResult[Any]]]
) -> HttpResponse:
    """GET one resource: `load(token)` reads it where the caller's token allows; 404 if absent."""
    rejected = method_not_allowed(request, "GET", "HEAD")
    if rejected is not None:
        return rejected
    try:
        token = _consistency_token(request)
    except InvalidInput as exc:
        return _invalid(exc)
    read = await load(token)
    served = {SERVED_BY: read.server}
    if read.value is None:
        return json_error(404, "not_found", f"no {what}", headers=served)
    return json_response(read.value.to_json(), headers=served)


def _body(request: HttpRequest) -> bytes:
    """The request body, refused before it is read when it declares itself too large."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > schemas.MAX_ORDER_BODY:
        raise schemas.body_too_large()
    try:
        return request.body
    except RequestDataTooBig:
        raise schemas.body_too_large() from None


async def _create_order(request: HttpRequest) -> HttpResponse:
    new = schemas.parse_new_order(request.content_type or "", _body(request))
    key = schemas.parse_idempotency_key(request.META.get("HTTP_IDEMPOTENCY_KEY"))
    try:
        written = await orders_service.create(new, idempotency_key=key)
    except IdempotencyKeyReused as exc:
        return json_error(422, "idempotency_key_reused", str(exc), field="Idempotency-Key")
    created = written.value
    headers = {
        "X-Consistency-Token": written.token,
        "Location": f"/api/orders/{created.value.id}",
    }
    if created.replayed:
        headers["Idempotent-Replayed"] = "true"
    body_json = {**created.value.to_json(), "consistency_token": written.token}
    return json_response(body_json, status=201, headers=headers)


@answers_resilience_errors
async def reports(request: HttpRequest) -> HttpResponse:
    """`POST`: accept a report job (202); it is built later by a worker, never lost. With
    an `Idempotency-Key`, a retried request answers the same report and queues nothing."""
    rejected = method_not_allowed(request, "POST")
    if rejected is not None:
        return rejected
    try:
        params = schemas.parse_report_params(request.content_type or "", _body(request))
        key = schemas.parse_idempotency_key(request.META.get("HTTP_IDEMPOTENCY_KEY"))
    except InvalidInput as exc:
        return _invalid(exc)
    try:
        written = await reports_service.create(params, idempotency_key=key)
    except IdempotencyKeyReused as exc:
        return json_error(422, "idempotency_key_reused", str(exc), field="Idempotency-Key")
    report = written.value.value
    headers = {"X-Consistency-Token": written.token, "Location": f"/api/reports/{report.id}"}
    if written.value.replayed:
        headers["Idempotent-Replayed"] = "true"
    body = {"id": str(report.id), "status": report.status, "consistency_token": written.token}
    return json_response(body, status=202, headers=headers)


@answers_resilience_errors
async def report(request: HttpRequest, report_id: uuid.UUID) -> HttpResponse:
    """queued, running, done (with the result) or failed (with the reason)."""
    return await _one(request, f"report {report_id}",
                      lambda token: reports_service.get(report_id, token=token))  # fmt: skip
