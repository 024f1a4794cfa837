"""Headers set straight into Django's store: checked once by Django, then only copied."""

from __future__ import annotations

import pytest
from django.http import BadHeaderError, HttpResponse

from resilience_async.django._headers import add_missing, prepare, put


def test_prepared_headers_are_added_unless_the_view_set_them() -> None:
    prepared = prepare({"X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"})
    response = HttpResponse()
    response["x-frame-options"] = "SAMEORIGIN"  # the view's own choice stays
    add_missing(response.headers, prepared)
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["referrer-policy"] == "same-origin"
    assert ("Referrer-Policy", "same-origin") in response.items()


def test_a_bad_value_is_refused_once_when_prepared() -> None:
    with pytest.raises(BadHeaderError):
        prepare({"X-Evil": "a\nb"})


def test_put_sets_or_replaces_a_header() -> None:
    response = HttpResponse()
    put(response.headers, "X-Request-ID", "abc")
    put(response.headers, "X-Request-ID", "def")
    assert response["x-request-id"] == "def"
    assert [k for k, _ in response.items()].count("X-Request-ID") == 1
