"""What every fault shares: its error, and how victims are picked."""

from __future__ import annotations

import random
from typing import TypeVar

T = TypeVar("T")


class FaultError(RuntimeError):
    """A fault could not be applied or undone; the message names the fault and its target."""


def check_count(count: int | None) -> None:
    if count is not None and count < 1:
        raise ValueError(f"count: at least 1 (or None for every one), not {count}")


def pick(items: list[T], count: int | None, rng: random.Random | None) -> list[T]:
    if count is None or count >= len(items):
        return list(items)
    return (rng or random.Random()).sample(items, count)  # noqa: S311 - not for secrets
