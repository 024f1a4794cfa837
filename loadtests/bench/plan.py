"""How long and how hard a bench part measures, and whether it runs its quick subset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Plan:
    """A part's measuring settings.

    Args:
        duration: measured seconds per measurement.
        warmup: unmeasured seconds before each one.
        connections: concurrent connections (a part that names its own loads ignores it).
        rounds: turns per server; each row shows its median round.
        quick: the smoke test's subset: fewer scenarios and servers where a part has many,
            always one async and one sync server where it compares them.
    """

    duration: float = 5.0
    warmup: float = 1.0
    connections: int = 64
    rounds: int = 3
    quick: bool = False

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.connections < 1:
            raise ValueError(f"rounds and connections must be at least 1: {self}")
        if self.duration <= 0 or self.warmup < 0:
            raise ValueError(f"duration must be positive and warmup not negative: {self}")

    def load(self) -> dict[str, Any]:
        """The load generator's keyword arguments for this plan."""
        return {"connections": self.connections, "duration": self.duration,
                "warmup": self.warmup}  # fmt: skip


FULL = Plan()
QUICK = Plan(duration=0.3, warmup=0.1, connections=16, rounds=1, quick=True)
