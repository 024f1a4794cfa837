"""Command line: one run, printed as a one-line summary or as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from loadtests.bench.generator.result import LoadResult
from loadtests.bench.generator.runner import run_load_sync


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        headers = dict(_split_header(raw) for raw in args.header)
        result = run_load_sync(
            args.url,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            method=args.method,
            headers=headers,
            body=None if args.body is None else args.body.encode(),
            timeout=args.timeout,
            max_requests=args.max_requests,
        )
    except ValueError as exc:
        parser.error(str(exc))
    except OSError as exc:  # the host name did not resolve
        print(f"loadgen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps(result.to_dict()) if args.json else format_summary(result))
    return 0


def format_summary(result: LoadResult) -> str:
    """One line a person can compare across runs at a glance."""
    statuses = " ".join(f"{code}={count}" for code, count in result.statuses.items()) or "none"
    errors = " ".join(f"{kind}={n}" for kind, n in result.errors.items() if n) or "none"
    lat = result.latencies_ms
    return (
        f"{result.rps:.0f} req/s ({result.requests} in {result.duration:.2f}s)"
        f" p50 {lat.p50:.2f} ms p99 {lat.p99:.2f} ms max {lat.max:.2f} ms"
        f" | statuses {statuses} | errors {errors}"
    )


def _split_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"header must look like 'Name: value', got {raw!r}")
    return name.strip(), value.strip()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.bench.generator",
        description="Closed-loop HTTP/1.1 load generator (keep-alive, one request in flight "
        "per connection).",
    )
    parser.add_argument("url", help="http:// or https:// URL to request")
    parser.add_argument("--connections", "-c", type=int, default=64)
    parser.add_argument("--duration", "-d", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--method", default="GET")
    parser.add_argument(
        "--header", "-H", action="append", default=[], help="'Name: value', repeatable"
    )
    parser.add_argument("--body", help="request body (UTF-8); adds Content-Length")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-request seconds")
    parser.add_argument("--max-requests", type=int, help="stop after this many responses")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser
