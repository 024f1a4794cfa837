"""CircuitBreaker: trips, open periods, probes, outcomes, stragglers, hooks and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, timedelta
from typing import Any

import aiobreaker
import aiobreaker.storage.base
import pytest
from aiobreaker.storage.memory import CircuitMemoryStorage

from resilience_async import (
    BreakerStateChange,
    BulkheadFullError,
    CallOutcome,
    CallTimeoutError,
    CircuitBreaker,
    CircuitOpenError,
    RedisBreakerState,
    SaturatedError,
)
from tests.fakes import FakeClock, FakeRedis

CLOSED = aiobreaker.CircuitBreakerState.CLOSED
OPEN = aiobreaker.CircuitBreakerState.OPEN
HALF_OPEN = aiobreaker.CircuitBreakerState.HALF_OPEN
_names = itertools.count()


class Boom(Exception):
    pass


class Outcomes:
    """An outcome hook that keeps every call outcome it is told."""

    def __init__(self) -> None:
        self.seen: list[CallOutcome] = []

    def record_outcome(self, outcome: CallOutcome) -> None:
        self.seen.append(outcome)


@dataclasses.dataclass
class FakeResponse:
    status: int


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def make(clock: FakeClock) -> Callable[..., CircuitBreaker]:
    """Build a breaker on the fake clock, with a unique name and no default hooks."""

    def build(**settings: Any) -> CircuitBreaker:
        settings.setdefault("name", f"test-{next(_names)}")
        settings.setdefault("default_hooks", False)
        settings.setdefault("failure_rate_threshold", None)
        settings.setdefault("clock", clock)
        return CircuitBreaker(**settings)

    return build


async def ok(value: Any = "ok") -> Any:
    return value


async def boom() -> None:
    raise Boom("upstream broke")


async def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom):
            await breaker.call_async(boom)


async def trip(breaker: CircuitBreaker) -> None:
    breaker.open()
    assert breaker.current_state is OPEN


class Gate:
    """Calls that block until released; `arrived` is set once `expected` calls got in."""

    def __init__(self, expected: int, result: Callable[[], Awaitable[Any]] = ok) -> None:
        self.expected = expected
        self.entered = 0
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self._result = result

    def note(self) -> None:
        self.entered += 1
        if self.entered >= self.expected:
            self.arrived.set()

    async def __call__(self) -> Any:
        self.note()
        await self.release.wait()
        return await self._result()


# --- aiobreaker compatibility -----------------------------------------------------------


def test_is_an_aiobreaker_breaker_with_its_fields(make: Callable[..., CircuitBreaker]) -> None:
    """It is an aiobreaker.CircuitBreaker whose name, state and counters read as aiobreaker's."""
    breaker = make(name="payments", failure_threshold=3, reset_timeout=30)
    assert isinstance(breaker, aiobreaker.CircuitBreaker)
    assert breaker.name == "payments"
    assert breaker.current_state is CLOSED
    assert breaker.state.state is CLOSED
    assert breaker.fail_counter == 0
    assert breaker.fail_max == 3
    assert breaker.timeout_duration == timedelta(seconds=30)
    assert SaturatedError in breaker.excluded_exceptions


