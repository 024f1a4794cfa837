"""Scenarios: a TOML file names the load, the faults and the SLOs of one run.

``spec`` reads and validates the file, the runner drives the stack through it, ``analysis``
turns the request records into per-second series, percentiles and SLO verdicts, and ``report``
writes them as ``report.json`` and one offline ``report.html``.
"""
