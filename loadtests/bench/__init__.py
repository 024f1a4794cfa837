"""Benchmarks: the async service against stock Django and the guide's sync twin, one core each.

`python -m loadtests bench [part ...] [--quick] [--check]` (or `make bench`); each part prints
a table with the ratios measured in that one run, each row against its ceiling (a bare ASGI
app on the same core) with its server's peak RSS, and its targets met or MISSED; it writes
`reports/bench/<part>.json` and a chart, and the run an `index.html` over them all.
"""
