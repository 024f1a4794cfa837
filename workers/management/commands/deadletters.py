"""`manage.py deadletters list|requeue`: Dramatiq's dead letters on the BROKER_URL broker.

    deadletters list [--queue Q] [--limit N]       what each queue's dead letters hold
    deadletters requeue ID... | --all [--queue Q]  fresh copies sent back to their queue

The queues are the actors' (`workers.actors.QUEUES`) unless `--queue` names others.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any

import dramatiq
import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.actors import BUILD_REPORT, QUEUES
from workers.broker import make_broker
from workers.dead_letters import DeadLetter, DeadLetters, dead_letters

REPORTS_NOTE = (
    "note: a report's job leaves a failed report as it is; "
    "`manage.py reports requeue` runs failed reports again"
)
_QUEUE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def queue_name(raw: str) -> str:
    """A Dramatiq queue's name (not its delay or dead-letter queue's)."""
    if not _QUEUE.fullmatch(raw) or raw.endswith((".DQ", ".XQ")):
        raise argparse.ArgumentTypeError(f"must be a queue's name, got {raw!r}")
    return raw


def message_id(raw: str) -> str:
    if not _MESSAGE_ID.fullmatch(raw):
        raise argparse.ArgumentTypeError(f"must be a message id, got {raw!r}")
    return raw


def positive_int(raw: str) -> int:
    if not raw.isdigit() or int(raw) == 0:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0, got {raw!r}")
    return int(raw)


class Command(BaseCommand):
    help = "Show Dramatiq's dead letters, and send them back to their queues."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        listing = actions.add_parser("list", help="the dead letters of each queue")
        listing.add_argument("--limit", type=positive_int, default=50,
                             help="show at most this many per queue (default 50)")  # fmt: skip
        requeue = actions.add_parser("requeue", help="send dead letters back to their queue")
        requeue.add_argument("ids", nargs="*", type=message_id, metavar="ID", help="message ids")
        requeue.add_argument("--all", action="store_true", help="every dead letter")
        for each in (listing, requeue):
            each.add_argument("--queue", type=queue_name, action="append", metavar="QUEUE",
                              help="this queue (repeatable); default: every actor's")  # fmt: skip
            each.add_argument("--json", action="store_true", help="one JSON document")

    def handle(self, *args: Any, **options: Any) -> None:
        queues = options["queue"] or sorted(set(QUEUES.values()))
        if options["action"] == "requeue" and bool(options["ids"]) == options["all"]:
            raise CommandError("requeue: give the message IDs, or --all (not both)")
        broker = make_broker(settings.BROKER_URL)
        try:
            letters = dead_letters(broker)
            if options["action"] == "list":
                self._list(letters, queues, options)
            else:
                self._requeue(letters, queues, options)
        except _unreachable() as exc:
            raise CommandError(f"the broker (BROKER_URL) could not be reached: {exc}") from exc
        finally:
            broker.close()

    def _list(self, letters: DeadLetters, queues: list[str], options: dict[str, Any]) -> None:
        found = {queue: letters.read(queue) for queue in queues}
        if options["json"]:
            document = {queue: [each.to_json() for each in got] for queue, got in found.items()}
            self.stdout.write(json.dumps(document, indent=2, sort_keys=True))
            return
        for queue, got in found.items():
            self.stdout.write(f"{queue}: {len(got)} dead letter(s)")
            for each in got[: options["limit"]]:
                self.stdout.write(f"  {_describe(each)}")

    def _requeue(self, letters: DeadLetters, queues: list[str], options: dict[str, Any]) -> None:
        ids = None if options["all"] else set(options["ids"])
        if ids is not None:
            present = {each.message_id for queue in queues for each in letters.read(queue)}
            if missing := sorted(ids - present):
                raise CommandError(f"ID: no such dead letter in {', '.join(queues)}: "
                                   f"{', '.join(missing)}; nothing requeued")  # fmt: skip
        sent = {queue: letters.requeue(queue, ids) for queue in queues}
        if options["json"]:
            document = {queue: [each.to_json() for each in got] for queue, got in sent.items()}
            self.stdout.write(json.dumps(document, indent=2, sort_keys=True))
            return
        for queue, got in sent.items():
            self.stdout.write(f"{queue}: {len(got)} dead letter(s) sent back to the queue")
            for each in got:
                self.stdout.write(f"  {_describe(each)}")
        if any(each.actor == BUILD_REPORT for got in sent.values() for each in got):
            self.stdout.write(REPORTS_NOTE)


def _unreachable() -> tuple[type[BaseException], ...]:
    """What a broker that is down, frozen or refusing raises (pika's only with pika)."""
    errors: tuple[type[BaseException], ...] = (dramatiq.errors.ConnectionError, redis.RedisError,
                                               OSError)  # fmt: skip
    try:
        import pika.exceptions  # noqa: PLC0415 - installed with the rabbitmq extra

        return (*errors, pika.exceptions.AMQPError)
    except ImportError:
        return errors


def _describe(letter: DeadLetter) -> str:
    arguments = ", ".join(
        [*map(repr, letter.args), *(f"{k}={v!r}" for k, v in letter.kwargs.items())]
    )
    line = f"{letter.message_id}  {letter.actor}({arguments})  {letter.retries} retries"
    if letter.dead_since is not None:
        line += f", dead for {_age(time.time() - letter.dead_since)}"
    return f"{line}  {letter.error[:100]}".rstrip()


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
