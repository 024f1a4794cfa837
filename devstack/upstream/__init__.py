"""The demo tips upstream: a small HTTP service whose failures can be switched at run time.

Run it with ``python -m devstack.upstream``; drive it with ``UpstreamControl`` or
``AsyncUpstreamControl`` so tests, load scenarios and benchmarks fail it for real.
"""

from __future__ import annotations

from devstack.upstream.behaviour import Mode
from devstack.upstream.control import AsyncUpstreamControl, UpstreamControl

__all__ = ["AsyncUpstreamControl", "Mode", "UpstreamControl"]
