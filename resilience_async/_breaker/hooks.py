"""Breaker hooks: state-change events, the hook protocols, and the logging hook.

The breaker's hooks speak the library's one vocabulary (`hooks=`, `add_hook`, `record_*`),
in two methods, either or both on one object. `record_state_change(event)` is told of every
transition with a `BreakerStateChange` (rare: it may allocate, log, even be async; a plain
function taking the event is such a hook too). `record_outcome(outcome)` is told of every
call (hot: keep it cheap). aiobreaker's `CircuitBreakerListener` objects are accepted too,
and keep their callbacks.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, runtime_checkable

from aiobreaker import CircuitBreakerListener, CircuitBreakerState

logger = logging.getLogger("resilience_async.breaker")

STATE_LABELS = {
    CircuitBreakerState.CLOSED: "closed",
    CircuitBreakerState.HALF_OPEN: "half_open",
    CircuitBreakerState.OPEN: "open",
}
_MESSAGES = {
    CircuitBreakerState.CLOSED: "circuit closed",
    CircuitBreakerState.HALF_OPEN: "circuit half-open",
    CircuitBreakerState.OPEN: "circuit opened",
}


class CallOutcome(enum.StrEnum):
    """How one call through a breaker ended (the `calls_*` keys of `CircuitBreaker.stats()`)."""

    SUCCESS = "success"
    FAILURE = "failure"
    SLOW = "slow"  # succeeded, but slower than slow_call_duration
    REJECTED = "rejected"  # refused by an open (or full half-open) breaker
    IGNORED = "ignored"  # cancelled, or an excluded exception: counts for nothing


@dataclass(frozen=True, slots=True)
class BreakerStateChange:
    """One transition of a breaker.

    Args:
        breaker: the breaker's name.
        old: the state left.
        new: the state entered.
        reason: why, for humans ("5 consecutive failures", "reset timeout elapsed").
        at: when, on the breaker's monotonic clock (seconds).
        retry_after: seconds until a probe is allowed (0 unless opened).
    """

    breaker: str
    old: CircuitBreakerState
    new: CircuitBreakerState
    reason: str
    at: float
    retry_after: float


@runtime_checkable
class BreakerHook(Protocol):
    """Told of every state change; may return an awaitable, which runs as its own task."""

    def record_state_change(self, event: BreakerStateChange, /) -> Awaitable[None] | None: ...


@runtime_checkable
class OutcomeHook(Protocol):
    """Told the outcome of every call, on the call path: must be cheap and never raise."""

    def record_outcome(self, outcome: CallOutcome, /) -> None: ...


StateChangeFunction: TypeAlias = Callable[[BreakerStateChange], Awaitable[None] | None]
# What `hooks=` and `add_hook` take; aiobreaker's listener objects keep working.
Hook: TypeAlias = BreakerHook | OutcomeHook | StateChangeFunction | CircuitBreakerListener


class LoggingHook:
    """Logs state changes as structured records: a warning when opened, info otherwise."""

    def __init__(self, log: logging.Logger = logger) -> None:
        self._log = log

    def record_state_change(self, event: BreakerStateChange) -> None:
        level = logging.WARNING if event.new is CircuitBreakerState.OPEN else logging.INFO
        extra = {
            "breaker": event.breaker,
            "state": STATE_LABELS[event.new],
            "previous_state": STATE_LABELS[event.old],
            "reason": event.reason,
            "retry_after": round(event.retry_after, 3),
        }
        self._log.log(level, _MESSAGES[event.new], extra=extra)


class HookSet:
    """A breaker's hooks sorted by what they record, and the tasks of its async ones."""

    def __init__(self, breaker: str) -> None:
        self._breaker = breaker
        self.all: list[Hook] = []
        self.outcome_hooks: tuple[Callable[[CallOutcome], None], ...] = ()
        self.legacy: tuple[Any, ...] = ()
        self._state: tuple[StateChangeFunction, ...] = ()
        self._tasks: set[asyncio.Future[None]] = set()

    def add(self, hook: Hook) -> None:
        recorded = _state_change_of(hook) is not None or isinstance(hook, OutcomeHook)
        if not (recorded or isinstance(hook, CircuitBreakerListener)):
            raise TypeError(
                "hook must have record_state_change() or record_outcome(), be callable with "
                f"a BreakerStateChange, or be an aiobreaker CircuitBreakerListener; got {hook!r}"
            )
        self.all.append(hook)
        self._sort()

    def remove(self, hook: Hook) -> None:
        self.all.remove(hook)
        self._sort()

    def _sort(self) -> None:
        self.legacy = tuple(x for x in self.all if isinstance(x, CircuitBreakerListener))
        self._state = tuple(record for x in self.all if (record := _state_change_of(x)) is not None)
        self.outcome_hooks = tuple(x.record_outcome for x in self.all if isinstance(x, OutcomeHook))

    def notify(self, event: BreakerStateChange, legacy_args: tuple[Any, Any, Any]) -> None:
        """Tell every state-change hook; a failing one is logged, never raised to the caller."""
        for record in self._state:
            try:
                result = record(event)
            except Exception:
                logger.exception("breaker hook failed", extra={"breaker": self._breaker})
            else:
                if inspect.isawaitable(result):
                    self._schedule(result)
        for legacy in self.legacy:
            self.call_legacy(legacy.state_change, *legacy_args)

    def call_legacy(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            logger.exception("breaker hook failed", extra={"breaker": self._breaker})

    def _schedule(self, awaitable: Awaitable[None]) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            logger.warning(
                "async breaker hook skipped: no running event loop",
                extra={"breaker": self._breaker},
            )
            if isinstance(awaitable, Coroutine):
                awaitable.close()  # never awaited on purpose: no RuntimeWarning
            return
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            logger.error("breaker hook failed", exc_info=error, extra={"breaker": self._breaker})

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` seconds for running async hooks, then cancel the rest."""
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
        await _cancel_all(pending)


def _state_change_of(hook: Hook) -> StateChangeFunction | None:
    """What to call with a state change: the hook's `record_state_change`, or the hook itself
    when it is a plain callable (aiobreaker's listeners are told their own way)."""
    if isinstance(hook, CircuitBreakerListener):
        return None
    if isinstance(hook, BreakerHook):
        return hook.record_state_change
    if callable(hook):
        return hook
    return None


async def _cancel_all(tasks: Iterable[asyncio.Future[None]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
