"""Answers an upstream gave that could not be used: counted by reason, and logged, throttled.

A 200 with a truncated body, HTML, the wrong shape or a body past the limit is served
around (stale or fallback data), so without this nothing would say why. One warning per
reason per `LOG_INTERVAL` seconds, with the count since the last: a misbehaving upstream
cannot flood the log. The body is never quoted: it is the upstream's, and may be anything.
"""

from __future__ import annotations

import logging

from resilience_async._errors import UnusableResponseError
from resilience_async._logs import Throttle

logger = logging.getLogger("resilience_async.http")

LOG_INTERVAL = 60.0  # seconds between two warnings about one upstream's answers of one reason
# The reasons the client itself finds; callers add their own (`ResilientClient.unusable`).
REASONS = ("too_large", "bad_encoding", "malformed_json")


class UnusableAnswers:
    """One upstream's unusable answers: `counts` by reason, and the throttled warnings."""

    def __init__(self, upstream: str, *, interval: float = LOG_INTERVAL) -> None:
        self.upstream = upstream
        self.counts: dict[str, int] = {}
        self._interval = interval
        self._throttles: dict[str, Throttle] = {}

    def record(self, error: UnusableResponseError) -> None:
        reason = error.reason
        self.counts[reason] = self.counts.get(reason, 0) + 1
        throttle = self._throttles.get(reason)
        if throttle is None:
            throttle = self._throttles[reason] = Throttle(self._interval)
        seen = throttle.count()
        if seen:
            logger.warning(
                "upstream %r answered unusably (%s): %s; answers so since the last warning: %d",
                self.upstream, reason, error.detail, seen,
                extra={"upstream": self.upstream, "reason": reason, "answers": seen},
            )  # fmt: skip
