"""`manage.py apikeys create|list|rotate|revoke`: the API keys that may write.

    manage.py apikeys create billing --limit 100/60     prints the key, once
                         [--or-rotate]                   (an existing name: a new key)
    manage.py apikeys list [--json]
    manage.py apikeys rotate billing [--grace 3600]     prints the new key; the old one
                                                         works for --grace seconds more
    manage.py apikeys revoke billing

A key is shown only when it is made: the database keeps its digest. `--quiet` prints the
key alone (for scripts: `API_KEY=$(manage.py apikeys create ci --quiet)`).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError, transaction
from django.utils import timezone

from app.keys import new_key
from app.models import ApiKey

_LIMIT = re.compile(r"([0-9]{1,9})/([0-9]+(?:\.[0-9]+)?)")


def parse_limit(text: str) -> tuple[int, float]:
    """`100/60`: 100 requests per 60 seconds."""
    match = _LIMIT.fullmatch(text.strip())
    if match is None or int(match[1]) < 1 or float(match[2]) <= 0:
        raise CommandError(f"--limit must be REQUESTS/SECONDS, e.g. 100/60, not {text!r}")
    return int(match[1]), float(match[2])


class Command(BaseCommand):
    help = "Create, list, rotate and revoke the API keys that may write."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="make a key and print it (once)")
        create.add_argument("name", help="who holds it (unique)")
        create.add_argument("--limit", help="its own rate limit, REQUESTS/SECONDS")
        create.add_argument("--quiet", action="store_true", help="print the key alone")
        create.add_argument("--or-rotate", action="store_true",
                            help="an existing name gets a new key (no grace)")  # fmt: skip
        listing = actions.add_parser("list", help="every key, without the keys")
        listing.add_argument("--json", action="store_true", help="one JSON array")
        rotate = actions.add_parser("rotate", help="replace a key; print the new one")
        rotate.add_argument("name")
        rotate.add_argument("--grace", type=float, default=0.0,
                            help="seconds the old key keeps working (default 0)")  # fmt: skip
        rotate.add_argument("--quiet", action="store_true", help="print the key alone")
        revoke = actions.add_parser("revoke", help="refuse a key from now on (403)")
        revoke.add_argument("name")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            self._create(options["name"], options["limit"], quiet=options["quiet"],
                         or_rotate=options["or_rotate"])  # fmt: skip
        elif action == "list":
            self._list(as_json=options["json"])
        elif action == "rotate":
            self._rotate(options["name"], options["grace"], quiet=options["quiet"])
        else:
            self._revoke(options["name"])

    def _create(self, name: str, limit: str | None, *, quiet: bool, or_rotate: bool) -> None:
        if not name.strip() or len(name) > 100:
            raise CommandError("name must be 1-100 characters")
        rate_limit, rate_window = parse_limit(limit) if limit else (None, None)
        key, prefix, digest = new_key()
        try:
            with transaction.atomic():
                ApiKey.objects.create(name=name, prefix=prefix, digest=digest,
                                      rate_limit=rate_limit, rate_window=rate_window)  # fmt: skip
        except IntegrityError:
            if not or_rotate:
                raise CommandError(f"an API key named {name!r} exists: rotate it") from None
            ApiKey.objects.filter(name=name).update(revoked_at=None, rate_limit=rate_limit,
                                                    rate_window=rate_window)  # fmt: skip
            self._rotate(name, 0.0, quiet=quiet)
            return
        self._show(key, f"created API key {name!r}", quiet=quiet)

    def _rotate(self, name: str, grace: float, *, quiet: bool) -> None:
        if grace < 0:
            raise CommandError("--grace must be >= 0 seconds")
        key, prefix, digest = new_key()
        with transaction.atomic():
            found = self._named(name, for_update=True)
            if found.revoked_at is not None:
                raise CommandError(f"the API key {name!r} is revoked: create another")
            found.previous_prefix, found.previous_digest = found.prefix, found.digest
            now = timezone.now()
            found.previous_valid_until = now + timedelta(seconds=grace)
            found.prefix, found.digest, found.rotated_at = prefix, digest, now
            found.save()
        self._show(key, f"rotated API key {name!r}; the old one works {grace:g} s more",
                   quiet=quiet)  # fmt: skip

    def _revoke(self, name: str) -> None:
        with transaction.atomic():
            found = self._named(name, for_update=True)
            if found.revoked_at is None:
                found.revoked_at = timezone.now()
                found.save(update_fields=["revoked_at"])
        self.stdout.write(f"revoked API key {name!r}")

    def _list(self, *, as_json: bool) -> None:
        rows = [
            {"name": key.name, "prefix": key.prefix,
             "limit": f"{key.rate_limit}/{key.rate_window:g}" if key.rate_limit else None,
             "created_at": key.created_at.isoformat(),
             "rotated_at": key.rotated_at.isoformat() if key.rotated_at else None,
             "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None}
            for key in ApiKey.objects.order_by("name")
        ]  # fmt: skip
        if as_json:
            self.stdout.write(json.dumps(rows))
            return
        for row in rows:
            state = "revoked" if row["revoked_at"] else "active"
            limit = row["limit"] or "default limit"
            self.stdout.write(f"{row['name']:<30} rdk_{row['prefix']}_…  {state:<8} {limit}")

    def _named(self, name: str, *, for_update: bool = False) -> ApiKey:
        query = ApiKey.objects.select_for_update() if for_update else ApiKey.objects
        try:
            return query.get(name=name)
        except ApiKey.DoesNotExist:
            raise CommandError(f"no API key named {name!r}") from None

    def _show(self, key: str, said: str, *, quiet: bool) -> None:
        if quiet:
            self.stdout.write(key)
            return
        self.stdout.write(f"{said}:\n\n    {key}\n\nIt is shown only now: the database keeps "
                          "its digest, not the key.")  # fmt: skip
