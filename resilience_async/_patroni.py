"""Patroni's view of a cluster: who holds the leader lock, who is a running replica.

The topology monitor reads `GET /cluster` from any member's REST API (every member serves
the whole cluster as its store, etcd or other, has it) once per sampling round. The
answer's fields, as Patroni 3 and 4 write them: `members`, each with `name`, `role`
(`leader`, `standby_leader`, `sync_standby`, `quorum_standby`, `replica`), `state`
(`running`, `streaming`, `in archive recovery`, `stopped`, `starting`...), `host` and
`port` (its PostgreSQL `connect_address`) and, for all but the leader, `lag` in bytes
behind the leader, or the string `unknown`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

Address = tuple[str, int]
READABLE_ROLES = frozenset({"replica", "sync_standby", "quorum_standby"})
READABLE_STATES = frozenset({"running", "streaming"})


class PatroniError(ValueError):
    """A `/cluster` answer that is not the document Patroni writes."""


@dataclass(frozen=True, slots=True)
class PatroniMember:
    """One member as Patroni lists it; `lag` in bytes, None when unknown (or the leader)."""

    name: str
    role: str
    state: str
    host: str | None
    port: int | None
    lag: int | None

    @property
    def address(self) -> Address | None:
        return None if self.host is None or self.port is None else (self.host, self.port)

    @property
    def leads(self) -> bool:
        """Holds the leader lock and runs as a writable primary."""
        return self.role == "leader" and self.state == "running"

    @property
    def readable(self) -> bool:
        """A replica that runs (and streams): one reads may go to."""
        return self.role in READABLE_ROLES and self.state in READABLE_STATES

    def describe(self) -> str:
        return f"Patroni lists {self.name} as {self.role} ({self.state or 'no state'})"


@dataclass(frozen=True, slots=True)
class ClusterView:
    members: tuple[PatroniMember, ...]

    @property
    def leader(self) -> PatroniMember | None:
        return next((member for member in self.members if member.leads), None)

    def find(self, addresses: Iterable[Address | None]) -> PatroniMember | None:
        """The member at any of `addresses` (as dialled, or as the server reports itself)."""
        wanted = {address for address in addresses if address is not None}
        return next((m for m in self.members if m.address in wanted), None)


def parse_cluster(document: Any) -> ClusterView:
    """The members of a `/cluster` answer (already decoded from JSON)."""
    if not isinstance(document, dict) or not isinstance(document.get("members"), list):
        raise PatroniError("a /cluster answer needs a list of members")
    members = []
    for entry in document["members"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise PatroniError(f"a /cluster member needs a name: {entry!r}")
        port = entry.get("port")
        lag = entry.get("lag")
        members.append(
            PatroniMember(
                name=entry["name"],
                role=str(entry.get("role", "")),
                state=str(entry.get("state", "")),
                host=entry["host"] if isinstance(entry.get("host"), str) else None,
                port=port if isinstance(port, int) else None,
                lag=lag if isinstance(lag, int) and not isinstance(lag, bool) else None,
            )
        )
    return ClusterView(tuple(members))


class PatroniSource:
    """Asks the members' REST APIs for `/cluster` in turn, the last one that answered first.

    Args:
        urls: each member's REST API base URL (`http://host:8008`).
        timeout: seconds one member may take to answer.
    """

    def __init__(self, urls: Sequence[str], *, timeout: float = 1.0) -> None:
        if not urls:
            raise ValueError("PatroniSource needs at least one REST API URL")
        self.urls = [url.rstrip("/") for url in urls]
        self._client = httpx.AsyncClient(timeout=timeout)
        self._first = 0
        self.error: str | None = None

    async def fetch(self) -> ClusterView | None:
        """The view of the first member that answers; None (and `error`) when none does."""
        errors = []
        for offset in range(len(self.urls)):
            index = (self._first + offset) % len(self.urls)
            url = self.urls[index]
            try:
                response = await self._client.get(f"{url}/cluster")
                response.raise_for_status()
                view = parse_cluster(response.json())
            except (httpx.HTTPError, ValueError) as exc:
                errors.append(f"{url}: {str(exc) or type(exc).__name__}")
                continue
            self._first, self.error = index, None
            return view
        self.error = "; ".join(errors)
        return None

    async def aclose(self) -> None:
        await self._client.aclose()
