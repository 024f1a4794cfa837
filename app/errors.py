"""The API's own errors: one base, each carrying its HTTP answer; `app.views` maps them once.

    ApiError                    status, code, message, field, headers
    ├── InvalidInput            the request could not be read (400) or a field is wrong (422)
    ├── IdempotencyKeyReused    the key came with another request before (422)
    ├── NotFound                no such resource (404)
    ├── app.keys.Unauthorized   no API key, or not one of ours (401)
    └── app.keys.KeyRevoked     a revoked API key (403)

Dependency failures are not here: they are `resilience_async.ResilienceError`s (503).
"""

from __future__ import annotations

from collections.abc import Mapping


class ApiError(Exception):
    """A request the API refuses, with the answer to give (field: what it is about, if any)."""

    status = 400
    code = "bad_request"
    headers: Mapping[str, str] = {}  # added to the answer (WWW-Authenticate...)

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(message if field is None else f"{field}: {message}")


class InvalidInput(ApiError):
    """A body, header or parameter that cannot be read (400) or a value not accepted (422)."""

    def __init__(self, status: int, code: str, message: str, field: str) -> None:
        self.status = status
        self.code = code
        super().__init__(message, field=field)


class IdempotencyKeyReused(ApiError):
    """The key came with a different request before, or names what no longer exists."""

    status = 422
    code = "idempotency_key_reused"

    def __init__(self, key: str, reason: str = "was used with a different request") -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} {reason}", field="Idempotency-Key")


class NotFound(ApiError):
    """No resource by that id (`what` names it: "order 7")."""

    status = 404
    code = "not_found"

    def __init__(self, what: str) -> None:
        super().__init__(f"no {what}")
