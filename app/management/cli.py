"""What the commands share: argument types that name what they refuse, and how ages read."""

from __future__ import annotations

import argparse
import json
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError
from django.db import OperationalError


def positive_seconds(raw: str) -> float:
    """A number of seconds above zero (argparse names the option when it refuses one)."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, got {raw!r}")
    return value


def positive_int(raw: str) -> int:
    """A whole number above zero."""
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0, got {raw!r}")
    return value


def report_id(raw: str) -> uuid.UUID:
    """A report's id: a UUID."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a report id (a UUID), got {raw!r}") from None


def age(seconds: float) -> str:
    """`42 s`, `7 min`, `3.5 h`, `2.0 d`: as long as it needs to be read at a glance."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def as_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True)


def one_line(text: str, width: int = 80) -> str:
    """The first line of `text`, cut to `width` characters."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


@contextmanager
def database_reached() -> Iterator[None]:
    """A database that is down or refuses us is the command's error, not a traceback."""
    try:
        yield
    except OperationalError as exc:
        reason = one_line(str(exc), 200) or type(exc).__name__
        raise CommandError(f"the database (DATABASE_URL) could not be reached: {reason}") from exc
