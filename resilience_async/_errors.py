"""The exception tree of `resilience_async`: one root, data carried as attributes.

    ResilienceError
    ├── CircuitOpenError          the breaker refused the call (also aiobreaker's error)
    ├── CallTimeoutError          a guarded call ran past its timeout (also TimeoutError)
    ├── SaturatedError            our own limits were full: never the dependency's fault
    │   ├── BulkheadFullError     too many concurrent calls to one dependency
    │   └── PoolExhaustedError    no pooled connection became free in time
    ├── UpstreamError             an HTTP upstream failed (after retries)
    │   ├── UpstreamUnavailableError   could not connect, or the connection broke
    │   ├── UpstreamTimeoutError       no answer within the timeout (also TimeoutError)
    │   ├── UpstreamStatusError        answered with an error status
    │   └── UnusableResponseError      answered, but with nothing usable (its `reason`)
    │       └── ResponseTooLargeError      a body past the client's limit
    ├── DatabaseUnavailableError  a database server could not be reached, or dropped the call
    │   ├── NoPrimaryError             no writable primary (nothing was sent)
    │   └── WriteOutcomeUnknownError   a write was sent and its connection broke or timed out
    ├── FallbackUnavailableError  the call failed and neither stale data nor a fallback exists
    └── InvalidLsnError           a consistency token that is not an LSN (also ValueError)

Every error that means "try again later" has `retry_after` (seconds), which the HTTP layer
turns into a `Retry-After` header, and `public_detail`: what a caller may be told (the
dependency and its state), while `str()` keeps the driver's text and addresses for the log.
`InvalidLsnError` alone is the caller's mistake (a 400).
Foreign exceptions (httpx, redis, psycopg) are translated once, at the boundary of the
primitive that met them, with `raise ... from exc`.
"""

from __future__ import annotations

import time
from datetime import datetime

from aiobreaker import CircuitBreakerError


class ResilienceError(Exception):
    """Root of every error raised by `resilience_async`."""

    retry_after: float | None = None

    @property
    def public_detail(self) -> str:
        """What a caller may be told: the dependency and its state, never an address."""
        return "a dependency is unavailable"


class CircuitOpenError(ResilienceError, CircuitBreakerError):  # type: ignore[misc]
    """The breaker is open (or half-open with every probe slot taken): the call was not made."""

    retry_after: float

    def __init__(self, breaker: str, retry_after: float) -> None:
        self.breaker = breaker
        self.retry_after = max(0.0, retry_after)
        self._raised_at = time.time()
        # Raised thousands of times a second while open: aiobreaker's datetime fields are
        # computed only when read, and its __init__ (which stores them) is not called.
        Exception.__init__(self, breaker, self.retry_after)

    @property
    def message(self) -> str:
        return f"circuit {self.breaker!r} is open; retry after {self.retry_after:.2f} s"

    @property
    def reopen_time(self) -> datetime:
        """aiobreaker's field: when a call may be tried again (naive local time, as there)."""
        return datetime.fromtimestamp(self._raised_at + self.retry_after)  # noqa: DTZ006

    def __str__(self) -> str:
        return self.message

    @property
    def public_detail(self) -> str:
        return f"{self.breaker} is unavailable (circuit open)"


class CallTimeoutError(ResilienceError, TimeoutError):
    """A call guarded by a breaker ran past its timeout and was cancelled."""

    def __init__(self, breaker: str, timeout: float) -> None:
        self.breaker = breaker
        self.timeout = timeout
        super().__init__(f"call through {breaker!r} gave no result within {timeout:.2f} s")

    @property
    def public_detail(self) -> str:
        return f"{self.breaker} did not answer in time"


class SaturatedError(ResilienceError):
    """A local limit was reached: our saturation, so no breaker counts it against a dependency."""

    retry_after = 1.0


class BulkheadFullError(SaturatedError):
    def __init__(self, name: str, limit: int) -> None:
        self.name = name
        self.limit = limit
        super().__init__(f"bulkhead {name!r} is full ({limit} calls in flight)")

    @property
    def public_detail(self) -> str:
        return f"too many calls in flight ({self.name})"


