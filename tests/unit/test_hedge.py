"""`Hedge`: a second attempt once the first is late, the first answer wins, losers cleaned up."""

from __future__ import annotations

import asyncio

import pytest

from resilience_async._hedge import Hedge, LatencyWindow
from resilience_async._retry import RetryBudget


class Attempt:
    """An attempt that answers when told to (or never), and says whether it was cancelled."""

    def __init__(self, value: str, *, fail: Exception | None = None) -> None:
        self.value = value
        self.fail = fail
        self.go = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = False
        self.finished = False

    async def __call__(self) -> str:
        self.started.set()
        try:
            await self.go.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        finally:
            self.finished = True
        if self.fail is not None:
            raise self.fail
        return self.value


def no_budget() -> RetryBudget:
    return RetryBudget(ratio=0.0, min_per_second=0.0)


async def test_a_fast_first_attempt_answers_without_a_hedge() -> None:
    hedge: Hedge[str] = Hedge("db", max_delay=10.0)
    first, second = Attempt("first"), Attempt("second")
    first.go.set()
    assert await hedge.run(first, second) == "first"
    assert not second.started.is_set()
    assert hedge.stats()["hedged"] == 0


async def test_a_late_first_attempt_is_overtaken_and_cancelled() -> None:
    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01)
    first, second = Attempt("first"), Attempt("second")
    second.go.set()
    assert await hedge.run(first, second) == "second"
    await hedge.aclose()
    assert first.cancelled
    assert first.finished
    stats = hedge.stats()
    assert (stats["hedged"], stats["won"], stats["cleaning"]) == (1, 1, 0)


async def test_the_first_attempt_still_wins_if_it_answers_before_the_hedge() -> None:
    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01)
    first, second = Attempt("first"), Attempt("second")
    running = asyncio.ensure_future(hedge.run(first, second))
    await second.started.wait()
    first.go.set()
    assert await running == "first"
    await hedge.aclose()
    assert second.cancelled
    assert hedge.stats()["won"] == 0


async def test_past_its_budget_a_call_waits_for_its_one_attempt() -> None:
    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01, budget=no_budget())
    first, second = Attempt("first"), Attempt("second")
    running = asyncio.ensure_future(hedge.run(first, second))
    await asyncio.sleep(0.05)
    assert not second.started.is_set()
    first.go.set()
    assert await running == "first"
    assert hedge.stats()["refused"] == 1


async def test_a_failed_attempt_does_not_win_while_the_other_may_answer() -> None:
    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01)
    first, second = Attempt("first", fail=OSError("reset")), Attempt("second")
    running = asyncio.ensure_future(hedge.run(first, second))
    await second.started.wait()
    first.go.set()
    await asyncio.sleep(0.01)
    assert not running.done()
    second.go.set()
    assert await running == "second"


async def test_when_both_fail_the_first_attempts_error_is_raised() -> None:
    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01)
    first = Attempt("first", fail=OSError("first failed"))
    second = Attempt("second", fail=OSError("second failed"))
    running = asyncio.ensure_future(hedge.run(first, second))
    await second.started.wait()
    second.go.set()
    first.go.set()
    with pytest.raises(OSError, match="first failed"):
        await running


async def test_a_quick_failure_is_raised_at_once_without_a_hedge() -> None:
    hedge: Hedge[str] = Hedge("db", max_delay=10.0)
    first, second = Attempt("first", fail=OSError("refused")), Attempt("second")
    first.go.set()
    with pytest.raises(OSError, match="refused"):
        await hedge.run(first, second)
    assert not second.started.is_set()


@pytest.mark.parametrize("finish_losers", [False, True])
async def test_a_cancelled_call_cancels_both_attempts(finish_losers: bool) -> None:
    """Losers left to finish are a race's: a call its caller cancels cancels its attempts."""
    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01, finish_losers=finish_losers)
    first, second = Attempt("first"), Attempt("second")
    running = asyncio.ensure_future(hedge.run(first, second))
    await second.started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await hedge.aclose()
    assert first.cancelled
    assert second.cancelled


async def test_a_loser_that_ignores_its_cancellation_is_cancelled_again() -> None:
    ignored = asyncio.Event()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            ignored.set()
            await asyncio.sleep(10)  # a clean-up that hangs, as a cancel to a dead server
        return "never"

    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01, grace=0.05)
    second = Attempt("second")
    second.go.set()
    assert await hedge.run(stubborn, second) == "second"
    await ignored.wait()
    async with asyncio.timeout(5):
        await hedge.aclose()
    assert hedge.stats()["cleaning"] == 0


async def test_the_delay_follows_recent_latency_within_its_bounds() -> None:
    hedge: Hedge[str] = Hedge("db", min_delay=0.002, max_delay=0.2, window=64)
    assert hedge.delay == 0.2  # no samples yet: the ceiling
    for _ in range(64):
        hedge.latency.add(0.010)
    assert hedge.delay == pytest.approx(0.010)
    for _ in range(64):
        hedge.latency.add(0.0001)
    assert hedge.delay == 0.002
    for _ in range(64):
        hedge.latency.add(5.0)
    assert hedge.delay == 0.2


def test_the_window_keeps_the_last_samples_and_their_percentile() -> None:
    window = LatencyWindow(size=80, percentile=0.9)  # recomputed every 10 samples
    for value in range(1, 201):
        window.add(value / 1000)
    assert window.value == pytest.approx(0.193)  # of the last 80: 121..200 ms
    assert window.rank(0.160) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="percentile"):
        LatencyWindow(size=100, percentile=1.0)


async def test_without_a_second_attempt_the_call_is_only_timed() -> None:
    hedge: Hedge[str] = Hedge("db")
    first = Attempt("first")
    first.go.set()
    assert await hedge.run(first) == "first"
    assert hedge.stats()["calls"] == 1
    assert hedge.latency.rank(10.0) == 1.0  # its latency was kept


async def test_with_finish_losers_the_overtaken_attempt_runs_to_its_end() -> None:
    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01, finish_losers=True)
    first, second = Attempt("first"), Attempt("second")
    second.go.set()
    assert await hedge.run(first, second) == "second"
    assert hedge.stats()["cleaning"] == 1
    first.go.set()
    await hedge.aclose()
    assert not first.cancelled
    assert first.finished
    assert hedge.stats()["cleaning"] == 0


async def test_a_declined_hedge_spends_nothing_and_is_asked_again_a_delay_later() -> None:
    hedge: Hedge[str] = Hedge("db", min_delay=0.0, max_delay=0.01, budget=no_budget())
    first, second = Attempt("first"), Attempt("second")
    second.go.set()
    asked: list[bool] = []
    third = asyncio.Event()

    def worth_it() -> bool:  # the first attempt is queued twice, then on its way
        asked.append(True)
        if len(asked) == 3:
            third.set()
        return len(asked) >= 3

    running = asyncio.ensure_future(hedge.run(first, second, worth_it=worth_it))
    await third.wait()
    first.go.set()
    assert await running == "first"
    assert not second.started.is_set()  # the third ask was allowed; the budget said no
    stats = hedge.stats()
    assert (stats["declined"], stats["refused"], stats["hedged"]) == (1, 1, 0)
