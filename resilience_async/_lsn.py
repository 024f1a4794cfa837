"""PostgreSQL log sequence numbers (LSNs): the positions consistency tokens are made of.

An LSN is a 64-bit byte position in the write-ahead log, written `XXXXXXXX/XXXXXXXX` (two
hex halves). A replica has applied a commit once its replay position has reached the LSN
that followed the commit on the primary, which is what makes an LSN a consistency token.
"""

from __future__ import annotations

import re

from resilience_async._errors import InvalidLsnError

_MAX_HALF = 0xFFFFFFFF
_LSN = re.compile(r"([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})")


def parse_lsn(text: str) -> int:
    """The LSN written as `X/Y` (hex halves, as `pg_lsn` prints it) as one integer."""
    match = _LSN.fullmatch(text.strip())
    if match is None:
        raise InvalidLsnError(f"not an LSN (expected hex 'X/Y'): {text[:40]!r}")
    return (int(match[1], 16) << 32) | int(match[2], 16)


def format_lsn(lsn: int) -> str:
    """The integer LSN in PostgreSQL's `X/Y` form (what `pg_lsn` accepts back)."""
    if not 0 <= lsn <= (_MAX_HALF << 32 | _MAX_HALF):
        raise InvalidLsnError(f"LSN out of range: {lsn}")
    return f"{lsn >> 32:X}/{lsn & _MAX_HALF:X}"
