"""The OpenAPI document: one path per route, and the request limits the parsers enforce."""

from __future__ import annotations

import re

from django.urls import get_resolver

from app import openapi, schemas


def test_every_route_is_in_the_document_and_nothing_else() -> None:
    """Each URL pattern of project/urls.py is a path of the document, `<int:x>` as `{x}`."""
    routes = {"/" + re.sub(r"<\w+:(\w+)>", r"{\1}", str(pattern.pattern))
              for pattern in get_resolver("project.urls").url_patterns}  # fmt: skip
    assert set(openapi.document()["paths"]) == routes


def test_the_bodies_carry_the_limits_their_parsers_enforce() -> None:
    """Generated from the structs that validate: a limit changed there changes here."""
    components = openapi.document()["components"]["schemas"]
    order = components["NewOrder"]
    assert order["additionalProperties"] is False
    assert order["required"] == ["item", "quantity"]
    item, quantity = order["properties"]["item"], order["properties"]["quantity"]
    assert (item["minLength"], item["maxLength"]) == (1, schemas.MAX_ITEM_LENGTH)
    assert item["pattern"] == schemas.NON_BLANK_TEXT
    assert (quantity["minimum"], quantity["maximum"]) == (schemas.MIN_QUANTITY,
                                                          schemas.MAX_QUANTITY)  # fmt: skip
    report = components["ReportRequest"]
    assert report["additionalProperties"] is False
    assert set(report["properties"]) == {"item_prefix", "since", "include_tips"}
    assert report.get("required", []) == []


def test_headers_and_errors_are_described() -> None:
    """Idempotency-Key and X-Consistency-Token where they apply; every error as a problem."""
    paths = openapi.document()["paths"]
    create = paths["/api/orders"]["post"]
    assert [p["name"] for p in create["parameters"]] == ["Idempotency-Key"]
    assert set(create["responses"]) >= {"201", "400", "413", "415", "422", "503"}
    assert create["responses"]["201"]["links"]["GetCreatedOrder"]["operationId"] == "getOrder"
    read = paths["/api/orders/{order_id}"]["get"]
    assert "X-Consistency-Token" in [p["name"] for p in read["parameters"]]
    for path in paths.values():
        for operation in path.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400 and path is not paths["/health/ready"]:
                    assert list(answer["content"]) == ["application/problem+json"], status
