"""The breaker engine: a native asyncio circuit breaker with resilience4j's feature set.

It trips on consecutive failures (aiobreaker's `fail_max`), on the failure rate or the
slow-call rate over a count-based sliding window, and on calls that run past `call_timeout`;
half-open admits a bounded number of probes at once; time is monotonic, through a clock seam.

Three rules keep it honest under load:

- **Cancellation is not failure.** A cancelled call (a client disconnect) counts for nothing
  and frees its probe slot; so do excluded exceptions (our own `SaturatedError` always).
- **Stragglers don't steer.** Every transition starts a new epoch; a call counts for the
  state only if it ended in the epoch it started in, so the 64 calls in flight when the
  breaker opened can't re-open it or push its reset timer back when they fail.
- **Nothing slow on the call path.** No lock (one event loop), no Redis, no allocation of
  our own in the closed state; hooks hear of transitions, async ones as their own tasks.

    tips = CircuitBreaker(
        name="tips",
        call_timeout=2.0,
        result_is_failure=lambda response: response.status_code >= 500
        or response.status_code == 429,
        shared=RedisBreakerState(redis),  # optional; then `async with tips:` on the loop
    )
    response = await tips.call_async(client.get, url)  # CircuitOpenError when open

aiobreaker's own keywords (`fail_max`, `timeout_duration`, `exclude`, `listeners`, `name`)
are accepted too: code written for aiobreaker builds this breaker unchanged. The breaker's
hooks speak the library's vocabulary (`hooks=`, `add_hook`, `hooks`); aiobreaker's
`listeners=`, `add_listener`... are the same hooks under aiobreaker's names.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, ParamSpec, Protocol, TypeVar

from aiobreaker import CircuitBreakerState

from resilience_async._breaker._surface import AiobreakerSurface, initial_state
from resilience_async._breaker._validate import (
    Exclusion,
    alias,
    at_least,
    callable_arg,
    exclusions,
    fraction,
    optional_callable,
    optional_fraction,
    optional_positive,
    positive,
    seconds,
)
from resilience_async._breaker._window import FAILED, OK, SLOW, OutcomeWindow
from resilience_async._breaker.hooks import (
    BreakerStateChange,
    CallOutcome,
    Hook,
    HookSet,
    LoggingHook,
)
from resilience_async._breaker.shared import RedisBreakerState, SharedLink
from resilience_async._errors import CallTimeoutError, CircuitOpenError
from resilience_async._resource import AsyncResource

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R")

CLOSED = CircuitBreakerState.CLOSED
OPEN = CircuitBreakerState.OPEN
HALF_OPEN = CircuitBreakerState.HALF_OPEN
_SUCCESS, _FAILURE, _SLOW = CallOutcome.SUCCESS, CallOutcome.FAILURE, CallOutcome.SLOW
_IGNORED, _REJECTED = CallOutcome.IGNORED, CallOutcome.REJECTED

# Callers refused while every probe slot is taken are told to come back within this long.
_HALF_OPEN_RETRY_AFTER = 1.0
# How long aclose() lets async hooks finish before cancelling them.
_LISTENER_GRACE = 1.0
# Names given to breakers built without one (aiobreaker's `name` is optional).
_unnamed = itertools.count(1)


def counts_any_exception(exc: BaseException) -> bool:
    """The default failure predicate: any Exception, not KeyboardInterrupt and the like."""
    return isinstance(exc, Exception)


class Guard(Protocol):
    """What guarded code needs of a breaker: run `fn(*args)`, or refuse by raising.

    `CircuitBreaker` is one; the HTTP client and the cache accept any (tests wrap one to
    count calls). Every exception `fn` raises, timeouts included, should count as a failure.
    """

    async def call_async(self, fn: Callable[..., Awaitable[R]], /, *args: Any) -> R: ...


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker's figures at one moment, for health reports."""

    name: str
    state: CircuitBreakerState
    failure_rate: float
    slow_call_rate: float
    calls_in_window: int
    consecutive_failures: int
    retry_after: float


