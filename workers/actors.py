"""The actors: what each job is called, its queue, and which failures it retries.

Nothing here builds a broker: `declare` puts the actors on the broker a root gives it (the
worker's, or a test's `StubBroker`), and `message` builds a message for an actor by name
(what the relay publishes, with no actor of its own).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import dramatiq
import psycopg
from dramatiq.middleware import TimeLimitExceeded

from resilience_async import CircuitOpenError, InvalidLsnError, ResilienceError

BUILD_REPORT = "build_report"
# Each actor's queue, for whoever sends to it by name.
QUEUES = {BUILD_REPORT: "reports"}


def is_transient(exc: BaseException) -> bool:
    """Whether a later attempt may get past it: a dependency failing, or a job cut by the
    time limit; never bad input or a bug."""
    if isinstance(exc, InvalidLsnError):
        return False
    transient = (ResilienceError, dramatiq.Retry, psycopg.OperationalError, TimeLimitExceeded)
    return isinstance(exc, transient)


def retry_rule(max_retries: int) -> Callable[[int, BaseException], bool]:
    """Dramatiq's `retry_when`: transient failures, while fewer than `max_retries` were made."""

    def retry_when(retries: int, exc: BaseException) -> bool:
        return retries < max_retries and is_transient(exc)

    return retry_when


def waiting_for_breakers(job: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """An open breaker says when to try again: retry then (`dramatiq.Retry`), not sooner."""

    async def run(**kwargs: Any) -> None:
        try:
            await job(**kwargs)
        except CircuitOpenError as exc:
            delay = max(1, math.ceil(exc.retry_after * 1000))
            raise dramatiq.Retry(str(exc), delay=delay) from exc

    run.__name__ = job.__name__
    return run


@dataclass(frozen=True, slots=True)
class Actors:
    """The project's actors, as declared on one broker."""

    build_report: dramatiq.Actor[..., Any]


def declare(
    broker: dramatiq.Broker, *, build_report: Callable[..., Awaitable[None]], max_retries: int
) -> Actors:
    """Declare the actors on `broker`, each running the given coroutine function."""
    return Actors(
        build_report=dramatiq.actor(
            waiting_for_breakers(build_report),
            actor_name=BUILD_REPORT,
            queue_name=QUEUES[BUILD_REPORT],
            broker=broker,
            retry_when=retry_rule(max_retries),
        )
    )


def message(actor: str, kwargs: dict[str, Any], **options: Any) -> dramatiq.Message[Any]:
    """A message for the actor named `actor`, on its queue (KeyError for an unknown actor)."""
    return dramatiq.Message(
        queue_name=QUEUES[actor], actor_name=actor, args=(), kwargs=kwargs, options=options
    )
