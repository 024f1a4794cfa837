"""Load shedding at the door: past the in-flight limit, a 503 before Django sees the request.

A refusal must cost far less than a request served, or shedding feeds the overload it is
meant to end: a client refused at once asks again at once, and every refusal that builds a
request, runs the middleware and logs an error takes the time of the requests admitted. So
the refusal is sent here, as ready-made bytes (the service's problem details, its security
headers, `Retry-After`), with the request's id echoed or made up, no request object and no
log line per refusal: a warning at most once per `LOG_INTERVAL` says how many there were,
and `bulkhead_rejections_total{bulkhead="requests"}` counts each one.

A request past the limit may first wait `wait` seconds for a place, in order (at most
`limit` of them wait; more are refused at once): a burst just over the limit is served a
moment later instead of refused, and a client refused has waited that long, so one that
asks again at once (ignoring `Retry-After`) cannot spin the process on refusals. Waiting,
a request holds its connection and scope, not a Django request.

The limit is fixed (`Admission(limit)`) or adaptive (`Admission.adaptive(limit)`): an
`AdaptiveLimit` that follows the requests' measured round trips, so the process admits as
many as it serves without queueing them inside; its waiters are admitted newest first, so
those served under a long overload have barely waited and the oldest are refused.

Health endpoints are never refused: a probe must see the process, busy or not.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from resilience_async._adaptive import AdaptiveLimit, Gradient2
from resilience_async._limits import Bulkhead
from resilience_async._logs import Throttle
from resilience_async._problem import MEDIA_TYPE as PROBLEM_JSON
from resilience_async._problem import problem_bytes

# Named as it was before the module turned private: log configurations keep working.
logger = logging.getLogger("resilience_async.django.admission")
Send = Callable[[dict[str, Any]], Awaitable[None]]

EXEMPT_PREFIX = "/health/"
LOG_INTERVAL = 10.0  # seconds between two warnings about refusals
RETRY_AFTER = 1  # seconds: the refused client's next try


class Admission:
    """At most `limit` requests in flight (health endpoints not counted).

    Args:
        limit: requests in flight beyond which new ones wait, then are refused; or an
            `AdaptiveLimit` (its own wait and queue), as `Admission.adaptive` builds.
        wait: seconds a request past a fixed limit may wait for a place (0: refused at once).
        headers: added to every refusal (the service's security headers).
        request_id_header: echoed from the request when valid (`valid_id`), else made up.
    """

    requests: Bulkhead | AdaptiveLimit
    clock: Callable[[], float]
    # Gives a place back; its argument is `clock()` once admitted (the adaptive limit's
    # sample). Bound once here: the request path calls it without a branch on the kind.
    leave: Callable[[float], None]

    def __init__(self, limit: int | AdaptiveLimit, *, wait: float = 0.0,
                 headers: Mapping[str, str], request_id_header: str = "X-Request-ID",
                 valid_id: Callable[[str], object] = bool) -> None:  # fmt: skip
        if isinstance(limit, AdaptiveLimit):
            self.requests = limit
            self.clock = limit.clock
            self.leave = limit.leave
            # The number moves: the refusal, ready-made, names none.
            detail = "the service has as many requests in flight as it serves without delay"
        else:
            self.requests = bulkhead = Bulkhead("requests", max_concurrent=limit,
                                                max_queue=limit, queue_timeout=wait)  # fmt: skip
            self.clock = time.perf_counter
            self.leave = lambda _started: bulkhead.leave()
            detail = f"the service is at its limit of {limit} requests in flight"
        body = problem_bytes(503, "overloaded", detail)
        fixed = {"Content-Type": PROBLEM_JSON, "Content-Length": str(len(body)),
                 "Retry-After": str(RETRY_AFTER), **headers}  # fmt: skip
        self._headers = [(name.lower().encode(), value.encode("latin-1"))
                         for name, value in fixed.items()]  # fmt: skip
        self._body = body
        self._id_name = request_id_header.lower().encode()
        self._valid_id = valid_id
        self._refusals = Throttle(LOG_INTERVAL)

    @classmethod
    def adaptive(cls, max_limit: int, *, initial: int, minimum: int, wait: float = 0.0,
                 tolerance: float = 1.5, **options: Any) -> Admission:  # fmt: skip
        """An adaptive limit between `minimum` and `max_limit`, starting at `initial`;
        up to `max_limit` requests past it may wait `wait` s (newest admitted first)."""
        gradient = Gradient2(initial_limit=initial, min_limit=minimum, max_limit=max_limit,
                             tolerance=tolerance)  # fmt: skip
        limit = AdaptiveLimit("requests", gradient=gradient, max_queue=max_limit,
                              queue_timeout=wait)  # fmt: skip
        return cls(limit, **options)

    @staticmethod
    def exempt(scope: dict[str, Any]) -> bool:
        return str(scope["path"]).startswith(EXEMPT_PREFIX)

    def try_enter(self) -> bool:
        """Admit one request at once (pair with `leave()`), or False: then `enter()`."""
        return self.requests.try_enter()

    async def enter(self) -> bool:
        """Admit one request, after waiting for a place if need be; False: refuse it."""
        return await self.requests.enter()

    async def refuse(self, scope: dict[str, Any], send: Send) -> None:
        """Send the ready-made 503."""
        headers = [*self._headers, (self._id_name, self._request_id(scope).encode())]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})
        self._note_refusal()

    def _request_id(self, scope: dict[str, Any]) -> str:
        for name, value in scope["headers"]:
            if name == self._id_name:
                given: str = value.decode("latin-1")
                if self._valid_id(given):
                    return given
                break
        return f"{random.getrandbits(64):016x}"

    def _note_refusal(self) -> None:
        refused = self._refusals.count()
        if not refused:
            return
        logger.warning(
            "overloaded: %d requests refused (503) since the last warning, %d in flight",
            refused, self.requests.in_flight, extra={"refused": refused},
        )  # fmt: skip