async def test_aiobreaker_keywords_build_the_same_breaker(clock: FakeClock) -> None:
    """fail_max, timeout_duration (a timedelta), exclude (types and predicates), listeners
    and no name: what aiobreaker users write builds a working breaker."""
    seen: list[str] = []

    class Legacy(aiobreaker.CircuitBreakerListener):  # type: ignore[misc]
        def state_change(self, breaker: Any, old: Any, new: Any) -> None:
            seen.append(new.state.name)

    def is_business_error(exc: BaseException) -> bool:
        return isinstance(exc, ValueError) and "business" in str(exc)

    breaker = CircuitBreaker(
        fail_max=2,
        timeout_duration=timedelta(seconds=30),
        exclude=[KeyError, is_business_error],
        listeners=[Legacy()],
        clock=clock,
    )
    assert (breaker.fail_max, breaker.timeout_duration) == (2, timedelta(seconds=30))
    assert breaker.excluded_exceptions == (SaturatedError, KeyError, is_business_error)

    async def raising(exc: Exception) -> None:
        raise exc

    for excluded in (KeyError("k"), ValueError("business rule")):
        with pytest.raises(type(excluded)):
            await breaker.call_async(raising, excluded)
    assert breaker.fail_counter == 0
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):  # the call that opens it included
            await breaker.call_async(raising, ValueError("boom"))
    assert breaker.current_state is OPEN
    with pytest.raises(aiobreaker.CircuitBreakerError):
        await breaker.call_async(ok)
    clock.advance(30)
    assert await breaker.call_async(ok) == "ok"
    assert breaker.current_state is CLOSED
    assert seen == ["OPEN", "HALF_OPEN", "CLOSED"]


def test_a_breaker_without_a_name_gets_one_of_its_own() -> None:
    """aiobreaker's `name` is optional: unnamed breakers get distinct names for logs."""
    first, second = CircuitBreaker(default_hooks=False), CircuitBreaker()
    assert first.name.startswith("breaker-")
    assert first.name != second.name


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"failure_threshold": 3, "fail_max": 3}, "failure_threshold or fail_max"),
        ({"reset_timeout": 5, "timeout_duration": timedelta(seconds=5)},
         "reset_timeout or timeout_duration"),
        ({"excluded": [KeyError], "exclude": [KeyError]}, "excluded or exclude"),
    ],
)  # fmt: skip
def test_a_setting_given_under_both_names_is_refused(settings: dict[str, Any], names: str) -> None:
    """Our name and aiobreaker's for one setting together are ambiguous: refused, naming both."""
    with pytest.raises(ValueError, match=f"give {names}"):
        CircuitBreaker(**settings)


def test_state_storage_in_memory_sets_the_initial_state(clock: FakeClock) -> None:
    """aiobreaker's CircuitMemoryStorage gives the state to start in; an open one is open
    for a full timeout."""
    storage = CircuitMemoryStorage(OPEN)
    breaker = CircuitBreaker(state_storage=storage, timeout_duration=timedelta(seconds=10),
                             clock=clock)  # fmt: skip
    assert breaker.current_state is OPEN
    assert breaker.retry_after == 10


def test_another_state_storage_is_refused_pointing_at_shared() -> None:
    """aiobreaker's Redis storage blocks the loop on every call: refused, naming `shared`."""

    class SharedStorage(aiobreaker.storage.base.CircuitBreakerStorage):  # type: ignore[misc]
        state = CLOSED
        counter = 0
        opened_at = None

        def increment_counter(self) -> None: ...

        def reset_counter(self) -> None: ...

    with pytest.raises(TypeError, match=r"SharedStorage .*shared=RedisBreakerState"):
        CircuitBreaker(state_storage=SharedStorage("redis"))


def test_excluded_predicates_are_added_removed_and_consulted() -> None:
    """add_excluded_exception takes a predicate too; is_system_error consults it."""
    breaker = CircuitBreaker(default_hooks=False)

    def is_teapot(exc: BaseException) -> bool:
        return "teapot" in str(exc)

    assert breaker.is_system_error(RuntimeError("teapot"))
    breaker.add_excluded_exception(is_teapot)
    assert not breaker.is_system_error(RuntimeError("teapot"))
    assert breaker.is_system_error(RuntimeError("kettle"))
    breaker.remove_excluded_exception(is_teapot)
    assert breaker.is_system_error(RuntimeError("teapot"))


