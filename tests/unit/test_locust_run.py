"""What a locust process's users share: their schedules, what they created, their retries."""

from __future__ import annotations

import random

from loadtests.locust_load.known import Known
from loadtests.locust_load.mix import Mix
from loadtests.locust_load.options import LoadOptions
from loadtests.locust_load.retries import MAX_ATTEMPTS, OrderAttempt, RetryQueue
from loadtests.locust_load.run import Run

PACED = LoadOptions(mix=Mix({"tips": 1}), start_rate=30.0, seed=7)


def test_users_of_all_workers_interleave_in_one_schedule() -> None:
    """Worker 1 of 2 numbers its users 1, 3, 5: the other worker takes 0, 2, 4."""
    run = Run(PACED, origin=100.0, users=6, workers=2, worker_index=1)
    schedules = [run.new_user()[0] for _ in range(3)]
    assert [s.index for s in schedules] == [1, 3, 5]
    assert schedules[0].slot_time(0) == 100.0 + 1 / 30


def test_users_past_the_planned_count_share_earlier_slots() -> None:
    run = Run(PACED, origin=0.0, users=2)
    assert [run.new_user()[0].index for _ in range(3)] == [0, 1, 0]


def test_a_seed_repeats_each_users_choices() -> None:
    first = Run(PACED, origin=0.0, users=4).new_user()[1]
    again = Run(PACED, origin=0.0, users=4).new_user()[1]
    assert [first.random() for _ in range(5)] == [again.random() for _ in range(5)]


def test_known_items_keep_the_newest_and_pick_among_them() -> None:
    known: Known[int] = Known(limit=3)
    rng = random.Random(1)
    assert known.pick(rng) is None
    for item in range(5):
        known.add(item)
    assert len(known) == 3
    assert {known.pick(rng) for _ in range(100)} == {2, 3, 4}


def test_a_write_with_an_unknown_outcome_is_retried_later_with_its_key() -> None:
    queue = RetryQueue()
    order = OrderAttempt(key="k-1", body=b"{}")
    assert queue.failed(order, 503, at=10.0)
    assert queue.due(10.2) is None  # not before its backoff
    retry = queue.due(10.5)
    assert retry == OrderAttempt(key="k-1", body=b"{}", attempt=2)
    assert queue.failed(retry, 0, at=11.0)  # no response at all: unknown too
    assert queue.due(12.0) == OrderAttempt(key="k-1", body=b"{}", attempt=3)


def test_a_refused_write_or_the_last_attempt_is_not_retried() -> None:
    queue = RetryQueue()
    assert not queue.failed(OrderAttempt(key="k", body=b"{}"), 422, at=0.0)
    assert not queue.failed(OrderAttempt(key="k", body=b"{}", attempt=MAX_ATTEMPTS), 503, at=0.0)
    assert len(queue) == 0
