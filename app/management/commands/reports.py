"""`manage.py reports stuck|failed|requeue`: the reports whose jobs need an operator.

reports stuck [--older-than S]   queued or running, unchanged for S seconds (default:
                                 JOBS_REPUBLISH_AFTER, when the relay publishes again)
reports failed                   failed, the latest first, with the reason
reports requeue ID... | --all    failed reports run again: queued, with a new outbox
                                 message, committed together (all or none of the IDs)
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from app.management.cli import (
    age,
    as_json,
    database_reached,
    one_line,
    positive_int,
    positive_seconds,
    report_id,
)
from app.operations import Reports, failed_reports, requeue_failed, stuck_reports

DEFAULT_LIMIT = 50


class Command(BaseCommand):
    help = "Show stuck and failed reports; run failed ones again through the outbox."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        stuck = actions.add_parser("stuck", help="queued or running for too long")
        stuck.add_argument(
            "--older-than", type=positive_seconds, metavar="SECONDS",
            default=getattr(settings, "JOBS_REPUBLISH_AFTER", 300.0),
            help="unchanged for this long (default: JOBS_REPUBLISH_AFTER)",
        )  # fmt: skip
        failed = actions.add_parser("failed", help="failed, the latest first")
        for each in (stuck, failed):
            each.add_argument("--limit", type=positive_int, default=DEFAULT_LIMIT,
                              help=f"show at most this many (default {DEFAULT_LIMIT})")  # fmt: skip
        requeue = actions.add_parser("requeue", help="run failed reports again")
        requeue.add_argument("ids", nargs="*", type=report_id, metavar="ID", help="report ids")
        requeue.add_argument("--all", action="store_true", help="every failed report")
        for each in (stuck, failed, requeue):
            each.add_argument("--json", action="store_true", help="one JSON document")

    def handle(self, *args: Any, **options: Any) -> None:
        with database_reached():
            self._act(options)

    def _act(self, options: dict[str, Any]) -> None:
        action = options["action"]
        if action == "requeue":
            self._requeue(options)
            return
        if action == "stuck":
            found = stuck_reports(options["older_than"], limit=options["limit"])
            title = f"stuck (queued or running, unchanged for {age(options['older_than'])})"
        else:
            found = failed_reports(limit=options["limit"])
            title = "failed"
        if options["json"]:
            self.stdout.write(as_json(found.to_json()))
        else:
            self._show(title, found)

    def _show(self, title: str, found: Reports) -> None:
        shown = f", {len(found.reports)} shown" if len(found.reports) < found.total else ""
        self.stdout.write(f"{found.total} report(s) {title}{shown}")
        for each in found.reports:
            self.stdout.write(
                f"  {each.id}  {each.status:<8} {each.attempts:>2} attempt(s)  "
                f"unchanged for {age(each.idle_seconds)}  {one_line(each.error, 70)}".rstrip()
            )

    def _requeue(self, options: dict[str, Any]) -> None:
        ids = options["ids"]
        if bool(ids) == options["all"]:
            raise CommandError("requeue: give the report IDs, or --all (not both)")
        with transaction.atomic():  # an ID that is not failed undoes them all
            outcome = requeue_failed(None if options["all"] else ids)
            if outcome.refused:
                refused = ", ".join(f"{each} ({why})" for each, why in outcome.refused.items())
                raise CommandError(f"ID: not failed, nothing requeued: {refused}")
        if options["json"]:
            self.stdout.write(as_json(outcome.to_json()))
            return
        self.stdout.write(f"{len(outcome.requeued)} report(s) queued again, through the outbox")
        for each in outcome.requeued:
            self.stdout.write(f"  {each}")