def test_open_period_properties_come_from_the_monotonic_clock(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """time_until_open, opens_at and retry_after follow the fake clock; None/0 when closed."""
    breaker = make(reset_timeout=60)
    assert (breaker.time_until_open, breaker.opens_at, breaker.retry_after) == (None, None, 0.0)
    breaker.open()
    clock.advance(15)
    assert breaker.retry_after == 45
    assert breaker.time_until_open == timedelta(seconds=45)
    opens_at = breaker.opens_at
    assert opens_at is not None
    assert opens_at.tzinfo is UTC
    breaker.state = CLOSED
    assert (breaker.current_state, breaker.retry_after) == (CLOSED, 0.0)


async def test_decorator_guards_coroutine_functions(make: Callable[..., CircuitBreaker]) -> None:
    """`@breaker` and `@breaker()` guard coroutine functions, counting each call once."""
    breaker = make(failure_threshold=2)

    @breaker
    async def fetch(x: int) -> int:
        return x * 2

    @breaker()
    async def broken() -> None:
        raise Boom

    assert fetch.__name__ == "fetch"
    assert await fetch(21) == 42
    with pytest.raises(Boom):
        await breaker.call_async(broken)  # already guarded: not counted twice
    assert breaker.fail_counter == 1
    with pytest.raises(Boom):
        await broken()
    assert breaker.current_state is OPEN
    with pytest.raises(CircuitOpenError):
        await fetch(1)


def test_sync_functions_are_refused(make: Callable[..., CircuitBreaker]) -> None:
    """A sync function can't be decorated or called through the async-only breaker."""
    breaker = make()
    with pytest.raises(TypeError, match="not a coroutine function"):
        breaker(lambda: None)
    with pytest.raises(TypeError, match="async only"):
        breaker.call(print)


@pytest.mark.parametrize(
    ("settings", "argument"),
    [
        ({"name": ""}, "name"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"reset_timeout": 0}, "reset_timeout"),
        ({"reset_timeout": float("nan")}, "reset_timeout"),
        ({"window_size": 0}, "window_size"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"window_size": 10, "minimum_calls": 11}, "minimum_calls"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"slow_call_duration": -1}, "slow_call_duration"),
        ({"slow_call_rate_threshold": 0}, "slow_call_rate_threshold"),
        ({"call_timeout": 0}, "call_timeout"),
        ({"call_timeout": "1"}, "call_timeout"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"is_failure": None}, "is_failure"),
        ({"result_is_failure": 503}, "result_is_failure"),
        ({"excluded": (ValueError, "oops")}, "excluded"),
        ({"clock": 0.0}, "clock"),
        ({"shared": object()}, "shared"),
    ],
)
def test_constructor_validation_names_the_argument(
    make: Callable[..., CircuitBreaker], settings: dict[str, Any], argument: str
) -> None:
    """A bad setting raises ValueError at once, naming the argument."""
    with pytest.raises(ValueError, match=rf"^{argument} must"):
        make(**settings)


def test_hook_of_unknown_kind_is_refused(make: Callable[..., CircuitBreaker]) -> None:
    """An object that records nothing, is not callable and not aiobreaker's is refused."""
    with pytest.raises(TypeError, match="hook must have record_state_change"):
        make(hooks=[42])


def test_hooks_and_aiobreakers_listeners_are_one_list(
    make: Callable[..., CircuitBreaker],
) -> None:
    """`listeners=`, `add_listener(s)` and `remove_listener` are aiobreaker's names for the
    breaker's hooks; giving both keywords is refused."""
    first, second, third = Outcomes(), Outcomes(), Outcomes()
    breaker = make(listeners=[first])
    breaker.add_hook(second)
    breaker.add_listeners(third)
    assert breaker.hooks == breaker.listeners == (first, second, third)
    breaker.remove_listener(second)
    assert breaker.hooks == (first, third)
    with pytest.raises(ValueError, match="give hooks or listeners"):
        make(hooks=[first], listeners=[second])


# --- tripping ---------------------------------------------------------------------------


async def test_opens_after_failure_threshold_consecutive_failures(
    make: Callable[..., CircuitBreaker],
) -> None:
    """failure_threshold consecutive failures open it; a success in between resets the count."""
    breaker = make(failure_threshold=3)
    await fail(breaker, 2)
    assert breaker.fail_counter == 2
    assert await breaker.call_async(ok) == "ok"
    assert breaker.fail_counter == 0
    await fail(breaker, 2)
    assert breaker.current_state is CLOSED
    await fail(breaker)
    assert breaker.current_state is OPEN
    assert breaker.fail_counter == 3


