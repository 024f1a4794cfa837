"""The API's OpenAPI 3.1 document, generated from the declarations that validate requests.

Request bodies are `app.schemas`' msgspec structs and its `Parameter`s; their JSON Schema
comes from msgspec, so a limit changed there changes here. The answers are declared below
as structs too: the views write them by hand (for speed), and schemathesis, run against the
live service in `make test` (tests/integration/test_contract.py), holds every answer to them.
The document is built once, and served as bytes at `GET /api/openapi.json`.
"""

from __future__ import annotations

import datetime
import uuid
from importlib import metadata
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from app import schemas
from app.schemas import Parameter

PROBLEM_JSON = "application/problem+json"
HEALTH_JSON = "application/health+json"
_REF = "#/components/schemas/{name}"


# --- the answers ------------------------------------------------------------------------------


class Order(Struct):
    id: Annotated[int, Meta(ge=1)]
    item: str
    quantity: Annotated[int, Meta(ge=schemas.MIN_QUANTITY, le=schemas.MAX_QUANTITY)]
    created_at: datetime.datetime


class CreatedOrder(Order):
    consistency_token: Annotated[str, Meta(description=schemas.CONSISTENCY_TOKEN.description)]


class OrderPage(Struct):
    orders: list[Order]
    next_before: Annotated[int | None, Meta(description="`before` for the next page; null "
                                            "on the last one.")]  # fmt: skip


class AcceptedReport(Struct):
    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed"]
    consistency_token: str


class Report(Struct):
    id: uuid.UUID
    status: Literal["queued", "running", "done", "failed"]
    params: dict[str, Any]
    attempts: Annotated[int, Meta(ge=0)]
    created_at: datetime.datetime
    updated_at: datetime.datetime
    result: Annotated[Any, Meta(description="When done: the report.")] = None
    error: Annotated[str, Meta(description="Why the last attempt failed, if one did.")] = ""


class Tip(Struct):
    id: int
    text: str


class Tips(Struct):
    tips: list[Tip]
    source: Annotated[Literal["live", "cache", "stale", "fallback"], Meta(
        description="live: from the upstream now; cache: fetched within CACHE_TTL; stale: "
        "older, served while the upstream fails; fallback: built in, nothing usable cached."
    )]  # fmt: skip
    age: Annotated[float, Meta(ge=0, description="Seconds since cached tips were fetched.")] = 0.0


class Problem(Struct):
    """RFC 9457 problem details: every error answer."""

    type: Annotated[str, Meta(description="`/problems/<code>`: identifies the problem.")]
    title: str
    status: Annotated[int, Meta(ge=400, le=599)]
    detail: Annotated[str, Meta(description="This occurrence, for people; never an address.")]
    code: Annotated[str, Meta(description="What programs switch on (stable).")]
    field: Annotated[str, Meta(description="The body field, header or parameter at fault.")] = ""


class HealthCheck(Struct):
    status: Literal["pass", "warn", "fail"]


class Health(Struct):
    """draft-inadarei-api-health-check; details only with `X-Health-Token` (or DEBUG)."""

    status: Literal["pass", "warn", "fail"]
    checks: dict[str, list[HealthCheck]] = {}


_STRUCTS = (schemas.NewOrder, schemas.ReportRequest, Order, CreatedOrder, OrderPage,
            AcceptedReport, Report, Tips, Problem, Health)  # fmt: skip


# --- the document ----------------------------------------------------------------------------


def _ref(struct: type[Struct]) -> dict[str, str]:
    return {"$ref": _REF.format(name=struct.__name__)}


def _header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


_RETRY_AFTER = {"Retry-After": _header("Seconds to wait before trying again.",
                                       {"type": "string", "pattern": "^[0-9]+$"})}  # fmt: skip
_SERVED_BY = {"X-Database-Server": _header("The server that answered: primary, replica-1...")}


def _problem(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description,
                              "content": {PROBLEM_JSON: {"schema": _ref(Problem)}}}  # fmt: skip
    if headers:
        answer["headers"] = headers
    return answer


