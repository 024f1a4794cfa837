"""What a scenario file says, as frozen dataclasses; times in seconds, rates in req/s."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENDPOINTS = ("tips", "order_create", "order_read", "report_create", "report_poll")
ALL = "*"  # an SLO's endpoint: every endpoint together
# An SLO's endpoint may name a group: what a retry may resend decides where an error counts.
# The load's order writes always carry an Idempotency-Key; its report writes never do.
GROUPS: Mapping[str, tuple[str, ...]] = {
    "reads": ("tips", "order_read", "report_poll"),
    "idempotent_writes": ("order_create",),
    "other_writes": ("report_create",),
}
SERVICES = ("primary", "replica", "redis", "broker", "upstream", "web", "worker", "relay")
LEADER = "leader"  # a Patroni stack's leader, whichever member it is when the fault starts
TARGETS = (*SERVICES, LEADER)
PROXIED = ("primary", "replica", "redis", "broker", "upstream")
KIND_TARGETS: Mapping[str, tuple[str, ...]] = {
    "toxic": PROXIED,
    "kill": TARGETS,
    "pause": TARGETS,
    "stop": SERVICES,
    "switchover": (LEADER,),
    "promote": ("replica",),
    "pause_replay": ("replica",),
    "terminate_backends": ("primary", "replica"),
    "upstream_mode": ("upstream",),
    "proxy_down": PROXIED,
    # Several web instances behind HAProxy (system.instances >= 2).
    "kill_instance": ("web",),
    "rolling_restart": ("web",),
    # Nothing is done to the system: it names the window in which the load's stages surge,
    # so that SLOs can refer to it (its "during" and "after" phases, a recovery after it).
    "surge": ("web",),
}
BALANCED_KINDS = ("kill_instance", "rolling_restart")
FAULT_KINDS = tuple(KIND_TARGETS)
# The toxics of Toxiproxy (and of devstack.faults.proxy, which speaks its API).
TOXIC_TYPES = (
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
)
DEFAULT_MIX: Mapping[str, float] = {
    "tips": 5,
    "order_create": 2,
    "order_read": 3,
    "report_create": 1,
    "report_poll": 1,
}
BROKERS = ("redis", "rabbitmq")


def is_error(status: int, statuses: tuple[int, ...] | None = None) -> bool:
    """Whether a response status counts as an error; by default no response (0) or a 5xx."""
    if statuses is None:
        return status == 0 or status >= 500
    return status in statuses


@dataclass(frozen=True)
class Stage:
    """Ramp linearly from the previous rate to `rate` (req/s) over `duration` seconds."""

    duration: float
    rate: float


@dataclass(frozen=True)
class Load:
    users: int
    start_rate: float
    stages: tuple[Stage, ...]
    mix: Mapping[str, float]
    request_timeout: float = 10.0
    spawn_rate: float | None = None  # users started per second; None: all within a second
    seed: int | None = None

    @property
    def duration(self) -> float:
        return sum(stage.duration for stage in self.stages)

    def rate_at(self, t: float) -> float:
        """The scheduled total arrival rate (req/s) `t` seconds into the run."""
        previous, begin = self.start_rate, 0.0
        for stage in self.stages:
            if t < begin + stage.duration:
                return previous + (stage.rate - previous) * (t - begin) / stage.duration
            previous, begin = stage.rate, begin + stage.duration
        return previous


@dataclass(frozen=True)
class System:
    web_workers: int = 2  # per instance
    env: Mapping[str, str] = field(default_factory=dict)
    broker: str = "redis"
    synchronous_commit: str = "local"  # "on" / "remote_apply": the replica is synchronous
    ha: str = "none"  # "patroni": etcd + Patroni members (STACK_HA=patroni sets it too)
    instances: int = 1  # >= 2: that many web servers behind HAProxy


@dataclass(frozen=True)
class Fault:
    """A fault applied at `start` and undone `duration` seconds later (None: at the end)."""

    name: str
    kind: str
    target: str
    start: float
    duration: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def end(self, run_duration: float) -> float:
        return run_duration if self.duration is None else self.start + self.duration


@dataclass(frozen=True)
class ErrorSlo:
    """At most `max_error_rate` of `endpoint`'s requests in `phase` are errors."""

    endpoint: str
    phase: str
    max_error_rate: float
    error_statuses: tuple[int, ...] | None = None


@dataclass(frozen=True)
class LatencySlo:
    """The 99th percentile latency (s) of `endpoint`'s requests in `phase` is at most `p99`;
    of those answered with one of `statuses` only, when given (the served ones, or the
    refusals)."""

    endpoint: str
    phase: str
    p99: float
    statuses: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RecoverySlo:
    """Within `max_seconds` of the fault's end, `window` seconds in a row stay under the rate."""

    fault: str
    endpoint: str
    max_error_rate: float
    max_seconds: float
    window: float = 3.0
    error_statuses: tuple[int, ...] | None = None


@dataclass(frozen=True)
class FirstWriteSlo:
    """The first write acknowledged after a leader fault's new leader ran comes within
    `max_seconds` of the fault's start (of another fault: the first after its start).

    Not scaled by `--scale`: a failover's length is the cluster's (Patroni's TTL), not the
    scenario's.
    """

    fault: str
    max_seconds: float
    endpoint: str = "order_create"


Slo = ErrorSlo | LatencySlo | RecoverySlo | FirstWriteSlo


@dataclass(frozen=True)
class Invariants:
    """Limits on what the data must show after the run (checked by the runner's invariants)."""

    orders_lost: int = 0
    orders_phantom: int = 0
    reports_lost: int = 0
    # Upstream calls beyond one per tips request during the `upstream_mode` faults, as a
    # fraction of the tips requests (None: not checked).
    max_extra_upstream_calls: float | None = None

    def limits(self) -> dict[str, int]:
        """The limits on the data (the upstream's calls are checked apart)."""
        return {"orders_lost": self.orders_lost, "orders_phantom": self.orders_phantom,
                "reports_lost": self.reports_lost}  # fmt: skip


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    path: Path
    load: Load
    system: System
    faults: tuple[Fault, ...]
    slos: tuple[Slo, ...]
    invariants: Invariants
    scale: float = 1.0
    min_scale: float = 0.0  # below it the faults cannot play out (a Patroni TTL is fixed)
    source: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def duration(self) -> float:
        return self.load.duration

    def fault(self, name: str) -> Fault:
        for fault in self.faults:
            if fault.name == name:
                return fault
        raise KeyError(f"no fault named {name!r} in scenario {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the effective (scaled) values, plus the file's text as given."""
        effective = asdict(self)
        effective["path"] = str(self.path)
        effective["duration"] = self.duration
        del effective["source"]
        for slo, raw in zip(effective["slos"], self.slos, strict=True):
            slo["type"] = type(raw).__name__
        return {**effective, "source": dict(self.source)}
