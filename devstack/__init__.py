"""The local environment every other part stands on: throw-away services on free ports,
the demo upstream they call, and the faults to inject into them.

- `stack/`: PostgreSQL primary + streaming replica, Redis, RabbitMQ when asked, the fault
  proxy in front of them, and (for `serve`) the service's processes, supervised;
- `upstream/`: the demo tips upstream, whose failures are switched at run time;
- `faults/`: process signals, SQL faults, and the Toxiproxy-API fault proxy;
- `cli`: `python -m devstack up [--detach] | down | serve` (`make run` is `serve`).

It starts the service's processes by command line and imports none of its code: the
service, the tests and `loadtests` stand on it, never the other way round.
"""
