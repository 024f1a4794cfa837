"""aiobreaker's surface over our engine: its names and semantics, read from our state.

`CircuitBreaker` (in `core.py`) subclasses this, so `isinstance(b, aiobreaker.CircuitBreaker)`
holds and code written against aiobreaker (`fail_counter`, `current_state`, `listeners`,
`timeout_duration`, the decorator...) keeps working. What aiobreaker computed from its storage
and wall clock is computed here from the engine's fields and its monotonic clock.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import aiobreaker
from aiobreaker import CircuitBreakerState
from aiobreaker.storage.memory import CircuitMemoryStorage

from resilience_async._breaker._validate import Exclusion, at_least, exclusions, positive
from resilience_async._breaker.hooks import CallOutcome, Hook, HookSet
from resilience_async._errors import SaturatedError

OPEN = CircuitBreakerState.OPEN
HALF_OPEN = CircuitBreakerState.HALF_OPEN
CLOSED = CircuitBreakerState.CLOSED


def initial_state(storage: Any) -> CircuitBreakerState:
    """The state to start in, from aiobreaker's `state_storage` (in memory only, or None).

    aiobreaker's Redis storage is synchronous: every call would block the event loop on a
    Redis round trip. `shared=RedisBreakerState(...)` shares open periods off the call path.
    """
    if storage is None:
        return CLOSED
    if isinstance(storage, CircuitMemoryStorage):
        return storage.state
    raise TypeError(
        f"state_storage {type(storage).__name__} is not supported: state is kept in memory; "
        "share open periods between processes with shared=RedisBreakerState(redis.asyncio client)"
    )


class AiobreakerSurface(aiobreaker.CircuitBreaker):  # type: ignore[misc]
    """aiobreaker's properties and methods, kept, over the fields the engine maintains."""

    # Set by the engine (`CircuitBreaker.__init__`).
    _name: str
    _state: Any  # aiobreaker's state object for the current state
    _current: CircuitBreakerState
    _consecutive: int
    _failure_threshold: int
    _reset_timeout: float
    _excluded: tuple[type[BaseException], ...]
    _exclude_if: tuple[Callable[[BaseException], bool], ...]
    _is_failure: Callable[[BaseException], bool]
    _hooks: HookSet
    _outcome_hooks: tuple[Callable[[CallOutcome], None], ...]
    _legacy: tuple[Any, ...]

    @property
    def retry_after(self) -> float:
        raise NotImplementedError

    @property
    def current_state(self) -> CircuitBreakerState:
        """CLOSED, OPEN or HALF_OPEN; OPEN turns HALF_OPEN when a call arrives after the timeout."""
        return self._current

    @property
    def state(self) -> Any:
        """aiobreaker's state object (`.state` is the CircuitBreakerState)."""
        return self._state

    @state.setter
    def state(self, new: CircuitBreakerState) -> None:
        {OPEN: self.open, HALF_OPEN: self.half_open, CLOSED: self.close}[new]()

    @property
    def name(self) -> str:
        """Fixed at construction: it labels metrics and names the shared key."""
        return self._name

    @property
    def fail_counter(self) -> int:
        """Consecutive failures counted since the last success (or close)."""
        return self._consecutive

    @property
    def fail_max(self) -> int:
        return self._failure_threshold

    @fail_max.setter
    def fail_max(self, number: int) -> None:
        self._failure_threshold = at_least("fail_max", number, 1)

    @property
    def timeout_duration(self) -> timedelta:
        """The reset timeout as a timedelta (aiobreaker's name for it)."""
        return timedelta(seconds=self._reset_timeout)

    @timeout_duration.setter
    def timeout_duration(self, duration: timedelta | float) -> None:
        value = duration.total_seconds() if isinstance(duration, timedelta) else duration
        self._reset_timeout = positive("timeout_duration", value)

    @property
    def time_until_open(self) -> timedelta | None:
        """Time until calls are let through again (aiobreaker's name); None if not open."""
        remaining = self.retry_after if self._current is OPEN else 0.0
        return timedelta(seconds=remaining) if remaining > 0 else None

    @property
    def opens_at(self) -> datetime | None:
        """When calls are let through again, as an aware UTC datetime; None if not open.

        Derived from the monotonic time left when read: the breaker never looks at it.
        """
        remaining = self.time_until_open
        return None if remaining is None else datetime.now(UTC) + remaining

    async def sleep_until_open(self) -> None:
        await asyncio.sleep(self.retry_after)

    # --- outcomes -----------------------------------------------------------------------
    @property
    def excluded_exceptions(self) -> tuple[Exclusion, ...]:
        """Excluded exception types, then exclusion predicates (aiobreaker keeps both)."""
        return (*self._excluded, *self._exclude_if)

    def add_excluded_exceptions(self, *exceptions: Exclusion) -> None:
        self._excluded, self._exclude_if = exclusions((*self.excluded_exceptions, *exceptions))

    def add_excluded_exception(self, exception: Exclusion) -> None:
        self.add_excluded_exceptions(exception)

    def remove_excluded_exception(self, exception: Exclusion) -> None:
        if exception is SaturatedError:
            raise ValueError("SaturatedError is always excluded: it is our saturation")
        kept = [e for e in self.excluded_exceptions if e is not exception]
        self._excluded, self._exclude_if = exclusions(kept)

    def is_system_error(self, exception: BaseException) -> bool:
        """Whether `exception` would count as a failure."""
        if isinstance(exception, self._excluded):
            return False
        if any(excludes(exception) for excludes in self._exclude_if):
            return False
        return self._is_failure(exception)

    # --- listeners: aiobreaker's names for the breaker's hooks ---------------------------
    @property
    def hooks(self) -> tuple[Hook, ...]:
        raise NotImplementedError

    def add_hook(self, hook: Hook) -> None:
        raise NotImplementedError

    @property
    def listeners(self) -> tuple[Hook, ...]:
        """aiobreaker's name for `hooks`."""
        return self.hooks

    def add_listener(self, listener: Hook) -> None:
        """aiobreaker's name for `add_hook`."""
        self.add_hook(listener)

    def add_listeners(self, *listeners: Hook) -> None:
        """aiobreaker's: `add_hook` for each."""
        for listener in listeners:
            self.add_hook(listener)

    def remove_listener(self, listener: Hook) -> None:
        """aiobreaker's: stop telling `listener` (one of `hooks`) of anything."""
        self._hooks.remove(listener)
        self._outcome_hooks, self._legacy = self._hooks.outcome_hooks, self._hooks.legacy

    def _before_call(self, func: Any, args: Any, kwargs: Any) -> None:
        for legacy in self._legacy:
            self._hooks.call_legacy(legacy.before_call, self, func, *args, **kwargs)

    def _tell_legacy(self, outcome: CallOutcome, error: BaseException | None) -> None:
        """aiobreaker's per-call callbacks: success, or failure with the exception raised."""
        for legacy in self._legacy:
            if outcome is CallOutcome.SUCCESS or outcome is CallOutcome.SLOW:
                self._hooks.call_legacy(legacy.success, self)
            elif outcome is CallOutcome.FAILURE and error is not None:
                self._hooks.call_legacy(legacy.failure, self, error)

    # --- decorator ----------------------------------------------------------------------
    def __call__(self, func: Any = None, /, *, ignore_on_call: bool = True) -> Any:
        """Decorate a coroutine function (`@breaker` or `@breaker()`) to run through it."""
        if func is None:
            return functools.partial(self.__call__, ignore_on_call=ignore_on_call)
        if not inspect.iscoroutinefunction(func):
            raise TypeError(f"{func!r} is not a coroutine function; this breaker is async only")

        @functools.wraps(func)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            return await self.call_async(func, *args, **kwargs)

        guarded._ignore_on_call = ignore_on_call  # type: ignore[attr-defined]
        return guarded

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> NoReturn:
        """Not supported: a sync call can't be timed out or cancelled on the loop."""
        raise TypeError(f"breaker {self.name!r} is async only: use `await breaker.call_async()`")
