"""The errors the API answers with, as Toxiproxy's `ApiError` values (api.go).

    ApiError                    {"error": message, "status": status}; 500 unless below
    ├── BadRequestBody          400 "bad request body: <json error>"
    ├── MissingField            400 "missing required field: <field>"
    ├── ProxyNotFound           404 "proxy not found"
    ├── ProxyAlreadyExists      409 "proxy already exists"
    ├── InvalidStream           400 "stream was invalid, can be either upstream or downstream"
    ├── InvalidToxicType        400 "invalid toxic type"
    ├── ToxicAlreadyExists      409 "toxic already exists"
    ├── ToxicNotFound           404 "toxic not found"
    └── ProxyStartError         500 a listen address that cannot be bound, as Go words it
        └── ProxyAlreadyStarted 500 "Proxy already started" (never answered: /reset skips it)

The messages are Toxiproxy's own, so clients that match on them keep working.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error the API answers as Toxiproxy does; `detail` is appended after ": "."""

    status: int = 500
    text: str = ""

    def __init__(self, detail: str | None = None) -> None:
        if self.text and detail:
            message = f"{self.text}: {detail}"
        else:
            message = self.text or detail or "internal error"
        super().__init__(message)
        self.message = message

    def as_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}


class BadRequestBody(ApiError):
    status, text = 400, "bad request body"


class MissingField(ApiError):
    status, text = 400, "missing required field"


class ProxyNotFound(ApiError):
    status, text = 404, "proxy not found"


class ProxyAlreadyExists(ApiError):
    status, text = 409, "proxy already exists"


class InvalidStream(ApiError):
    status, text = 400, "stream was invalid, can be either upstream or downstream"


class InvalidToxicType(ApiError):
    status, text = 400, "invalid toxic type"


class ToxicAlreadyExists(ApiError):
    status, text = 409, "toxic already exists"


class ToxicNotFound(ApiError):
    status, text = 404, "toxic not found"


class ProxyStartError(ApiError):
    """The listen address could not be bound (Toxiproxy answers these with a bare 500)."""


class ProxyAlreadyStarted(ProxyStartError):
    text = "Proxy already started"
