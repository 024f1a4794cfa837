"""Latency-aware server choice: a latency estimate per server, and slow servers ejected.

A replica can be up, caught up and still slow: a sick host, a noisy neighbour, a disk
that stalls. Replay lag does not show it, so reads keep going there and every one of them
waits. Each server here carries peak-EWMAs of its round trips (Finagle's and linkerd's
load balancers): a slower round trip raises an estimate at once, faster ones lower it over
`decay` seconds, so a server that turns slow is seen at once and a recovered one is trusted
again gradually. Reads go to the replica whose reads' estimate, times the reads it already
has in flight plus one, is lowest.

Whether a server is sick is judged on the database monitor's samples alone: the same
query, on every server, at the same moment, every `interval`. Reads' round trips are no
yardstick: measured in the process, they include its own queueing, and the server that
takes most reads would look slowest whenever the process is busy. A replica whose samples'
estimate is both `ratio` times its best peer's and above `floor` seconds for `samples`
samples in a row is ejected for `ejection` seconds, longer each time in a row it is ejected
(up to `max_ejection`), as Envoy's outlier detection does; it takes no reads meanwhile, the
monitor keeps sampling it, and once its time is up it is back if its samples say it is no
longer an outlier, else it is out again.

Where ejected reads go is the caller's choice (`Database`): to the other replicas, then to
the primary within a budget (`primary_share` of its connections), so that one slow replica
cannot move every read onto the primary and slow down the writes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# The database's logger: ejections are the database's news.
logger = logging.getLogger("resilience_async.database")


class PeakEwma:
    """A latency estimate that rises to any slower sample at once and decays towards
    faster ones with time constant `decay` seconds (Finagle's peak EWMA)."""

    __slots__ = ("_stamp", "decay", "value")

    def __init__(self, decay: float, now: float) -> None:
        self.decay = decay
        self.value = 0.0
        self._stamp = now

    def observe(self, seconds: float, now: float) -> None:
        if seconds >= self.value:
            self.value = seconds
        else:
            weight = math.exp(-max(now - self._stamp, 0.0) / self.decay)
            self.value = self.value * weight + seconds * (1.0 - weight)
        self._stamp = now


@dataclass(slots=True)
class ServerLatency:
    """One server's estimates (its reads', the monitor's samples') and ejection record."""

    reads: PeakEwma
    samples: PeakEwma
    slow_samples: int = 0  # in a row, while it takes reads
    ejected_until: float = 0.0
    ejections: int = 0  # in a row: the next ejection lasts this many times `ejection`
    total_ejections: int = 0
    reason: str | None = None  # why it is out, while it is


class LatencyRouting:
    """Per-server latency estimates and outlier ejections, for a `Database`'s reads.

    Args:
        ratio: a server is an outlier once its samples' estimate is this many times its best
            peer's...
        floor: ...and above this many seconds (a server at 3 ms against 1 ms is not sick)...
        samples: ...for this many samples in a row (one slow sample may be a blip).
        decay: seconds over which faster samples pull an estimate down.
        ejection: seconds the first ejection lasts; each one in a row lasts once more.
        max_ejection: seconds an ejection lasts at most.
        primary_share: the fraction of the primary's connections that reads moved off
            slow replicas may hold at once; past it, they go to the slow replica anyway.
        clock: monotonic seconds (a test's fake clock).
        on_eject: told of each ejection (server name, reason) and each return (name, None),
            besides the log line each gets.
    """

    def __init__(
        self,
        *,
        ratio: float = 3.0,
        floor: float = 0.02,
        samples: int = 2,
        decay: float = 1.0,
        ejection: float = 5.0,
        max_ejection: float = 60.0,
        primary_share: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        on_eject: Callable[[str, str | None], None] | None = None,
    ) -> None:
        if ratio <= 1 or floor < 0 or decay <= 0 or not 0 < ejection <= max_ejection:
            raise ValueError(
                "need ratio > 1, floor >= 0, decay > 0 and 0 < ejection <= max_ejection, got "
                f"{ratio}, {floor}, {decay}, {ejection}, {max_ejection}"
            )
        if samples < 1:
            raise ValueError(f"samples must be at least 1, got {samples}")
        if not 0 <= primary_share <= 1:
            raise ValueError(f"primary_share must be within 0..1, got {primary_share}")
        self.ratio = ratio
        self.floor = floor
        self.samples = samples
        self.decay = decay
        self.ejection = ejection
        self.max_ejection = max_ejection
        self.primary_share = primary_share
        self.clock = clock
        self.on_eject = on_eject
        self._servers: dict[str, ServerLatency] = {}
        self._replicas: tuple[str, ...] = ()

    def track(self, primary: str, replicas: Iterable[str]) -> None:
        """Name the servers: the primary is judged against but never ejected."""
        now = self.clock()
        self._replicas = tuple(replicas)
        for name in (primary, *self._replicas):
            self._servers[name] = ServerLatency(PeakEwma(self.decay, now),
                                                PeakEwma(self.decay, now))  # fmt: skip

    def estimate(self, name: str) -> float:
        """Server `name`'s reads' latency estimate (seconds): what ranks the replicas."""
        return self._servers[name].reads.value

    def server(self, name: str) -> ServerLatency:
        return self._servers[name]

    def observe(self, name: str, seconds: float) -> None:
        """A read's round trip of `seconds` on server `name` (ranks it, judges nothing)."""
        self._servers[name].reads.observe(seconds, self.clock())

    def sample(self, name: str, seconds: float) -> None:
        """The monitor's sample of server `name` took `seconds`: a replica that has been an
        outlier for `samples` samples in a row is ejected."""
        server = self._servers[name]
        now = self.clock()
        server.samples.observe(seconds, now)
        if name not in self._replicas or server.ejected_until > now:
            return
        if not self._outlier(name, server, now):
            server.slow_samples = 0
            return
        server.slow_samples += 1
        if server.slow_samples >= self.samples:
            self._eject(name, server, now)

    def ejected(self, name: str) -> bool:
        """Whether replica `name` is out now. A server whose time is up comes back if its
        estimate is no longer an outlier's; else it is ejected again, for longer."""
        server = self._servers[name]
        if not server.ejected_until:
            return False
        now = self.clock()
        if now < server.ejected_until:
            return True
        server.ejected_until = 0.0
        server.slow_samples = 0
        if self._outlier(name, server, now):
            self._eject(name, server, now)
            return True
        server.ejections = 0
        server.reason = None
        logger.info("database %s takes reads again: its latency is back among its peers'", name)
        if self.on_eject is not None:
            self.on_eject(name, None)
        return False

    def _outlier(self, name: str, server: ServerLatency, now: float) -> bool:
        """Whether `name`'s samples are `ratio` times its best peer's and above `floor`."""
        mine = server.samples.value
        if mine <= self.floor:
            return False
        best = self._best_peer(name, now)
        return best is not None and mine >= self.ratio * best

    def _best_peer(self, name: str, now: float) -> float | None:
        """The lowest samples' estimate among the other servers that take reads."""
        peers = [s.samples.value for n, s in self._servers.items()
                 if n != name and not (n in self._replicas and s.ejected_until > now)]  # fmt: skip
        return min(peers) if peers else None

    def _eject(self, name: str, server: ServerLatency, now: float) -> None:
        best = self._best_peer(name, now) or 0.0
        server.ejections += 1
        server.total_ejections += 1
        seconds = min(self.ejection * server.ejections, self.max_ejection)
        server.ejected_until = now + seconds
        server.reason = (f"slow: {server.samples.value * 1000:.0f} ms against "
                         f"{best * 1000:.0f} ms, ejected for {seconds:g} s")  # fmt: skip
        logger.warning("database %s takes no reads for now: %s", name, server.reason)
        if self.on_eject is not None:
            self.on_eject(name, server.reason)

    def stats(self) -> dict[str, dict[str, object]]:
        """Per server: `estimate` (its samples', seconds), `read_estimate` (its reads'),
        `ejected` (the reason, or None) and `ejections` (so far)."""
        now = self.clock()
        return {
            name: {
                "estimate": server.samples.value,
                "read_estimate": server.reads.value,
                "ejected": server.reason if server.ejected_until > now else None,
                "ejections": server.total_ejections,
            }
            for name, server in self._servers.items()
        }
