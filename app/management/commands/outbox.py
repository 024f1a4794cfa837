"""`manage.py outbox [--json]`: messages committed but not yet published, per actor."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from app.management.cli import age, as_json, database_reached, one_line
from app.operations import outbox_backlog


class Command(BaseCommand):
    help = "Show the outbox backlog: unpublished messages, the oldest one's age, per actor."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def handle(self, *args: Any, **options: Any) -> None:
        with database_reached():
            backlog = outbox_backlog()
        if options["json"]:
            self.stdout.write(as_json(backlog.to_json()))
            return
        if not backlog.actors:
            self.stdout.write("outbox: every message is published")
            return
        self.stdout.write(
            f"outbox: {backlog.messages} message(s) unpublished, "
            f"the oldest for {age(backlog.oldest_seconds)}"
        )
        for each in backlog.actors:
            line = f"  {each.actor:<20} {each.messages:>7}  oldest {age(each.oldest_seconds)}"
            if each.failed_publishes:
                line += f"  {each.failed_publishes} refused by the broker"
                line += f" (last: {one_line(each.last_error or '', 60)})"
            self.stdout.write(line)
