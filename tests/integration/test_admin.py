"""The Django admin through the real app (uvicorn, the thread-free handler, PostgreSQL):
migrated, a superuser made with `createsuperuser`, an operator logged in, orders listed, a
failed report run again; and nothing of it when ADMIN_ENABLED is off."""

from __future__ import annotations

import re
import secrets
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.stack import Stack
from devstack.stack.ports import free_port
from tests.helpers import forget_reports
from tests.servers import manage, run_web

pytestmark = pytest.mark.integration

ADMIN = {"ADMIN_ENABLED": "1"}


def csrf_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def migrate(env: dict[str, str]) -> None:
    """`manage.py migrate`, as the stack runs it (the session's API key left as it is)."""
    done = manage(env, "migrate", "--noinput")
    assert done.returncode == 0, done.stdout + done.stderr


def superuser(env: dict[str, str]) -> tuple[str, str]:
    """A new superuser, made as the docs say (`createsuperuser`); its name and password."""
    name, password = f"operator-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    done = manage(env | {"DJANGO_SUPERUSER_PASSWORD": password}, "createsuperuser",
                  "--noinput", "--username", name, "--email", f"{name}@example.com")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return name, password


def failed_report(stack: Stack) -> str:
    report = str(uuid.uuid4())
    with psycopg.connect(stack.env["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("INSERT INTO reports (id, status, error, attempts) VALUES "
                     "(%s, 'failed', 'failed after 3 attempts: upstream_failed (...)', 3)",
                     (report,))  # fmt: skip
    return report


def test_an_operator_logs_in_lists_orders_and_runs_a_failed_report_again(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Login, the order list and the requeue action work through the real app; reports are
    read-only; the API still takes a POST without a CSRF token."""
    env = healthy_stack.env | ADMIN
    migrate(env)  # the contrib apps' tables, beside the service's
    name, password = superuser(env)
    report = failed_report(healthy_stack)
    item = f"admin-tea-{uuid.uuid4().hex[:8]}"
    try:
        with run_web(healthy_stack, tmp_path, **ADMIN) as web:
            client = web.client
            order = client.post("/api/orders", json={"item": item, "quantity": 3})
            anonymous = client.get("/admin/app/order/")
            login_page = client.get("/admin/login/?next=/admin/")
            login = client.post("/admin/login/?next=/admin/", data={
                "username": name, "password": password, "next": "/admin/",
                "csrfmiddlewaretoken": csrf_token(login_page),
            })  # fmt: skip
            orders = client.get("/admin/app/order/", params={"q": item})
            failed = client.get("/admin/app/report/", params={"status__exact": "failed",
                                                              "q": report})  # fmt: skip
            action = client.post("/admin/app/report/", data={
                "action": "requeue_failed", "_selected_action": report, "index": "0",
                "csrfmiddlewaretoken": csrf_token(failed),
            })  # fmt: skip
            after = client.get(action.headers["location"])
            outbox = client.get("/admin/app/outboxmessage/", params={"q": report})
            read_only = client.get(f"/admin/app/report/{report}/change/")
            no_delete = client.post(f"/admin/app/report/{report}/delete/",
                                    data={"post": "yes"})  # fmt: skip
            stylesheet = client.get("/static/admin/css/base.css")
            keys = client.get("/admin/app/apikey/")
        with psycopg.connect(healthy_stack.env["DATABASE_URL"]) as conn:
            status = conn.execute("SELECT status, error FROM reports WHERE id = %s",
                                  (report,)).fetchone()  # fmt: skip
            messages = conn.execute(
                "SELECT actor, sent_at FROM outbox WHERE payload ->> 'report_id' = %s", (report,)
            ).fetchall()
    finally:
        forget_reports(healthy_stack, [report])

    assert order.status_code == 201  # the API's POST needs no CSRF token with the admin on
    assert anonymous.status_code == 302
    assert anonymous.headers["location"].startswith("/admin/login/")
    assert (login.status_code, login.headers["location"]) == (302, "/admin/")
    assert orders.status_code == 200
    assert item in orders.text
    assert report in failed.text
    assert action.status_code == 302
    assert "1 report(s) queued again" in after.text
    assert status == ("queued", "")
    assert messages == [("build_report", None)]  # a new message for the relay to publish
    assert outbox.status_code == 200
    assert report in outbox.text
    assert read_only.status_code == 200
    assert 'name="_save"' not in read_only.text  # viewed, not changed
    assert no_delete.status_code == 403
    assert (stylesheet.status_code, stylesheet.headers["content-type"]) == (200, "text/css")
    assert keys.status_code == 200
    assert ">tests<" in keys.text  # the session's key, by name and prefix, never the key
    assert healthy_stack.env["API_KEY"].split("_")[1] in keys.text
    assert healthy_stack.env["API_KEY"] not in keys.text


def test_with_the_admin_off_there_is_no_admin_and_migrate_still_works(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Off (the default) after it was on: no admin route, no static files; migrations run."""
    migrate(healthy_stack.env | ADMIN)
    migrate(healthy_stack.env)
    with run_web(healthy_stack, tmp_path) as web:
        admin = web.client.get("/admin/")
        static = web.client.get("/static/admin/css/base.css")
        order = web.client.post("/api/orders", json={"item": "no-admin", "quantity": 1})

    assert admin.status_code == 404
    assert "not_found" in admin.text
    assert static.status_code == 404
    assert "Set-Cookie" not in admin.headers
    assert order.status_code == 201


def test_the_admin_answers_503_while_the_database_cannot_be_reached(
    healthy_stack: Stack, tmp_path: Path
) -> None:
    """Nothing listening at DATABASE_URL: a login (which reads the users) is a 503 with
    Retry-After, as the API's writes are, not a 500."""
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/app"
    with run_web(healthy_stack, tmp_path, DATABASE_URL=dead, DATABASE_REPLICA_URLS="",
                 **ADMIN) as web:  # fmt: skip
        login_page = web.client.get("/admin/login/")
        login = web.client.post("/admin/login/", data={
            "username": "anyone", "password": "anything",
            "csrfmiddlewaretoken": csrf_token(login_page),
        })  # fmt: skip
        log = web.child.log_path.read_text()

    assert login_page.status_code == 200  # no query: the form alone
    assert login.status_code == 503
    assert login.headers["Retry-After"] == "5"
    assert "database_unavailable" in login.text
    assert "Traceback" not in log