class PoolExhaustedError(SaturatedError):
    def __init__(self, name: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        super().__init__(f"couldn't get a connection to {name!r} after {timeout:.2f} sec")

    @property
    def public_detail(self) -> str:
        return f"no connection to {self.name} became free in time"


class UpstreamError(ResilienceError):
    """An HTTP upstream failed; `upstream` names it, `attempts` says how often it was tried."""

    def __init__(self, upstream: str, detail: str, *, attempts: int = 1) -> None:
        self.upstream = upstream
        self.detail = detail
        self.attempts = attempts  # the retry loop updates it
        super().__init__(upstream, detail)

    def __str__(self) -> str:
        return f"upstream {self.upstream!r} {self.detail} (attempts: {self.attempts})"

    @property
    def public_detail(self) -> str:
        return f"the upstream {self.upstream} failed"


class UpstreamUnavailableError(UpstreamError):
    """Connection refused, reset or otherwise broken before a full answer."""


class UpstreamTimeoutError(UpstreamError, TimeoutError):
    """No full answer within the configured timeout."""

    @property
    def public_detail(self) -> str:
        return f"the upstream {self.upstream} did not answer in time"


class UpstreamStatusError(UpstreamError):
    """The upstream answered with an error status (kept in `status`)."""

    def __init__(self, upstream: str, status: int, *, attempts: int = 1) -> None:
        self.status = status
        super().__init__(upstream, f"answered {status}", attempts=attempts)


class UnusableResponseError(UpstreamError):
    """The upstream answered, but with nothing the caller can use.

    `reason` says why, in a word fit for a metric label: "too_large", "bad_encoding",
    "malformed_json", or a caller's own ("wrong_shape"). Messages never quote the body.
    """

    def __init__(self, upstream: str, reason: str, detail: str, *, attempts: int = 1) -> None:
        self.reason = reason
        super().__init__(upstream, detail, attempts=attempts)

    @property
    def public_detail(self) -> str:
        return f"the upstream {self.upstream} gave an answer that cannot be used ({self.reason})"


class ResponseTooLargeError(UnusableResponseError):
    """The body passed the client's limit (`limit` bytes), declared or as it arrived.

    `declared` is its Content-Length when that alone was past the limit (nothing of the body
    was read), else None: the body was read up to the limit, on the wire or decoded
    (`encoding` names the content-coding that inflated it).
    """

    def __init__(
        self,
        upstream: str,
        limit: int,
        *,
        declared: int | None = None,
        encoding: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.limit = limit
        self.declared = declared
        self.encoding = encoding
        super().__init__(upstream, "too_large", _too_large(limit, declared, encoding),
                         attempts=attempts)  # fmt: skip


def _too_large(limit: int, declared: int | None, encoding: str | None) -> str:
    if declared is not None:
        return f"declared a body of {declared} bytes, past the limit of {limit} bytes"
    if encoding is not None:
        return f"sent a {encoding} body that decodes past the limit of {limit} bytes"
    return f"sent a body past the limit of {limit} bytes"


class DatabaseUnavailableError(ResilienceError):
    """A database server (`server`: primary, replica-1...) could not serve the call."""

    retry_after = 1.0

    def __init__(self, server: str, detail: str) -> None:
        self.server = server
        self.detail = detail
        super().__init__(server, detail)

    def __str__(self) -> str:
        return f"database {self.server} unavailable: {self.detail}"

    @property
    def public_detail(self) -> str:
        if self.server == "servers":
            return "no database server can serve this read"
        return f"the {self.server} database is unreachable"


class NoPrimaryError(DatabaseUnavailableError):
    """No writable primary can be reached; the write was not sent."""

    def __init__(self, detail: str) -> None:
        super().__init__("primary", detail)


class WriteOutcomeUnknownError(DatabaseUnavailableError):
    """The write was sent, then its connection broke or timed out: it may have committed.

    Retrying is safe only when the write is idempotent (an `Idempotency-Key`).
    """

    def __str__(self) -> str:
        return f"write on {self.server} interrupted, outcome unknown: {self.detail}"

    @property
    def public_detail(self) -> str:
        return (
            f"the write was interrupted on the {self.server} database and may have committed; "
            "retry it with the same Idempotency-Key"
        )


class FallbackUnavailableError(ResilienceError):
    """Loading `key` failed and the cache had neither stale data nor a declared fallback."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no live, stale or fallback value for {key!r}")

    @property
    def public_detail(self) -> str:
        return f"no value for {self.key} is available"


class InvalidLsnError(ResilienceError, ValueError):
    """Text that is not an LSN in PostgreSQL's `X/Y` form (a malformed consistency token)."""

    @property
    def public_detail(self) -> str:
        return "not a consistency token returned by a write"
