"""Run-time state of the demo upstream: the fault mode it obeys and what it has served.

The mode lives in one small object shared by the tips app and the control app, so a
``PUT /mode`` on the control port changes what the very next tips request sees.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeGuard

DEFAULT_DELAY_MS = 100
DEFAULT_TAIL_MS = 500
DEFAULT_TAIL_EVERY = 50
DEFAULT_STATUS = 503
DEFAULT_SIZE = 512 * 1024 * 1024  # bytes of an oversized answer: what took a worker to 5 GB
MAX_DELAY_MS = 600_000
MAX_SIZE = 1 << 40
_FIELDS = frozenset(
    {"mode", "delay_ms", "status", "size", "chunked", "gzip", "garbage", "jitter_ms", "tail_ms",
     "tail_every"}
)  # fmt: skip


class Mode(StrEnum):
    """How the tips port behaves; the names are the control API's wire values."""

    NORMAL = "normal"
    SLOW = "slow"
    TAIL = "tail"
    ERROR = "error"
    HANG = "hang"
    REFUSE = "refuse"
    OVERSIZED = "oversized"
    GARBAGE = "garbage"


class Garbage(StrEnum):
    """What a 200 in ``garbage`` mode carries instead of the tips."""

    TRUNCATED_JSON = "truncated_json"
    HTML = "html"
    WRONG_SHAPE = "wrong_shape"
    BAD_GZIP = "bad_gzip"


_MODE_VALUES = frozenset(mode.value for mode in Mode)


class InvalidModeChange(ValueError):
    """A mode change request was rejected; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ModeState:
    """One complete mode setting; frozen so readers never see half an update.

    ``delay_ms`` holds a ``slow`` answer, or an ``oversized`` one's body (its headers go at
    once), or every ``tail`` answer, give or take ``jitter_ms`` (uniform), and one answer in
    ``tail_every`` (the first after the switch, then every ``tail_every``-th: a counter, not
    a coin, so a short run sees the same share) ``tail_ms`` more: a latency tail;
    ``status`` is an ``error`` answer's; ``size`` (bytes, as decoded), ``chunked``
    (no Content-Length) and ``gzip`` (a compressed body: a bomb) shape an ``oversized``
    answer; ``garbage`` says what a ``garbage`` 200 carries.
    """

    mode: Mode = Mode.NORMAL
    delay_ms: int = DEFAULT_DELAY_MS
    status: int = DEFAULT_STATUS
    size: int = DEFAULT_SIZE
    chunked: bool = False
    gzip: bool = False
    garbage: Garbage = Garbage.TRUNCATED_JSON
    jitter_ms: int = 0
    tail_ms: int = DEFAULT_TAIL_MS
    tail_every: int = DEFAULT_TAIL_EVERY

    def as_dict(self) -> dict[str, Any]:
        """The control API's JSON shape."""
        return {
            "mode": str(self.mode), "delay_ms": self.delay_ms, "status": self.status,
            "size": self.size, "chunked": self.chunked, "gzip": self.gzip,
            "garbage": str(self.garbage), "jitter_ms": self.jitter_ms, "tail_ms": self.tail_ms,
            "tail_every": self.tail_every,
        }  # fmt: skip


def parse_mode_change(payload: object) -> ModeState:
    """Validate a decoded ``PUT /mode`` body; omitted settings take their defaults."""
    if not isinstance(payload, dict):
        raise InvalidModeChange("body", "expected a JSON object")
    unknown = sorted(str(key) for key in payload if key not in _FIELDS)
    if unknown:
        raise InvalidModeChange(unknown[0], "unknown field")
    return ModeState(
        mode=_parse_mode(payload.get("mode")),
        delay_ms=_parse_delay(payload.get("delay_ms")),
        status=_parse_status(payload.get("status")),
        size=_parse_size(payload.get("size")),
        chunked=_parse_flag("chunked", payload.get("chunked")),
        gzip=_parse_flag("gzip", payload.get("gzip")),
        garbage=_parse_garbage(payload.get("garbage")),
        jitter_ms=_parse_delay(payload.get("jitter_ms"), "jitter_ms", 0),
        tail_ms=_parse_delay(payload.get("tail_ms"), "tail_ms", DEFAULT_TAIL_MS),
        tail_every=_parse_every(payload.get("tail_every")),
    )


