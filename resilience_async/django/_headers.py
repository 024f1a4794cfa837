"""Response headers set without Django's per-call checks, for values checked once.

`ResponseHeaders.__setitem__` converts and validates the name and the value on every call
(3 µs each here); the security headers and the request id are set on every response, with
values that never change or are built from a safe alphabet. `prepare()` runs Django's
checks once, `add_missing()` and `put()` then write its internal store directly, and fall
back to the public API if a future Django stores headers differently.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.http.response import ResponseHeaders

Prepared = tuple[tuple[str, tuple[str, str]], ...]


def prepare(headers: Mapping[str, str]) -> Prepared:
    """Headers validated by Django once: (lower-case name, (name, value)) pairs."""
    checked = ResponseHeaders(dict(headers))
    return tuple((name.lower(), (name, checked[name])) for name in headers)


def add_missing(headers: ResponseHeaders, prepared: Prepared) -> None:
    """Set each prepared header the response does not have yet."""
    store = getattr(headers, "_store", None)
    if type(store) is not dict:
        for _, (name, value) in prepared:
            if name not in headers:
                headers[name] = value
        return
    for lower, pair in prepared:
        if lower not in store:
            store[lower] = pair


def put(headers: ResponseHeaders, name: str, value: str) -> None:
    """Set a header whose name and value are plain ASCII without control characters (the
    caller's guarantee: no check is made here)."""
    store = getattr(headers, "_store", None)
    if type(store) is dict:
        store[name.lower()] = (name, value)
    else:
        headers[name] = value
