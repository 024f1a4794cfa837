"""What every primitive that calls hooks shares: the tuple of them, read back and added to."""

from __future__ import annotations

from typing import Generic, TypeVar

H = TypeVar("H")


class Hooked(Generic[H]):
    """Holds a primitive's hooks; the primitive calls them (`for hook in self._hooks`)."""

    _hooks: tuple[H, ...] = ()

    @property
    def hooks(self) -> tuple[H, ...]:
        """The hooks told of this object's events, in the order they were given."""
        return self._hooks

    def add_hook(self, hook: H) -> None:
        self._hooks = (*self._hooks, hook)