def _parse_mode(value: object) -> Mode:
    if value is None:
        raise InvalidModeChange("mode", "is required")
    if not isinstance(value, str) or value not in _MODE_VALUES:
        choices = ", ".join(Mode)
        raise InvalidModeChange("mode", f"must be one of {choices}, got {value!r}")
    return Mode(value)


def _parse_delay(value: object, field: str = "delay_ms", default: int = DEFAULT_DELAY_MS) -> int:
    if value is None:
        return default
    if not _is_int(value) or not 0 <= value <= MAX_DELAY_MS:
        raise InvalidModeChange(field, f"must be an integer 0..{MAX_DELAY_MS}, got {value!r}")
    return value


def _parse_every(value: object) -> int:
    if value is None:
        return DEFAULT_TAIL_EVERY
    if not _is_int(value) or value < 1:
        raise InvalidModeChange("tail_every", f"must be an integer >= 1, got {value!r}")
    return value


def _parse_status(value: object) -> int:
    if value is None:
        return DEFAULT_STATUS
    if not _is_int(value) or not (value == 429 or 500 <= value <= 599):
        raise InvalidModeChange("status", f"must be 429 or an integer 500..599, got {value!r}")
    return value


def _parse_size(value: object) -> int:
    if value is None:
        return DEFAULT_SIZE
    if not _is_int(value) or not 0 <= value <= MAX_SIZE:
        raise InvalidModeChange("size", f"must be an integer 0..{MAX_SIZE} (bytes), got {value!r}")
    return value


def _parse_flag(field: str, value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidModeChange(field, f"must be true or false, got {value!r}")
    return value


def _parse_garbage(value: object) -> Garbage:
    if value is None:
        return Garbage.TRUNCATED_JSON
    if not isinstance(value, str) or value not in {kind.value for kind in Garbage}:
        choices = ", ".join(Garbage)
        raise InvalidModeChange("garbage", f"must be one of {choices}, got {value!r}")
    return Garbage(value)


def _is_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass, but `true` is not a delay or a status.
    return isinstance(value, int) and not isinstance(value, bool)


class Behaviour:
    """The current mode plus a wake-up signal that fires on every change.

    Hung requests wait on ``changed``; each change sets the old event and installs a
    fresh one, so waiters wake exactly once per change and nobody has to poll.
    """

    def __init__(self) -> None:
        self._state = ModeState()
        self._changed = asyncio.Event()
        self.closing = False
        self.answered = 0  # requests seen since the last mode change (``tail``'s counter)

    @property
    def state(self) -> ModeState:
        return self._state

    @property
    def mode(self) -> Mode:
        return self._state.mode

    @property
    def changed(self) -> asyncio.Event:
        """The event the next change will set; capture it before checking the mode."""
        return self._changed

    def set(self, state: ModeState) -> None:
        self._state = state
        self.answered = 0
        self._wake()

    def close(self) -> None:
        """Release every hung request so a shutdown does not wait on them."""
        self.closing = True
        self._wake()

    def _wake(self) -> None:
        fired, self._changed = self._changed, asyncio.Event()
        fired.set()


class Stats:
    """Counters for the tips port, cheap enough to bump on every request."""

    __slots__ = ("in_flight", "max_in_flight", "requests", "responses")

    def __init__(self) -> None:
        self.requests = 0
        self.responses: dict[int, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def reset(self) -> None:
        """Start a new measurement; requests still running stay counted as in flight."""
        self.requests = 0
        self.responses = {}
        self.max_in_flight = self.in_flight

    def as_dict(self) -> dict[str, Any]:
        responses = {str(status): count for status, count in sorted(self.responses.items())}
        return {
            "requests": self.requests,
            "responses": responses,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }
