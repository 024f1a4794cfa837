"""Test-wide set-up: the fixture plugins every test may use (as psycopg's suite does)."""

from __future__ import annotations

pytest_plugins = ["tests.fix_stack", "tests.fix_upstream", "tests.fix_scenarios", "tests.fix_tree"]