async def test_open_breaker_fails_fast_with_retry_after(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """While open, calls are refused without running, with retry_after from the clock."""
    breaker = make(failure_threshold=1, reset_timeout=60)
    await fail(breaker)
    clock.advance(10)
    gate = Gate(1)
    with pytest.raises(CircuitOpenError) as refused:
        await breaker.call_async(gate)
    assert gate.entered == 0
    assert refused.value.retry_after == 50
    assert refused.value.breaker == breaker.name
    assert isinstance(refused.value, aiobreaker.CircuitBreakerError)
    assert breaker.retry_after == 50


async def test_failure_rate_trips_only_once_minimum_calls_are_in_the_window(
    make: Callable[..., CircuitBreaker],
) -> None:
    """The failure rate counts only from minimum_calls on; the call reaching it may trip it."""
    breaker = make(
        failure_threshold=100, window_size=10, minimum_calls=6, failure_rate_threshold=0.5
    )
    for call in (boom, ok, boom, ok, boom):  # 60% failed, but only 5 calls
        with pytest.raises(Boom) if call is boom else contextlib.nullcontext():
            await breaker.call_async(call)
    assert breaker.current_state is CLOSED
    assert breaker.snapshot().failure_rate == pytest.approx(0.6)
    await breaker.call_async(ok)  # 6 calls, 50% failed
    assert breaker.current_state is OPEN


async def test_sliding_window_forgets_the_oldest_calls(
    make: Callable[..., CircuitBreaker],
) -> None:
    """Only the last window_size calls count: old failures slide out of the rate."""
    breaker = make(
        failure_threshold=100, window_size=4, minimum_calls=4, failure_rate_threshold=0.75
    )
    await fail(breaker, 2)
    for _ in range(4):
        await breaker.call_async(ok)
    assert breaker.snapshot().failure_rate == 0.0
    await fail(breaker, 2)
    assert (breaker.current_state, breaker.snapshot().failure_rate) == (CLOSED, 0.5)
    await fail(breaker)
    assert breaker.current_state is OPEN
    assert breaker.snapshot().calls_in_window == 4


async def test_slow_calls_trip_on_the_slow_call_rate(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """Successful calls slower than slow_call_duration are returned, and trip on their rate."""

    async def slow() -> str:
        clock.advance(2.0)
        return "late"

    events: list[BreakerStateChange] = []
    breaker = make(
        window_size=4,
        minimum_calls=4,
        slow_call_duration=1.0,
        slow_call_rate_threshold=0.5,
        hooks=[events.append],
    )
    assert await breaker.call_async(slow) == "late"
    await breaker.call_async(ok)
    await breaker.call_async(ok)
    assert breaker.fail_counter == 0
    assert await breaker.call_async(slow) == "late"
    assert breaker.current_state is OPEN
    assert breaker.snapshot().slow_call_rate == 0.5
    assert "slow-call rate 50%" in events[-1].reason


async def test_call_timeout_counts_as_failure_and_raises_call_timeout_error(
    make: Callable[..., CircuitBreaker],
) -> None:
    """A call past call_timeout is cancelled, raises CallTimeoutError and counts as failure."""
    breaker = make(failure_threshold=1, call_timeout=0.02)
    gate = Gate(1)
    with pytest.raises(CallTimeoutError) as timed_out:
        await breaker.call_async(gate)
    assert isinstance(timed_out.value.__cause__, TimeoutError)
    assert timed_out.value.timeout == 0.02
    assert breaker.current_state is OPEN


async def test_callee_timeout_error_is_not_mistaken_for_the_call_timeout(
    make: Callable[..., CircuitBreaker],
) -> None:
    """A TimeoutError the callee raises itself passes through as is (and counts as failure)."""

    async def own_timeout() -> None:
        raise TimeoutError("the callee's own deadline")

    breaker = make(call_timeout=5.0)
    with pytest.raises(TimeoutError, match="callee's own") as raised:
        await breaker.call_async(own_timeout)
    assert not isinstance(raised.value, CallTimeoutError)
    assert breaker.fail_counter == 1


# --- outcomes ---------------------------------------------------------------------------


async def test_excluded_exceptions_count_for_nothing(make: Callable[..., CircuitBreaker]) -> None:
    """SaturatedError (always) and the excluded types are re-raised but never counted."""

    class BusinessError(Exception):
        pass

    outcomes = Outcomes()
    breaker = make(failure_threshold=1, excluded=(BusinessError,), hooks=[outcomes])

    async def saturated() -> None:
        raise BulkheadFullError("upstream", 10)

    async def business() -> None:
        raise BusinessError

    with pytest.raises(BulkheadFullError):
        await breaker.call_async(saturated)
    with pytest.raises(BusinessError):
        await breaker.call_async(business)
    assert breaker.current_state is CLOSED
    assert (breaker.fail_counter, breaker.snapshot().calls_in_window) == (0, 0)
    assert outcomes.seen == [CallOutcome.IGNORED, CallOutcome.IGNORED]
    assert not breaker.is_system_error(BulkheadFullError("x", 1))


async def test_is_failure_predicate_decides_which_exceptions_count(
    make: Callable[..., CircuitBreaker],
) -> None:
    """is_failure picks the exceptions that count; the others are re-raised uncounted."""
    breaker = make(is_failure=lambda exc: not isinstance(exc, LookupError))

    async def missing() -> None:
        raise KeyError("absent")

    with pytest.raises(KeyError):
        await breaker.call_async(missing)
    assert breaker.fail_counter == 0
    await fail(breaker)
    assert breaker.fail_counter == 1


async def test_result_predicate_counts_failures_but_returns_them(
    make: Callable[..., CircuitBreaker],
) -> None:
    """A 503 counts as a failure yet is returned; a 404 is a success."""
    breaker = make(
        failure_threshold=2,
        result_is_failure=lambda response: response.status >= 500 or response.status == 429,
    )
    unavailable = FakeResponse(503)
    assert await breaker.call_async(ok, unavailable) is unavailable
    assert breaker.fail_counter == 1
    assert (await breaker.call_async(ok, FakeResponse(404))).status == 404
    assert breaker.fail_counter == 0
    await breaker.call_async(ok, FakeResponse(429))
    assert await breaker.call_async(ok, unavailable) is unavailable
    assert breaker.current_state is OPEN


async def test_cancelled_call_counts_for_nothing(make: Callable[..., CircuitBreaker]) -> None:
    """A cancelled call (client gone) is re-raised as CancelledError and counted nowhere."""
    outcomes = Outcomes()
    breaker = make(failure_threshold=1, hooks=[outcomes])
    gate = Gate(1)
    task = asyncio.create_task(breaker.call_async(gate))
    await gate.arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.current_state is CLOSED
    assert (breaker.fail_counter, breaker.snapshot().calls_in_window) == (0, 0)
    assert outcomes.seen == [CallOutcome.IGNORED]


# --- half-open --------------------------------------------------------------------------


async def test_open_turns_half_open_lazily_when_a_call_arrives(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """After reset_timeout it stays OPEN (retry_after 0) until a call arrives and probes."""
    breaker = make(reset_timeout=60, half_open_max_calls=2)
    await trip(breaker)
    clock.advance(60)
    assert (breaker.current_state, breaker.retry_after) == (OPEN, 0.0)
    await breaker.call_async(ok)
    assert breaker.current_state is HALF_OPEN


async def test_half_open_admits_only_max_probes_among_50_callers(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """Of 50 concurrent callers, exactly half_open_max_calls probe; the rest are refused."""
    breaker = make(reset_timeout=60, half_open_max_calls=3, call_timeout=5.0)
    await trip(breaker)
    clock.advance(60)
    gate = Gate(50)
    refusals: list[CircuitOpenError] = []

    async def caller() -> Any:
        try:
            return await breaker.call_async(gate)
        except CircuitOpenError as exc:
            refusals.append(exc)
            gate.note()
            return None

    tasks = [asyncio.create_task(caller()) for _ in range(50)]
    await gate.arrived.wait()
    assert (gate.entered - len(refusals), len(refusals)) == (3, 47)
    assert all(0 < refusal.retry_after <= 1.0 for refusal in refusals)
    assert breaker.current_state is HALF_OPEN
    gate.release.set()
    results = await asyncio.gather(*tasks)
    assert results.count("ok") == 3
    assert breaker.current_state is CLOSED


async def test_closes_once_max_probes_have_succeeded(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """It closes, with an empty window, once half_open_max_calls probes succeeded."""
    breaker = make(reset_timeout=60, half_open_max_calls=2)
    await fail(breaker, 3)
    await trip(breaker)
    clock.advance(60)
    await breaker.call_async(ok)
    assert breaker.current_state is HALF_OPEN
    await breaker.call_async(ok)
    assert breaker.current_state is CLOSED
    snapshot = breaker.snapshot()
    assert (snapshot.calls_in_window, snapshot.consecutive_failures) == (0, 0)


async def test_probe_failure_reopens_for_a_fresh_period(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """A failed probe re-opens the breaker for a whole new reset_timeout."""
    breaker = make(reset_timeout=60)
    await trip(breaker)
    clock.advance(75)
    await fail(breaker)
    assert breaker.current_state is OPEN
    assert breaker.retry_after == 60


async def test_hanging_probe_is_bounded_by_call_timeout(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """A probe that hangs times out after call_timeout and re-opens: half-open can't stick."""
    breaker = make(reset_timeout=60, call_timeout=0.02)
    await trip(breaker)
    clock.advance(60)
    with pytest.raises(CallTimeoutError):
        await breaker.call_async(Gate(1))
    assert (breaker.current_state, breaker.retry_after) == (OPEN, 60)


async def test_hanging_probe_without_call_timeout_is_bounded_by_reset_timeout(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """Without call_timeout a probe is bounded by reset_timeout, so half-open can't stick."""
    breaker = make(reset_timeout=0.02)
    await trip(breaker)
    clock.advance(0.02)
    with pytest.raises(CallTimeoutError) as timed_out:
        await breaker.call_async(Gate(1))
    assert timed_out.value.timeout == 0.02
    assert breaker.current_state is OPEN


async def test_cancelled_probe_frees_its_slot(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """A cancelled probe frees its slot at once, counts nothing, and another probe may run."""
    breaker = make(reset_timeout=60, half_open_max_calls=1)
    await trip(breaker)
    clock.advance(60)
    gate = Gate(1)
    probe = asyncio.create_task(breaker.call_async(gate))
    await gate.arrived.wait()
    assert breaker.retry_after > 0  # the only slot is taken
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert (breaker.current_state, breaker.retry_after, breaker.fail_counter) == (HALF_OPEN, 0, 0)
    await breaker.call_async(ok)
    assert breaker.current_state is CLOSED


async def test_stragglers_neither_reopen_nor_extend_the_open_period(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """64 calls in flight when it opened fail later: the period stays, no re-open, no trip."""
    events: list[BreakerStateChange] = []
    outcomes = Outcomes()
    breaker = make(failure_threshold=5, reset_timeout=60, hooks=[events.append, outcomes])
    early, late = Gate(32, boom), Gate(32, boom)
    stragglers = [asyncio.create_task(breaker.call_async(g)) for g in [early] * 32 + [late] * 32]
    await early.arrived.wait()
    await late.arrived.wait()
    await fail(breaker, 5)
    assert breaker.current_state is OPEN
    clock.advance(30)
    early.release.set()
    await asyncio.wait(stragglers[:32])
    assert (breaker.current_state, breaker.retry_after) == (OPEN, 30)
    clock.advance(30)
    probe_gate = Gate(1)
    probe = asyncio.create_task(breaker.call_async(probe_gate))
    await probe_gate.arrived.wait()
    late.release.set()
    await asyncio.wait(stragglers[32:])
    assert breaker.current_state is HALF_OPEN
    probe_gate.release.set()
    await probe
    assert breaker.current_state is CLOSED
    transitions = [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    assert [(e.old, e.new) for e in events] == transitions
    assert outcomes.seen.count(CallOutcome.FAILURE) == 5 + 64  # counted in metrics all the same
    assert all(isinstance(task.exception(), Boom) for task in stragglers)


# --- hooks and metrics ------------------------------------------------------------------


async def test_sync_and_async_hooks_get_each_transition(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """Sync hooks run in line; async ones run as tasks and never hold the call up."""
    seen: list[BreakerStateChange] = []
    seen_async: list[BreakerStateChange] = []
    may_finish = asyncio.Event()

    async def slow_hook(event: BreakerStateChange) -> None:
        await may_finish.wait()
        seen_async.append(event)

    breaker = make(failure_threshold=1, hooks=[seen.append, slow_hook])
    await fail(breaker)  # returns although slow_hook is still waiting
    assert seen_async == []
    event = seen[0]
    assert (event.breaker, event.old, event.new) == (breaker.name, CLOSED, OPEN)
    assert (event.reason, event.at, event.retry_after) == ("1 consecutive failure", clock(), 60)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.reason = "changed"  # type: ignore[misc]
    may_finish.set()
    await breaker.aclose()
    assert seen_async == seen


async def test_failing_hooks_are_logged_not_raised(
    make: Callable[..., CircuitBreaker], caplog: pytest.LogCaptureFixture
) -> None:
    """A hook that raises, sync or async, is logged; the call and the transition stand."""

    def broken(event: BreakerStateChange) -> None:
        raise RuntimeError("sync hook bug")

    async def broken_async(event: BreakerStateChange) -> None:
        raise RuntimeError("async hook bug")

    breaker = make(failure_threshold=1, hooks=[broken, broken_async])
    await fail(breaker)
    await breaker.aclose()
    assert breaker.current_state is OPEN
    failures = [r for r in caplog.records if r.getMessage() == "breaker hook failed"]
    assert len(failures) == 2


def test_async_hook_without_a_running_loop_is_skipped(
    make: Callable[..., CircuitBreaker], caplog: pytest.LogCaptureFixture
) -> None:
    """A transition made outside the loop skips async hooks (never-awaited free)."""

    async def hook(event: BreakerStateChange) -> None:
        raise AssertionError("not run")

    breaker = make(hooks=[hook])
    breaker.open()
    assert "no running event loop" in caplog.text


async def test_aiobreaker_listener_objects_keep_their_callbacks(
    make: Callable[..., CircuitBreaker],
) -> None:
    """aiobreaker CircuitBreakerListeners get before_call, success, failure and state_change."""
    calls: list[tuple[Any, ...]] = []

    class Legacy(aiobreaker.CircuitBreakerListener):  # type: ignore[misc]
        def before_call(self, breaker: Any, func: Any, *args: Any, **kwargs: Any) -> None:
            calls.append(("before_call", func, args))

        def success(self, breaker: Any) -> None:
            calls.append(("success",))

        def failure(self, breaker: Any, exception: BaseException) -> None:
            calls.append(("failure", type(exception)))

        def state_change(self, breaker: Any, old: Any, new: Any) -> None:
            calls.append(("state_change", breaker, old.state, new.state))

    breaker = make(failure_threshold=1)
    breaker.add_listener(Legacy())
    await breaker.call_async(ok, 1)
    await fail(breaker)
    assert calls == [
        ("before_call", ok, (1,)),
        ("success",),
        ("before_call", boom, ()),
        ("failure", Boom),
        ("state_change", breaker, CLOSED, OPEN),
    ]
    assert len(breaker.listeners) == 1


async def test_logging_hook_logs_structured_transitions(
    make: Callable[..., CircuitBreaker], caplog: pytest.LogCaptureFixture
) -> None:
    """The default logging hook warns "circuit opened" with breaker, state and reason."""
    caplog.set_level(logging.INFO, logger="resilience_async.breaker")
    breaker = make(failure_threshold=2, default_hooks=True)
    await fail(breaker, 2)
    opened = next(r for r in caplog.records if r.getMessage() == "circuit opened")
    assert opened.levelno == logging.WARNING
    assert (opened.breaker, opened.state, opened.reason) == (  # type: ignore[attr-defined]
        breaker.name,
        "open",
        "2 consecutive failures",
    )
    breaker.close()
    assert caplog.records[-1].getMessage() == "circuit closed"
    assert caplog.records[-1].levelno == logging.INFO


async def test_stats_count_every_outcome_and_transition(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """stats() counts calls by outcome and transitions by state entered, exactly."""
    breaker = make(failure_threshold=1, slow_call_duration=1.0, reset_timeout=5)

    async def slow() -> None:
        clock.advance(2.0)

    async def saturated() -> None:
        raise SaturatedError

    await breaker.call_async(ok)
    with pytest.raises(SaturatedError):
        await breaker.call_async(saturated)
    await breaker.call_async(slow)
    await fail(breaker)
    with pytest.raises(CircuitOpenError):
        await breaker.call_async(ok)
    clock.advance(5)
    await breaker.call_async(ok)  # the probe: half-open, then closed
    assert breaker.stats() == {
        "calls_success": 2,
        "calls_failure": 1,
        "calls_slow": 1,
        "calls_rejected": 1,
        "calls_ignored": 1,
        "opened": 1,
        "half_opened": 1,
        "closed": 1,
    }


def test_snapshot_reports_the_figures(make: Callable[..., CircuitBreaker]) -> None:
    """snapshot() is a frozen record of state, rates, window, failures and retry_after."""
    breaker = make(reset_timeout=60)
    breaker.open()
    snapshot = breaker.snapshot()
    assert snapshot.state is OPEN
    assert (snapshot.failure_rate, snapshot.slow_call_rate, snapshot.calls_in_window) == (0, 0, 0)
    assert snapshot.retry_after == 60
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.retry_after = 0  # type: ignore[misc]


# --- sharing, with an in-memory stand-in for Redis ----------------------------------------


async def test_breakers_share_open_periods_through_redis(
    make: Callable[..., CircuitBreaker], clock: FakeClock
) -> None:
    """One breaker opening opens its twin for the time left; closing clears the key."""
    redis = FakeRedis()
    shared = RedisBreakerState(redis, poll_interval=0.01, wall_clock=lambda: 5000.0)
    one = make(name="twin", shared=shared, reset_timeout=60)
    other = make(name="twin", shared=shared, reset_timeout=60)
    assert await other.call_async(ok) == "ok"  # works unopened, without Redis
    async with one, other:
        one.open()
        await redis.until(lambda: other.current_state is OPEN)
        assert other.retry_after == 60
        assert one.current_state is OPEN  # its own value does not re-open it
        one.close()
        await redis.until(lambda: "resilience:breaker:twin" not in redis.data)
        await redis.until(lambda: other.retry_after == 0)  # the peer closed: probe at once
        await other.call_async(ok)
        assert other.current_state is CLOSED


async def test_redis_trouble_is_logged_once_and_local_state_kept(
    make: Callable[..., CircuitBreaker], caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis failing the breaker works locally, logs once, and publishes once it's back."""
    caplog.set_level(logging.INFO, logger="resilience_async.breaker")
    redis = FakeRedis()
    redis.down = True
    shared = RedisBreakerState(redis, poll_interval=0.01)
    breaker = make(shared=shared, failure_threshold=1)
    async with breaker:
        await fail(breaker)
        assert breaker.current_state is OPEN
        await redis.until(lambda: "unavailable" in caplog.text)
        redis.down = False
        await redis.until(lambda: shared.key(breaker.name) in redis.data)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("shared breaker state unavailable; keeping local state") == 1
    assert "shared breaker state available again" in messages
