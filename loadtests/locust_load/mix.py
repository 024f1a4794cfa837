"""The endpoint mix: which endpoint each request goes to, by weight."""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from collections.abc import Mapping
from itertools import accumulate

ENDPOINTS = ("tips", "order_create", "order_read", "report_create", "report_poll")
DEFAULT_MIX = "tips=5,order_create=2,order_read=3,report_create=1,report_poll=1"
# A read needs something this process created: until then the request creates one instead.
FALLBACK = {"order_read": "order_create", "report_poll": "report_create"}


class Mix:
    """Endpoint weights; `choose` draws one endpoint in proportion to them.

    Args:
        weights: endpoint -> weight >= 0 (endpoints left out weigh 0); at least one above 0.
    """

    def __init__(self, weights: Mapping[str, float]) -> None:
        for endpoint, weight in weights.items():
            if endpoint not in ENDPOINTS:
                raise ValueError(f"unknown endpoint {endpoint!r} (known: {', '.join(ENDPOINTS)})")
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"weight of {endpoint} must be a finite number >= 0")
        self.weights = {name: float(weights.get(name, 0)) for name in ENDPOINTS}
        self._endpoints = [name for name in ENDPOINTS if self.weights[name] > 0]
        if not self._endpoints:
            raise ValueError("at least one endpoint needs a weight above 0")
        self._bounds = list(accumulate(self.weights[name] for name in self._endpoints))

    @classmethod
    def parse(cls, text: str) -> Mix:
        """`"tips=5,order_create=2"`: comma-separated `endpoint=weight`."""
        weights: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, sep, value = (s.strip() for s in part.partition("="))
            if not sep:
                raise ValueError(f"{part!r} is not endpoint=weight")
            if name in weights:
                raise ValueError(f"{name} is given twice")
            try:
                weights[name] = float(value)
            except ValueError:
                raise ValueError(f"weight of {name} {value!r} is not a number") from None
        return cls(weights)

    def choose(self, rng: random.Random) -> str:
        """One endpoint, drawn with `rng` (seeded, the sequence repeats)."""
        drawn = bisect_right(self._bounds, rng.random() * self._bounds[-1])
        return self._endpoints[min(drawn, len(self._endpoints) - 1)]  # in case it rounds up

    def __repr__(self) -> str:
        shown = ",".join(f"{name}={self.weights[name]:g}" for name in self._endpoints)
        return f"Mix({shown!r})"