def _json(description: str, struct: type[Struct], headers: dict[str, Any] | None = None,
          media_type: str = "application/json") -> dict[str, Any]:  # fmt: skip
    answer: dict[str, Any] = {"description": description,
                              "content": {media_type: {"schema": _ref(struct)}}}  # fmt: skip
    if headers:
        answer["headers"] = headers
    return answer


# Every API operation may meet these: a bad Host, the door's overload, a dependency down.
_COMMON = {
    "400": _problem("The request could not be read; `field` names the part at fault."),
    "503": _problem(
        "A dependency is unavailable, or the service is at its limit: try again "
        "after `Retry-After`.",
        _RETRY_AFTER,
    ),
}
_LIMITED = {
    "429": _problem(
        "Past a rate limit (the API key's, or the client address's when addresses are limited).",
        {
            **_RETRY_AFTER,
            "RateLimit-Policy": _header(
                'draft-ietf-httpapi-ratelimit-headers: `"key";q=100;w=60`.'
            ),
            "RateLimit": _header('draft-ietf-httpapi-ratelimit-headers: `"key";r=0;t=1`.'),
        },
    )
}
_COMMON = {**_COMMON, **_LIMITED}
_READ = {"404": _problem("No such resource."), **_COMMON}
_WRITE = {
    "413": _problem("The body is larger than the limit."),
    "415": _problem("A Content-Encoding other than identity, gzip or deflate."),
    "422": _problem(
        "A field's value is not acceptable (`field` names it), or the "
        "Idempotency-Key came with another body."
    ),
    **_COMMON,
}
_CREATED_HEADERS = {
    "Location": _header("The new resource."),
    "X-Consistency-Token": _header(
        schemas.CONSISTENCY_TOKEN.description, schemas.CONSISTENCY_TOKEN.schema
    ),
}


def _body(struct: type[Struct], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(struct)}}}


_KEYED = {
    "401": _problem(
        "No API key, or not one of ours: send `Authorization: Bearer <key>`.",
        {
            "WWW-Authenticate": _header(
                '`Bearer realm="api"`, with `error="invalid_token"` for a bad key.'
            )
        },
    ),
    "403": _problem("The API key was revoked (or rotated, and its grace period is over)."),
}


def _operation(operation_id: str, summary: str, responses: dict[str, Any], *,
               parameters: tuple[Parameter, ...] = (), body: dict[str, Any] | None = None,
               tags: tuple[str, ...] = ("api",),
               keyed: bool = False) -> dict[str, Any]:  # fmt: skip
    if keyed:
        responses = {**responses, **_KEYED}
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary,
                                 "tags": list(tags), "responses": responses}  # fmt: skip
    if keyed:
        operation["security"] = [{"apiKey": []}]
    if parameters:
        operation["parameters"] = [parameter.openapi() for parameter in parameters]
    if body is not None:
        operation["requestBody"] = body
    return operation


