"""The demo tips upstream: a small HTTP service whose failures can be switched at run time.

Run it with ``python -m loadtests.upstream``; drive it with ``UpstreamControl`` or
``AsyncUpstreamControl`` so tests, load scenarios and benchmarks fail it for real.
"""

from __future__ import annotations

from loadtests.upstream.behaviour import Mode
from loadtests.upstream.control import AsyncUpstreamControl, UpstreamControl

__all__ = ["AsyncUpstreamControl", "Mode", "UpstreamControl"]
