"""The service's user-facing load, for locust: `locust -f loadtests/locustfile.py --host URL`.

By hand (web UI, or --headless -u N): each user sends --user-rate req/s. With --start-rate
and/or --stages the load is a total arrival rate shared by the users (-u is the concurrency
ceiling). Either way it is paced without coordinated omission: a late user sends at once, and
latency (in locust's stats too) runs from each request's intended send time. Distributed runs
(--master / --worker) take the options given to the master.

Options (locust's --help does not list a locustfile's own; logic in loadtests/locust_load/):
  --records-dir DIR      one JSON line per request, DIR/<host>-<pid>.jsonl (default: none)
  --mix W                endpoint weights (default tips=5,order_create=2,order_read=3,
                         report_create=1,report_poll=1)
  --start-rate R         total req/s at the start (default: none, by hand)
  --stages S             "duration_s:rate,..." linear ramps of the total rate (default: none)
  --user-rate R          req/s per user without a total rate (default 1)
  --request-timeout S    seconds to connect and per read (default 10)
  --seed N               repeatable endpoint choices and payloads (default: random)
"""

from __future__ import annotations

from locust import events

from loadtests.locust_load import hooks
from loadtests.locust_load.user import ServiceUser

__all__ = ["ServiceUser"]  # locust runs the User classes it finds in this module

hooks.install(events)