def _paths(*, reads_need_key: bool) -> dict[str, Any]:
    order_link = {"operationId": "getOrder",
                  "parameters": {"order_id": "$response.body#/id"}}  # fmt: skip
    report_link = {"operationId": "getReport",
                   "parameters": {"report_id": "$response.body#/id"}}  # fmt: skip
    created = _json("Created; a retry with the same Idempotency-Key answers it again with "
                    "`Idempotent-Replayed: true`.", CreatedOrder, _CREATED_HEADERS)  # fmt: skip
    created["links"] = {"GetCreatedOrder": order_link}
    accepted = _json("Accepted: a worker builds it; it is never lost.", AcceptedReport,
                     _CREATED_HEADERS)  # fmt: skip
    accepted["links"] = {"GetAcceptedReport": report_link}
    health = ("health",)
    return {
        "/health/live": {"get": _operation(
            "live", "200 while the process's event loop answers; checks no dependency.",
            {"200": _json("Alive.", Health, media_type=HEALTH_JSON)}, tags=health)},
        "/health/ready": {"get": _operation(
            "ready", "Whether this instance can serve: pass or warn (degraded) is 200, fail 503.",
            {"200": _json("Can serve.", Health, media_type=HEALTH_JSON),
             "503": _json("Cannot serve at all (no database, starting, draining).", Health,
                          media_type=HEALTH_JSON)}, tags=health)},
        "/api/openapi.json": {"get": _operation(
            "openapi", "This document.",
            {"200": {"description": "OpenAPI 3.1.", "content": {"application/json": {
                "schema": {"type": "object"}}}}}, tags=("meta",))},
        "/api/docs": {"get": _operation(
            "docs", "Swagger UI over this document.",
            {"200": {"description": "The page.", "content": {"text/html": {
                "schema": {"type": "string"}}}}}, tags=("meta",))},
        "/api/docs/{name}": {"get": _operation(
            "docsFile", "A file of the page (Swagger UI's script and styles).",
            {"200": {"description": "The file.", "content": {
                "text/javascript": {"schema": {"type": "string"}},
                "text/css": {"schema": {"type": "string"}}}},
             "404": _problem("No such file.")},
            parameters=(Parameter("name", "path", {"type": "string"}, "The file's name.",
                                  required=True),), tags=("meta",))},
        "/metrics": {"get": _operation(
            "metrics", "Prometheus text exposition, summed over every worker process.",
            {"200": {"description": "Metrics.", "content": {"text/plain": {
                "schema": {"type": "string"}}}}}, tags=("meta",))},
        "/api/tips": {"get": _operation(
            "getTips", "The upstream's tips, through breaker and cache: never an error.",
            {"200": _json("Tips, and where they came from.", Tips), **_COMMON},
            keyed=reads_need_key)},
        "/api/orders": {
            "get": _operation(
                "listOrders", "Orders, newest first, a page at a time.",
                {"200": _json("A page.", OrderPage, _SERVED_BY), **_COMMON},
                parameters=(schemas.LIMIT, schemas.BEFORE, schemas.CONSISTENCY_TOKEN),
                keyed=reads_need_key),
            "post": _operation(
                "createOrder", "Create an order on the primary.",
                {"201": created, **_WRITE}, parameters=(schemas.IDEMPOTENCY_KEY,),
                body=_body(schemas.NewOrder), keyed=True),
        },
        "/api/orders/{order_id}": {"get": _operation(
            "getOrder", "One order, from a replica that has the caller's writes.",
            {"200": _json("The order.", Order, _SERVED_BY), **_READ},
            parameters=(schemas.ORDER_ID, schemas.CONSISTENCY_TOKEN), keyed=reads_need_key)},
        "/api/reports": {"post": _operation(
            "createReport", "Accept a report job: it commits with its outbox message.",
            {"202": accepted, **_WRITE}, parameters=(schemas.IDEMPOTENCY_KEY,),
            body=_body(schemas.ReportRequest, required=False), keyed=True)},
        "/api/reports/{report_id}": {"get": _operation(
            "getReport", "A report: queued, running, done (with its result) or failed.",
            {"200": _json("The report.", Report, _SERVED_BY), **_READ},
            parameters=(schemas.REPORT_ID, schemas.CONSISTENCY_TOKEN), keyed=reads_need_key)},
    }  # fmt: skip


def document(*, reads_need_key: bool = False) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API (reads carry a key too when `reads_need_key`)."""
    _, components = msgspec.json.schema_components(_STRUCTS, ref_template=_REF)
    try:
        version = metadata.version("resilient-django")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        version = "0"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "resilient-django",
            "version": version,
            "summary": "An async Django service that stays up when its dependencies fail.",
            "description": "Errors are RFC 9457 problem details (`application/problem+json`); "
            "`code` is stable, `field` names the part of the request at fault.",
        },
        "paths": _paths(reads_need_key=reads_need_key),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "rdk_<prefix>_<secret>",
                    "description": "An API key from `manage.py apikeys create <name>`.",
                }
            },
        },
    }


def document_bytes(*, reads_need_key: bool = False) -> bytes:
    return msgspec.json.encode(document(reads_need_key=reads_need_key))
