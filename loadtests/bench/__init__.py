"""Benchmarks: the async service against stock Django and the guide's sync twin, one core each.

`python -m loadtests bench [part ...]` (or `make bench`); each part prints a table with the
ratios measured in that one run, and writes `reports/bench/<part>.json`.
"""
