"""Operators' `manage.py` command over the broker (`workers/dead_letters.py` does the work):

    manage.py deadletters list [--queue Q]                 Dramatiq's dead letters
    manage.py deadletters requeue ID... | --all [--queue Q] back to their queue

It prints lines for people, or one JSON document with `--json`. (`workers` is an installed
app for this command alone; the jobs' data has its commands in `app/management/`.)
"""
