"""One test in one locust process: what its users share.

The schedule's origin, the total user count and the worker count come from the process that
started the test (the master, or the only process), through locust's parsed options, so
every worker's users fit into one schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from loadtests.locust_load.known import Known
from loadtests.locust_load.options import LoadOptions
from loadtests.locust_load.pacing import RateProfile, UserSchedule
from loadtests.locust_load.records import Record, RecordsWriter


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    token: str | None


@dataclass(frozen=True, slots=True)
class Report:
    id: str
    token: str | None


@dataclass
class Run:
    """The shared state of one test in one process.

    Args:
        options: the load's options.
        origin: unix time the test started (t = 0 of the stages).
        users: users of the whole test, over every worker.
        workers: how many processes run users.
        worker_index: this process's number among them, 0-based.
        writer: where records go, when they are kept.
    """

    options: LoadOptions
    origin: float
    users: int
    workers: int = 1
    worker_index: int = 0
    writer: RecordsWriter | None = None
    orders: Known[Order] = field(default_factory=Known)
    reports: Known[Report] = field(default_factory=Known)
    _spawned: int = field(default=0, init=False)
    _profile: RateProfile = field(init=False)

    def __post_init__(self) -> None:
        if self.users < 1 or self.workers < 1 or not 0 <= self.worker_index < self.workers:
            raise ValueError(
                f"bad run shape: {self.users} users, worker {self.worker_index} of {self.workers}"
            )
        self._profile = self.options.profile(self.users)

    def new_user(self) -> tuple[UserSchedule, random.Random]:
        """The next user's schedule and random source: users of all workers interleave."""
        index = self._spawned * self.workers + self.worker_index
        self._spawned += 1
        # Past the planned count (users added by hand) a user shares an earlier one's slots.
        schedule = UserSchedule(self._profile, self.origin, index % self.users, self.users)
        seed = self.options.seed
        rng = random.Random(f"{seed}/{index}" if seed is not None else None)  # noqa: S311 - load
        return schedule, rng

    def record(self, record: Record) -> None:
        if self.writer is not None:
            self.writer.add(record)