class CircuitBreaker(AsyncResource, AiobreakerSurface):
    """A circuit breaker for coroutine functions, on one event loop.

    `async with breaker:` starts sharing its open periods (with `shared`) on the running
    loop, and `aclose()` stops; a breaker that shares nothing works unopened. `open()` and
    `close()` are aiobreaker's: they trip and reset the circuit.

    Args:
        name: labels logs and metrics, and names the shared Redis key; default `breaker-N`.
        failure_threshold: consecutive failures that open it (aiobreaker: `fail_max`).
        reset_timeout: seconds it stays open before a probe is let through (aiobreaker:
            `timeout_duration`, a timedelta).
        window_size: how many of the latest calls the rates are computed over.
        minimum_calls: calls the window must hold before a rate can open it.
        failure_rate_threshold: failure rate (0-1] that opens it; None: rate not used.
        slow_call_duration: seconds after which a successful call is slow; None: not tracked.
        slow_call_rate_threshold: slow-call rate (0-1] that opens it.
        call_timeout: seconds a call may run before it is cancelled as a failure.
        half_open_max_calls: probes at once when half-open, and successes that close it.
        is_failure: whether an exception counts as a failure (after `excluded`).
        excluded: exception types, or predicates on the exception, that never count
            (besides SaturatedError, always excluded; aiobreaker: `exclude`).
        result_is_failure: whether a returned value counts as a failure (it is still returned).
        hooks: told of state changes (`record_state_change`, or a plain function taking the
            event) and of call outcomes (`record_outcome`): see `BreakerHook`, `OutcomeHook`.
        listeners: aiobreaker's name for `hooks` (its `CircuitBreakerListener` objects too);
            give one or the other.
        default_hooks: add the logging hook (`LoggingHook`).
        shared: share open periods with other processes (once entered: `async with`).
        clock: monotonic seconds; used for open periods and slow-call durations.
        state_storage: aiobreaker's; only None or an in-memory storage (its state is the
            initial state): see `shared` for state across processes.
    """

    def __init__(
        self,
        *,
        name: str | None = None,
        failure_threshold: int | None = None,
        reset_timeout: float | None = None,
        window_size: int = 100,
        minimum_calls: int = 20,
        failure_rate_threshold: float | None = 0.5,
        slow_call_duration: float | None = None,
        slow_call_rate_threshold: float = 1.0,
        call_timeout: float | None = None,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] = counts_any_exception,
        excluded: Iterable[Exclusion] = (),
        result_is_failure: Callable[[Any], bool] | None = None,
        hooks: Iterable[Hook] | None = None,
        default_hooks: bool = True,
        shared: RedisBreakerState | None = None,
        clock: Callable[[], float] = time.monotonic,
        fail_max: int | None = None,
        timeout_duration: timedelta | None = None,
        exclude: Iterable[Exclusion] | None = None,
        listeners: Iterable[Hook] | None = None,
        state_storage: Any = None,
    ) -> None:
        if name is None:
            name = f"breaker-{next(_unnamed)}"
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        threshold = alias("failure_threshold", failure_threshold, "fail_max", fail_max, 5)
        self._failure_threshold = at_least("failure_threshold", threshold, 1)
        duration = None if timeout_duration is None else seconds(timeout_duration)
        reset = alias("reset_timeout", reset_timeout, "timeout_duration", duration, 60.0)
        self._reset_timeout = positive("reset_timeout", reset)
        window = at_least("window_size", window_size, 1)
        self._minimum_calls = at_least("minimum_calls", minimum_calls, 1, most=window)
        self._failure_rate = optional_fraction("failure_rate_threshold", failure_rate_threshold)
        self._slow_after = optional_positive("slow_call_duration", slow_call_duration)
        self._slow_rate = fraction("slow_call_rate_threshold", slow_call_rate_threshold)
        self._call_timeout = optional_positive("call_timeout", call_timeout)
        self._half_open_max = at_least("half_open_max_calls", half_open_max_calls, 1)
        self._is_failure = callable_arg("is_failure", is_failure)
        self._result_is_failure = optional_callable("result_is_failure", result_is_failure)
        self._clock = callable_arg("clock", clock)
        self._excluded, self._exclude_if = exclusions(
            alias("excluded", tuple(excluded) or None, "exclude", exclude, ())
        )
        self._current = initial_state(state_storage)
        # aiobreaker's constructor reads current_state, sets its fields (unused here but kept
        # for code that peeks at them) and makes the state object.
        super().__init__(
            fail_max=self._failure_threshold,
            timeout_duration=timedelta(seconds=self._reset_timeout),
            name=name,
        )
        self._epoch = 0
        self._open_until = self._clock() + self._reset_timeout if self._current is OPEN else 0.0
        self._probes = 0  # probes in flight (half-open)
        self._probe_successes = 0
        self._consecutive = 0
        self._window = OutcomeWindow(window, self._minimum_calls)
        self._calls = dict.fromkeys(CallOutcome, 0)
        self._transitions = dict.fromkeys(CircuitBreakerState, 0)
        self._hooks = HookSet(name)
        self._outcome_hooks: tuple[Callable[[CallOutcome], None], ...] = ()
        self._legacy: tuple[Any, ...] = ()
        self._opened_by_peer = False
        self._link = None if shared is None else self._link_to(shared)
        defaults: list[Hook] = [LoggingHook()] if default_hooks else []
        for hook in (*defaults, *alias("hooks", hooks, "listeners", listeners, ())):
            self.add_hook(hook)

    # --- the call path ------------------------------------------------------------------
    async def call_async(
        self, func: Callable[P, Awaitable[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await `func(*args, **kwargs)` if the breaker allows it, and count the outcome.

        Raises:
            CircuitOpenError: the breaker is open, or half-open with every probe slot taken.
            CallTimeoutError: the call ran past `call_timeout` (or a probe past its bound).
        """
        if getattr(func, "_ignore_on_call", False):  # decorated by a breaker already
            return await func(*args, **kwargs)
        probe = self._current is not CLOSED and self._admit()
        epoch = self._epoch
        if self._legacy:
            self._before_call(func, args, kwargs)
        started = 0.0 if self._slow_after is None else self._clock()
        try:
            timeout = self._probe_timeout if probe else self._call_timeout
            if timeout is None:
                result = await func(*args, **kwargs)
            else:
                result = await self._bounded(timeout, func, args, kwargs)
            failed = self._result_is_failure is not None and self._result_is_failure(result)
        except BaseException as exc:
            self._settle(self._classify(exc), epoch, probe, exc)
            raise
        if failed:
            outcome = _FAILURE
        elif self._slow_after is not None and self._clock() - started > self._slow_after:
            outcome = _SLOW
        else:
            outcome = _SUCCESS
        self._settle(outcome, epoch, probe)
        return result

    async def _bounded(
        self, seconds: float, func: Callable[..., Awaitable[T]], args: Any, kwargs: Any
    ) -> T:
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                return await func(*args, **kwargs)
        except TimeoutError as exc:
            if deadline.expired():  # ours, not a TimeoutError raised by the callee
                raise CallTimeoutError(self.name, seconds) from exc
            raise

    def _admit(self) -> bool:
        """Let a call through as a probe, or refuse it (the breaker is not closed)."""
        if self._current is OPEN:
            remaining = self._open_until - self._clock()
            if remaining > 0:
                self._reject(remaining)
            self._transition(HALF_OPEN, "reset timeout elapsed")
        if self._probes >= self._half_open_max:
            self._reject(self._half_open_retry_after)
        self._probes += 1
        return True

    def _reject(self, retry_after: float) -> NoReturn:
        self._calls[_REJECTED] += 1
        for hook in self._outcome_hooks:
            hook(_REJECTED)
        raise CircuitOpenError(self.name, retry_after)

    def _classify(self, exc: BaseException) -> CallOutcome:
        if isinstance(exc, CallTimeoutError):
            return _FAILURE  # the breaker's own verdict on the dependency: it always counts
        if isinstance(exc, asyncio.CancelledError) or isinstance(exc, self._excluded):  # noqa: SIM101
            return _IGNORED  # a client that went away, or our own saturation
        if any(excludes(exc) for excludes in self._exclude_if):
            return _IGNORED
        return _FAILURE if self._is_failure(exc) else _IGNORED

    def _settle(
        self, outcome: CallOutcome, epoch: int, probe: bool, error: BaseException | None = None
    ) -> None:
        """Count an outcome in the stats always, and in the state only if no transition since."""
        self._calls[outcome] += 1
        for hook in self._outcome_hooks:
            hook(outcome)
        if self._legacy:
            self._tell_legacy(outcome, error)
        if epoch != self._epoch:
            return  # a straggler: the breaker changed state while it ran
        if probe:
            self._settle_probe(outcome)
        elif outcome is _SUCCESS:
            self._consecutive = 0
            if self._window.add(OK):
                self._check_rates()
        elif outcome is _FAILURE:
            self._consecutive += 1
            self._window.add(FAILED)
            if self._consecutive >= self._failure_threshold:
                count = self._consecutive
                self._transition(OPEN, f"{count} consecutive failure{'s' if count > 1 else ''}")
            else:
                self._check_rates()
        elif outcome is _SLOW:
            self._consecutive = 0
            self._window.add(SLOW)
            self._check_rates()

    def _check_rates(self) -> None:
        window = self._window
        if window.total < self._minimum_calls:
            return
        over = f"over the last {window.total} calls"
        if self._failure_rate is not None and window.failure_rate >= self._failure_rate:
            self._transition(OPEN, f"failure rate {window.failure_rate:.0%} {over}")
        elif self._slow_after is not None and window.slow_rate >= self._slow_rate:
            self._transition(OPEN, f"slow-call rate {window.slow_rate:.0%} {over}")

    def _settle_probe(self, outcome: CallOutcome) -> None:
        if outcome is _IGNORED:
            self._probes -= 1
        elif outcome is _FAILURE:
            self._consecutive += 1
            self._transition(OPEN, "probe failed")
        elif outcome is _SLOW:
            self._transition(OPEN, "probe was slow")
        else:
            self._probes -= 1
            self._probe_successes += 1
            if self._probe_successes >= self._half_open_max:
                self._transition(CLOSED, f"{self._probe_successes} probes succeeded")

    # --- transitions --------------------------------------------------------------------
    def _transition(
        self, new: CircuitBreakerState, reason: str, *, open_for: float | None = None
    ) -> None:
        old, old_state = self._current, self._state
        now = self._clock()
        self._current = new
        self._epoch += 1
        if new is OPEN:
            self._open_until = now + (self._reset_timeout if open_for is None else open_for)
        elif new is HALF_OPEN:
            self._probes = self._probe_successes = 0
        else:
            self._consecutive = 0
            self._window.reset()
        self._state = new.value(self)  # aiobreaker's state object, for `state` and its listeners
        self._transitions[new] += 1
        self._share(new, peer=open_for is not None)
        event = BreakerStateChange(self.name, old, new, reason, now, self.retry_after)
        self._hooks.notify(event, (self, old_state, self._state))

    def _share(self, new: CircuitBreakerState, *, peer: bool) -> None:
        self._opened_by_peer = peer
        if self._link is None or peer:
            return
        if new is OPEN:
            self._link.opened(self._reset_timeout)
        elif new is CLOSED:
            self._link.closed()

    def _peer_opened(self, remaining: float) -> None:
        if self._current is not OPEN:
            self._transition(OPEN, "opened by another process", open_for=remaining)

    def _peer_cleared(self) -> None:
        # The process that opened it has closed it: probe now rather than wait out our copy.
        if self._current is OPEN and self._opened_by_peer:
            self._open_until = min(self._open_until, self._clock())

    def open(self, reason: str = "opened by hand") -> None:
        """Open the circuit now, for a fresh `reset_timeout`."""
        self._transition(OPEN, reason)

    def half_open(self, reason: str = "half-opened by hand") -> None:
        """Let the next `half_open_max_calls` calls through as probes."""
        self._transition(HALF_OPEN, reason)

    def close(self, reason: str = "closed by hand") -> None:
        """Close the circuit now, with an empty window."""
        self._transition(CLOSED, reason)

    # --- reading the state --------------------------------------------------------------
    @property
    def retry_after(self) -> float:
        """Seconds until a probe is allowed: 0 when closed, or half-open with a slot free."""
        if self._current is OPEN:
            return max(0.0, self._open_until - self._clock())
        if self._current is HALF_OPEN and self._probes >= self._half_open_max:
            return self._half_open_retry_after
        return 0.0

    @property
    def _half_open_retry_after(self) -> float:
        return min(_HALF_OPEN_RETRY_AFTER, self._probe_timeout)

    @property
    def _probe_timeout(self) -> float:
        # Without a call timeout a hung probe would keep the breaker half-open for ever.
        return self._reset_timeout if self._call_timeout is None else self._call_timeout

    def stats(self) -> dict[str, int]:
        """Calls by outcome and transitions by state entered, since the breaker was built.

        Keys: `calls_success`, `calls_failure`, `calls_slow`, `calls_rejected`,
        `calls_ignored`, `opened`, `half_opened`, `closed`.
        """
        counts = {f"calls_{outcome.value}": n for outcome, n in self._calls.items()}
        transitions = self._transitions
        counts["opened"] = transitions[OPEN]
        counts["half_opened"] = transitions[HALF_OPEN]
        counts["closed"] = transitions[CLOSED]
        return counts

    def snapshot(self) -> BreakerSnapshot:
        window = self._window
        return BreakerSnapshot(
            self.name,
            self._current,
            window.failure_rate,
            window.slow_rate,
            window.total,
            self._consecutive,
            self.retry_after,
        )

    # --- hooks --------------------------------------------------------------------------
    @property
    def hooks(self) -> tuple[Hook, ...]:
        """The hooks told of this breaker's events, in the order they were added."""
        return tuple(self._hooks.all)

    def add_hook(self, hook: Hook) -> None:
        """Tell `hook` of every state change and/or call outcome from now on."""
        self._hooks.add(hook)
        self._outcome_hooks, self._legacy = self._hooks.outcome_hooks, self._hooks.legacy

    # --- lifecycle ----------------------------------------------------------------------
    def _link_to(self, shared: RedisBreakerState) -> SharedLink:
        if not isinstance(shared, RedisBreakerState):
            raise ValueError(f"shared must be a RedisBreakerState or None, got {shared!r}")
        return SharedLink(
            shared, self.name, on_peer_open=self._peer_opened, on_peer_clear=self._peer_cleared
        )

    async def _open(self) -> None:
        """Start sharing state through Redis on the running loop (nothing when not shared)."""
        if self._link is not None:
            await self._link.start()

    async def aclose(self) -> None:
        """Stop sharing, and give running async hooks a moment to finish."""
        if self._link is not None:
            await self._link.aclose()
        await self._hooks.drain(_LISTENER_GRACE)
