"""The async API: thin views that parse, call a service, and render.

The services come from the composition root (`project/resources.py`), which builds one
`Api` per process; `project/urls.py` routes to its methods. Every view answers its errors
through one mapping (`answers_errors`): the API's own (`app.errors.ApiError`) as 4xx, the
library's (`resilience_async.ResilienceError`) as 503 with `Retry-After`.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, HttpResponseBase

from app import openapi, schemas
from app.errors import ApiError, NotFound
from app.keys import ApiKeys, Caller
from app.limits import CallerLimits
from app.orders import OrderService
from app.reports import ReportService
from app.tips import TipsService
from resilience_async import ReadResult, ResilienceError, WriteResult
from resilience_async.django import (
    JSON,
    answered,
    json_response,
    method_not_allowed,
    problem_response,
)

# Which database server answered a read: primary, replica-1...
SERVED_BY = "X-Database-Server"
V = TypeVar("V", bound=Callable[..., Awaitable[HttpResponseBase]])


def answers_errors(view: V) -> V:
    """The API's one error mapping: `ApiError` to its 4xx, `ResilienceError` to a 503."""

    @functools.wraps(view)
    async def answering(*args: Any, **kwargs: Any) -> HttpResponseBase:
        try:
            return await view(*args, **kwargs)
        except ApiError as exc:
            return problem_response(exc.status, exc.code, exc.message, field=exc.field,
                                    headers=exc.headers)  # fmt: skip
        except ResilienceError as exc:
            return answered(exc)

    return answering  # type: ignore[return-value]


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


class Api:
    """The API's views over the services one process built.

    Args:
        tips: the upstream's tips, through breaker and cache.
        orders: orders on the primary and the replicas.
        reports: report jobs, accepted through the outbox.
        keys: the API keys a write must carry (`Authorization: Bearer <key>`).
        limits: the rate limits per key and per client address.
        reads_need_key: reads must carry one too (by default they are open).
    """

    def __init__(self, *, tips: TipsService, orders: OrderService, reports: ReportService,
                 keys: ApiKeys, limits: CallerLimits,
                 reads_need_key: bool = False) -> None:  # fmt: skip
        self._tips = tips
        self._orders = orders
        self._reports = reports
        self._keys = keys
        self._limits = limits
        self._reads_need_key = reads_need_key
        self._encode_tips = _EncodedOnce()
        self._openapi = openapi.document_bytes(reads_need_key=reads_need_key)

    async def openapi(self, request: HttpRequest) -> HttpResponse:
        """The OpenAPI 3.1 document of this API (built once, at start-up)."""
        rejected = method_not_allowed(request, "GET", "HEAD")
        if rejected is not None:
            return rejected
        return HttpResponse(self._openapi, content_type=JSON)

    @answers_errors
    async def tips(self, request: HttpRequest) -> HttpResponse:
        """Tips from the upstream; `source` says whether they are live, cached, stale or a
        fallback."""
        rejected = method_not_allowed(request, "GET", "HEAD")
        if rejected is not None:
            return rejected
        await self._admit_read(request)
        result = await self._tips.get()
        body = b'{"tips":%s,"source":"%s"' % (
            self._encode_tips(result.value),
            result.source.encode(),
        )
        headers = {}
        if result.source in ("cache", "stale"):
            body += b',"age":%.3f' % result.age
            headers["Age"] = str(int(result.age))  # RFC 9111: seconds since it was fetched
        return HttpResponse(body + b"}", content_type=JSON, headers=headers)

    @answers_errors
    async def orders(self, request: HttpRequest) -> HttpResponseBase:
        """`POST`: create an order (idempotent with a key). `GET`: newest first, keyset pages."""
        rejected = method_not_allowed(request, "GET", "HEAD", "POST")
        if rejected is not None:
            return rejected
        if request.method == "POST":
            return await self._create_order(request)
        await self._admit_read(request)
        limit, before = schemas.parse_page(request.GET)
        read = await self._orders.page(limit, before, token=_consistency_token(request))
        found = read.value
        body: dict[str, Any] = {"orders": [order.to_json() for order in found]}
        body["next_before"] = found[-1].id if len(found) == limit else None
        return json_response(body, headers={SERVED_BY: read.server})

    @answers_errors
    async def order(self, request: HttpRequest, order_id: int) -> HttpResponseBase:
        """One order, from a replica that has the caller's writes (`X-Consistency-Token`)."""
        await self._admit_read(request)
        if order_id > schemas.MAX_ID:
            raise NotFound(f"order {order_id}")
        return await _one(request, f"order {order_id}",
                          lambda token: self._orders.get(order_id, token=token))  # fmt: skip

    @answers_errors
    async def reports(self, request: HttpRequest) -> HttpResponseBase:
        """`POST`: accept a report job (202); it is built later by a worker, never lost. With
        an `Idempotency-Key`, a retried request answers the same report and queues nothing."""
        rejected = method_not_allowed(request, "POST")
        if rejected is not None:
            return rejected
        await self._admit_write(request)
        params = schemas.parse_report_params(request.content_type or "", _body(request))
        key = schemas.parse_idempotency_key(request.META.get("HTTP_IDEMPOTENCY_KEY"))
        written = await self._reports.create(params, idempotency_key=key)
        report = written.value.value
        body = {"id": str(report.id), "status": report.status}
        return _created(202, body, written, f"/api/reports/{report.id}")

    @answers_errors
    async def report(self, request: HttpRequest, report_id: uuid.UUID) -> HttpResponseBase:
        """queued, running, done (with the result) or failed (with the reason)."""
        await self._admit_read(request)
        return await _one(request, f"report {report_id}",
                          lambda token: self._reports.get(report_id, token=token))  # fmt: skip

    async def _admit_write(self, request: HttpRequest) -> Caller:
        """The caller, by its API key (401/403 without a valid one), within its limits (429
        past one)."""
        await self._limits.check_address(request.META.get("REMOTE_ADDR") or "unknown")
        return await self._keyed(request)

    async def _admit_read(self, request: HttpRequest) -> None:
        await self._limits.check_address(request.META.get("REMOTE_ADDR") or "unknown")
        if self._reads_need_key:
            await self._keyed(request)

    async def _keyed(self, request: HttpRequest) -> Caller:
        caller = await self._keys.authenticate(request.META.get("HTTP_AUTHORIZATION"))
        await self._limits.check_key(caller)
        return caller

    async def _create_order(self, request: HttpRequest) -> HttpResponseBase:
        await self._admit_write(request)
        new = schemas.parse_new_order(request.content_type or "", _body(request))
        key = schemas.parse_idempotency_key(request.META.get("HTTP_IDEMPOTENCY_KEY"))
        written = await self._orders.create(new, idempotency_key=key)
        order = written.value.value
        return _created(201, order.to_json(), written, f"/api/orders/{order.id}")


