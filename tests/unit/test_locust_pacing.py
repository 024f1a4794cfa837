"""The arrival-rate schedule: the rate's integral, its inverse, and each user's share."""

from __future__ import annotations

import math
import re

import pytest

from loadtests.locust_load.pacing import RateProfile, Stage, UserSchedule, parse_stages

RAMPS = RateProfile(start_rate=20, stages=parse_stages("10:100,30:100,5:0"))


def test_stages_parse_as_duration_and_target_rate() -> None:
    """`duration_s:rate` pairs, spaces and a trailing comma allowed; empty means none."""
    assert parse_stages(" 10:100, 30:100.5,5:0,") == (Stage(10, 100), Stage(30, 100.5), Stage(5, 0))
    assert parse_stages("") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", "stage 1 '10' is not duration_s:target_rate"),
        ("10:5,x:5", "stage 2 'x:5' duration 'x' is not a number"),
        ("10:-1", "stage 1 '10:-1' rate must be a finite number >= 0, not '-1'"),
        ("10:inf", "stage 1 '10:inf' rate must be a finite number >= 0, not 'inf'"),
        ("0:5", "stage 1 '0:5': duration must be above 0 s"),
    ],
)
def test_a_bad_stage_is_named_in_the_error(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_stages(text)


def test_a_constant_rate_is_due_evenly() -> None:
    profile = RateProfile(start_rate=40)
    assert profile.count(2.5) == 100
    assert profile.time_of(100) == 2.5
    assert profile.rate(1e6) == 40
    assert profile.duration == 0


def test_linear_ramps_integrate_to_trapezoids() -> None:
    """20 -> 100 req/s over 10 s is 600 requests; 30 s at 100 is 3000; 100 -> 0 over 5 s, 250."""
    assert RAMPS.count(10) == 600
    assert RAMPS.count(40) == 3600
    assert RAMPS.count(45) == 3850
    assert RAMPS.count(5) == pytest.approx(5 * (20 + 60) / 2)
    assert RAMPS.rate(5) == 60
    assert RAMPS.rate(42.5) == 50
    assert RAMPS.duration == 45


def test_time_of_inverts_count_through_ramps_up_flat_and_down() -> None:
    for due in [0.5, 1, 17, 599.9, 600, 601, 2000, 3600, 3700, 3849.99, 3850]:
        assert RAMPS.count(RAMPS.time_of(due)) == pytest.approx(due, abs=1e-6)


def test_once_the_rate_reaches_zero_nothing_more_is_due() -> None:
    assert RAMPS.count(1000) == 3850
    assert RAMPS.time_of(3850.5) == math.inf


def test_a_ramp_from_zero_starts_slowly() -> None:
    """0 -> 10 req/s over 10 s: the first request is due at t = 0, the 5th at sqrt(10) s."""
    profile = RateProfile(start_rate=0, stages=[Stage(10, 10)])
    assert profile.time_of(0) == 0
    assert profile.time_of(5) == pytest.approx(math.sqrt(10))


def test_users_take_turns_so_their_requests_interleave_evenly() -> None:
    """The union of every user's slots is the whole schedule, each request exactly once."""
    users = [UserSchedule(RAMPS, origin=1000.0, index=i, users=3) for i in range(3)]
    mine = sorted((user.slot_time(k), user.index) for user in users for k in range(200))
    assert [t for t, _ in mine] == [1000.0 + RAMPS.time_of(j) for j in range(600)]
    assert [i for _, i in mine[:6]] == [0, 1, 2, 0, 1, 2]


def test_each_user_paces_at_its_share_of_the_rate() -> None:
    """40 req/s over 4 users: each user every 0.1 s, offset by 25 ms from the previous one."""
    profile = RateProfile(start_rate=40)
    second = UserSchedule(profile, origin=0.0, index=1, users=4)
    assert [second.slot_time(k) for k in range(3)] == pytest.approx([0.025, 0.125, 0.225])


def test_a_user_starts_at_its_first_slot_after_its_spawn() -> None:
    """A user spawned late skips the slots before its spawn instead of sending them at once."""
    user = UserSchedule(RateProfile(start_rate=40), origin=100.0, index=1, users=4)
    k = user.first_slot(102.5)
    assert user.slot_time(k) >= 102.5
    assert user.slot_time(k - 1) < 102.5
    assert user.first_slot(50.0) == 0


def test_a_user_spawned_after_the_load_ends_has_nothing_to_send() -> None:
    user = UserSchedule(RAMPS, origin=0.0, index=0, users=2)
    assert user.slot_time(user.first_slot(60.0)) == math.inf


def test_bad_profiles_and_users_are_refused() -> None:
    with pytest.raises(ValueError, match="start_rate must be a finite number >= 0"):
        RateProfile(start_rate=-1)
    with pytest.raises(ValueError, match=r"user index 3 is not within 0\.\.2"):
        UserSchedule(RAMPS, origin=0.0, index=3, users=3)
