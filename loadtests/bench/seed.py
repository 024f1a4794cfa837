"""The data a benchmark starts from: the schema migrated, orders seeded, the replica caught up."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg

from devstack.stack import Stack
from devstack.stack.supervisor import DEVELOPMENT_KEY, create_api_key
from devstack.stack.waits import StackError
from loadtests.bench.servers import ROOT


def write_headers(stack: Stack) -> dict[str, str]:
    """The headers of a JSON write with the stack's API key (`migrate_and_seed` made it)."""
    return {"Content-Type": "application/json", "Authorization": f"Bearer {stack.env['API_KEY']}"}


def migrate_and_seed(stack: Stack, orders: int) -> None:
    """Migrate the primary, make the API key writes carry (`API_KEY` in the stack's env),
    seed up to `orders` orders (a stack shared by several parts is seeded once), wait until
    the replica has at least as many."""
    env = {**os.environ, **stack.env}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"],
                   cwd=ROOT, env=env, check=True, capture_output=True)  # fmt: skip
    if "API_KEY" not in stack.env:
        stack.env["API_KEY"] = create_api_key(env, DEVELOPMENT_KEY)
    with psycopg.connect(stack.services["primary"]["url"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO orders (item, quantity) SELECT 'seed-' || n, n %% 100 + 1 "
            "FROM generate_series((SELECT count(*) FROM orders) + 1, %s) AS n",
            (orders,),
        )
    if "replica" not in stack.services:
        return
    with psycopg.connect(stack.services["replica"]["url"], autocommit=True) as conn:
        deadline = time.monotonic() + 30
        while conn.execute("SELECT count(*) >= %s FROM orders", (orders,)).fetchone() != (True,):
            if time.monotonic() > deadline:
                raise StackError("the seeded orders did not reach the replica within 30 s")
            time.sleep(0.05)