def _consistency_token(request: HttpRequest) -> str | None:
    # META, not request.headers: that builds a mapping of every header on first use.
    return schemas.parse_consistency_token(request.META.get("HTTP_X_CONSISTENCY_TOKEN"))


async def _one(
    request: HttpRequest, what: str, load: Callable[[str | None], Awaitable[ReadResult[Any]]]
) -> HttpResponseBase:
    """GET one resource: `load(token)` reads it where the caller's token allows; 404 if absent."""
    rejected = method_not_allowed(request, "GET", "HEAD")
    if rejected is not None:
        return rejected
    read = await load(_consistency_token(request))
    served = {SERVED_BY: read.server}
    if read.value is None:
        return problem_response(404, NotFound.code, f"no {what}", headers=served)
    return json_response(read.value.to_json(), headers=served)


def _created(
    status: int, body: dict[str, Any], written: WriteResult[Any], location: str
) -> HttpResponse:
    """A create's answer: the body with its consistency token, Location, and whether an
    earlier request with the same idempotency key created it."""
    headers = {"X-Consistency-Token": written.token, "Location": location}
    if written.value.replayed:
        headers["Idempotent-Replayed"] = "true"
    return json_response({**body, "consistency_token": written.token}, status=status,
                         headers=headers)  # fmt: skip


def _body(request: HttpRequest) -> bytes:
    """The request body, decoded; refused before it is read when it declares itself too
    large, and after it is decoded when it inflates past the limit."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit() or int(declared) > schemas.MAX_ORDER_BODY:
        raise schemas.body_too_large()
    try:
        raw = request.body
    except RequestDataTooBig:
        raise schemas.body_too_large() from None
    return schemas.decode_body(request.META.get("HTTP_CONTENT_ENCODING"), raw)
