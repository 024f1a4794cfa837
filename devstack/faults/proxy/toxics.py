"""Toxics as Toxiproxy's API knows them: types, attributes, JSON, and the checks on input.

    {"attributes": {"latency": 500, "jitter": 50}, "name": "latency_downstream",
     "type": "latency", "stream": "downstream", "toxicity": 1}

`stream` is `upstream` (client to server) or `downstream` (the default), `toxicity` the
chance (0..1, default 1) that a connection is affected, rolled per connection. Attributes
are integers; a missing one is 0, as in Go.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.faults.proxy import _decode, pipes
from devstack.faults.proxy._types import Pipe
from devstack.faults.proxy.errors import (
    BadRequestBody,
    InvalidStream,
    InvalidToxicType,
    ToxicAlreadyExists,
)

UPSTREAM, DOWNSTREAM = "upstream", "downstream"


@dataclass(frozen=True)
class Kind:
    """A toxic type: its attributes (in Go's field order), what it does, how it queues."""

    struct: str  # the Go struct, for error messages
    attributes: tuple[str, ...]
    pipe: Pipe
    buffer: int = 1  # chunks queued before it (Toxiproxy buffers 1024 for latency only)
    closes_on_removal: bool = False


KINDS: dict[str, Kind] = {
    "noop": Kind("NoopToxic", (), pipes.noop),
    "latency": Kind("LatencyToxic", ("latency", "jitter"), pipes.latency, buffer=1024),
    "bandwidth": Kind("BandwidthToxic", ("rate",), pipes.bandwidth),
    "slow_close": Kind("SlowCloseToxic", ("delay",), pipes.slow_close),
    "timeout": Kind("TimeoutToxic", ("timeout",), pipes.timeout, closes_on_removal=True),
    "reset_peer": Kind("ResetToxic", ("timeout",), pipes.reset_peer),
    "slicer": Kind("SlicerToxic", ("average_size", "size_variation", "delay"), pipes.slicer),
    "limit_data": Kind("LimitDataToxic", ("bytes",), pipes.limit_data),
}


@dataclass(eq=False)
class Toxic:
    """One toxic of a proxy; its links share it and read its attributes as data flows."""

    name: str
    type: str
    stream: str  # as given (matched without case), as Toxiproxy echoes it
    toxicity: float
    attributes: dict[str, int]

    @property
    def kind(self) -> Kind:
        return KINDS[self.type]

    @property
    def direction(self) -> str:
        return self.stream.lower()

    def roll(self) -> bool:
        """Whether a new connection gets this toxic (else it passes data untouched)."""
        return random.random() < self.toxicity  # noqa: S311 - a fault, not a secret

    def as_json(self) -> dict[str, Any]:
        return {
            "attributes": {key: self.attributes[key] for key in self.kind.attributes},
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": _float32_json(self.toxicity),
        }

    def update(self, body: object) -> None:
        """Apply a toxic update: attributes given replace theirs, `toxicity` likewise; the
        name, type and stream stay (POST/PATCH /proxies/{proxy}/toxics/{toxic})."""
        fields = _decode.as_object(body, "struct { Attributes interface {}; Toxicity float32 }")
        toxicity = _float32(_decode.number(fields, "toxicity", "ToxicWrapper", self.toxicity))
        self.attributes = _attributes(fields.get("attributes"), self.kind, self.attributes)
        self.toxicity = toxicity


def parse_toxic(body: object, taken: Callable[[str], bool]) -> Toxic:
    """A new toxic from a create request, checked in Toxiproxy's order (AddToxicJson)."""
    fields = _decode.as_object(body, "toxics.ToxicWrapper")
    name = _decode.string(fields, "name", "ToxicWrapper", "")
    kind_name = _decode.string(fields, "type", "ToxicWrapper", "")
    stream = _decode.string(fields, "stream", "ToxicWrapper", DOWNSTREAM)
    toxicity = _float32(_decode.number(fields, "toxicity", "ToxicWrapper", 1.0))
    if stream.lower() not in (UPSTREAM, DOWNSTREAM):
        raise InvalidStream
    name = name or f"{kind_name}_{stream}"
    kind = KINDS.get(kind_name)
    if kind is None:
        raise InvalidToxicType
    if taken(name):
        raise ToxicAlreadyExists
    defaults = dict.fromkeys(kind.attributes, 0)
    attributes = _attributes(fields.get("attributes"), kind, defaults)
    return Toxic(name, kind_name, stream, toxicity, attributes)


def _attributes(value: object, kind: Kind, current: dict[str, int]) -> dict[str, int]:
    if value is None:
        return dict(current)
    given = _decode.as_object(value, f"toxics.{kind.struct}")
    where = f"{kind.struct}.attributes"
    return {key: _decode.integer(given, key, where, current[key]) for key in kind.attributes}


def _float32(value: float) -> float:
    """The value as Go's float32 holds it (toxicity is a float32 there)."""
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError as exc:
        raise BadRequestBody(f"json: cannot unmarshal number {value} into float32") from exc


def _float32_json(value: float) -> float | int:
    """How Go prints a float32: the shortest decimal that reads back the same (1, 0.3)."""
    if value.is_integer() and abs(value) < 1e21:
        return int(value)
    for digits in range(1, 10):
        shortest = float(f"{value:.{digits}g}")
        if _float32(shortest) == value:
            return shortest
    return value
