"""Operators' `manage.py` commands over the jobs' data (`app/operations.py` does the work):

    manage.py outbox                  the outbox backlog: count, oldest, per actor
    manage.py reports stuck|failed    reports queued or running too long; failed ones
    manage.py reports requeue ID...   failed reports run again, through the outbox
    manage.py apikeys ...             the API keys that may write (commands/apikeys.py)

Each prints lines for people, or one JSON document with `--json`.
"""
