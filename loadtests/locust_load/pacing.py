"""The arrival-rate schedule: the total rate over time, and each user's share of it.

wrk2's answer to coordinated omission: every request has an intended send time fixed in
advance by the schedule, never by when the previous answer came. A user that falls behind
sends its late requests back-to-back, and latency is measured from the intended time, so a
server that stalls shows up as latency, not as a quiet gap in the load.

The j-th request of the whole test (j = 0, 1, 2...) is due when the integral of the rate
reaches j; user i of n takes j = i, i + n, i + 2n... so the users' requests interleave evenly.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stage:
    """`duration` seconds of a linear ramp from the previous rate to `rate` (req/s)."""

    duration: float
    rate: float


def parse_stages(text: str) -> tuple[Stage, ...]:
    """`"10:100,30:100,5:0"`: comma-separated `duration_s:target_rate`; empty means none."""
    stages = []
    for number, part in enumerate(filter(None, (p.strip() for p in text.split(","))), 1):
        duration, sep, rate = part.partition(":")
        if not sep:
            raise ValueError(f"stage {number} {part!r} is not duration_s:target_rate")
        stage = Stage(
            duration=_number(duration, f"stage {number} {part!r} duration"),
            rate=_number(rate, f"stage {number} {part!r} rate"),
        )
        if stage.duration <= 0:
            raise ValueError(f"stage {number} {part!r}: duration must be above 0 s")
        stages.append(stage)
    return tuple(stages)


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what} {text.strip()!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number >= 0, not {text.strip()!r}")
    return value


class RateProfile:
    """The total arrival rate r(t) in req/s, t in seconds since the test start.

    Linear from `start_rate` to each stage's rate in turn; after the last stage its rate
    holds (0 means the load is over).

    Args:
        start_rate: req/s at t = 0.
        stages: the ramps that follow.
    """

    def __init__(self, *, start_rate: float, stages: Sequence[Stage] = ()) -> None:
        if not math.isfinite(start_rate) or start_rate < 0:
            raise ValueError(f"start_rate must be a finite number >= 0, not {start_rate!r}")
        self._times = [0.0]
        self._rates = [float(start_rate)]
        self._counts = [0.0]  # requests due before each boundary: the rate's integral
        for stage in stages:
            area = stage.duration * (self._rates[-1] + stage.rate) / 2
            self._counts.append(self._counts[-1] + area)
            self._times.append(self._times[-1] + stage.duration)
            self._rates.append(float(stage.rate))

    @property
    def duration(self) -> float:
        """Seconds until the last stage ends (0 without stages)."""
        return self._times[-1]

    def rate(self, t: float) -> float:
        """req/s at `t`."""
        if t <= 0:
            return self._rates[0]
        if t >= self._times[-1]:
            return self._rates[-1]
        i = bisect_left(self._times, t) - 1
        r0, r1 = self._rates[i], self._rates[i + 1]
        return r0 + (r1 - r0) * (t - self._times[i]) / (self._times[i + 1] - self._times[i])

    def count(self, t: float) -> float:
        """Requests due in [0, t): the integral of the rate."""
        if t <= 0:
            return 0.0
        if t >= self._times[-1]:
            return self._counts[-1] + self._rates[-1] * (t - self._times[-1])
        i = bisect_left(self._times, t) - 1
        return self._counts[i] + (t - self._times[i]) * (self._rates[i] + self.rate(t)) / 2

    def time_of(self, count: float) -> float:
        """The earliest t with `count(t) >= count`; `math.inf` if the load ends before."""
        if count <= 0:
            return 0.0
        last = len(self._counts) - 1
        if count > self._counts[last]:
            extra = count - self._counts[last]
            return self._times[last] + extra / self._rates[last] if self._rates[last] else math.inf
        i = max(bisect_left(self._counts, count) - 1, 0)
        return self._times[i] + self._within(i, count - self._counts[i])

    def _within(self, i: int, due: float) -> float:
        """Seconds into segment i until `due` more requests are due (a quadratic's root)."""
        length = self._times[i + 1] - self._times[i]
        r0, r1 = self._rates[i], self._rates[i + 1]
        slope = (r1 - r0) / length
        # due = r0*dt + slope*dt^2/2, solved in the form that stays exact when slope is ~0.
        root = r0 + math.sqrt(max(r0 * r0 + 2 * slope * due, 0.0))
        return min(2 * due / root, length) if root > 0 else 0.0


@dataclass(frozen=True, slots=True)
class UserSchedule:
    """The intended send times of user `index` of `users`, in unix seconds.

    Args:
        profile: the total rate.
        origin: unix time of the test start (t = 0 of the profile).
        index: this user's number, 0 <= index < users.
        users: how many users share the rate.
    """

    profile: RateProfile
    origin: float
    index: int
    users: int

    def __post_init__(self) -> None:
        if self.users < 1 or not 0 <= self.index < self.users:
            raise ValueError(f"user index {self.index} is not within 0..{self.users - 1}")

    def slot_time(self, k: int) -> float:
        """When this user's k-th request (k = 0, 1...) is due; `math.inf` once the load ends."""
        return self.origin + self.profile.time_of(k * self.users + self.index)

    def first_slot(self, at: float) -> int:
        """The first k due at or after unix time `at` (a user starts at its spawn time)."""
        due = self.profile.count(at - self.origin)
        k = max(math.ceil((due - self.index) / self.users), 0)
        while self.slot_time(k) < at:  # float rounding, or a pause in the rate
            k += 1
        return k
