"""The types every part of a link shares: the items a chain carries, and what a toxic's pipe
sees of its stage and of its toxic (protocols, so that the pipes, the toxics and the link
know each other only through this module)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


class End(enum.Enum):
    """The last item a chain carries."""

    CLOSE = "close"  # the source ended (EOF or error): flush, then close the destination
    RESET = "reset"  # reset_peer fired: reset both sockets (RST), dropping what is in flight


@dataclass(slots=True)
class Chunk:
    data: bytes | memoryview  # a slicer passes views: no copy per slice
    stamp: float  # loop time the data was read (a latency toxic delays from here)


Item = Chunk | End


class PipeStage(Protocol):
    """A toxic's place on one link, as its pipe uses it (`link.Stage`)."""

    held: tuple[Item, ...]
    state: dict[str, int]

    async def recv(self) -> Item: ...

    async def send(self, item: Item, *, then: tuple[Item, ...] = ()) -> None: ...


Pipe = Callable[[PipeStage, "ToxicSettings"], Awaitable[None]]


class ToxicKind(Protocol):
    """A toxic type, as a link runs it (`toxics.Kind`)."""

    @property
    def pipe(self) -> Pipe: ...

    @property
    def buffer(self) -> int: ...

    @property
    def closes_on_removal(self) -> bool: ...


class ToxicSettings(Protocol):
    """One toxic, as a link and its pipe read it while data flows (`toxics.Toxic`)."""

    name: str
    attributes: dict[str, int]

    @property
    def kind(self) -> ToxicKind: ...

    def roll(self) -> bool: ...
