"""Faults to inject into the local stack, each with its undo:

- `signals`: kill, pause, resume or terminate a service's process group; kill worker
  processes under their supervisor;
- `database`: terminate client sessions, pause WAL replay, promote a replica, read its lag;
- `proxy/`: the fault proxy, a server speaking Toxiproxy's HTTP API (network faults);
- `toxiproxy`: a small client of that API.
"""

from __future__ import annotations

from devstack.faults._common import FaultError

__all__ = ["FaultError"]
