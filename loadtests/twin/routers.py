"""The guide's database router, for the sync twin: reads from the replica, writes to the
primary. No lag check, no read-your-writes: a read right after a write may miss it, and a
dead replica fails reads until someone edits the settings. The async service's
`resilience_async.Database` routing is the answer to both."""

from __future__ import annotations

from typing import Any

from django.conf import settings


class PrimaryReplicaRouter:
    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "replica" if "replica" in settings.DATABASES else "default"

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == "default"
