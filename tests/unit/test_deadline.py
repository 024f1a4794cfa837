"""firm_timeout: a timeout whose cancellation cannot be held up by the code it cancels
(psycopg waits up to 10 s for a server-side cancel that a black-holed server never answers)."""

from __future__ import annotations

import asyncio

import pytest

from resilience_async._deadline import firm_timeout


async def stubborn(log: list[str]) -> None:
    """Like psycopg on cancellation: cleans up (here: for an hour) before giving in."""
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        log.append("cancelled")
        try:
            await asyncio.sleep(3600)  # the server-side cancel that never answers
        except asyncio.CancelledError:
            log.append("clean-up cut short")
            raise
        raise


async def test_a_body_that_holds_up_its_cancellation_is_cut_short() -> None:
    log: list[str] = []
    with pytest.raises(TimeoutError, match=r"no answer within 0\.05 s"):
        async with firm_timeout(0.05, grace=0.05):
            await stubborn(log)
    assert log == ["cancelled", "clean-up cut short"]
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # nothing left pending for whoever awaits next


async def test_a_body_that_gives_in_at_once_times_out_like_asyncio() -> None:
    with pytest.raises(TimeoutError):
        async with firm_timeout(0.01, grace=60):
            await asyncio.sleep(3600)


async def test_a_quick_body_is_not_touched_later() -> None:
    async with firm_timeout(0.02, grace=0.02):
        await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # past both deadlines: no stray cancellation arrives


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    log: list[str] = []

    async def request() -> None:
        async with firm_timeout(3600, grace=0.01):
            await stubborn(log)

    task = asyncio.create_task(request())
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.01)
    task.cancel()  # the caller insists: stubborn's clean-up is interrupted
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["cancelled", "clean-up cut short"]
