"""The service's client as a locust user: paced by the schedule, one endpoint per request.

Each request has an intended send time from the user's schedule; a user that fell behind
(its previous answer came late) sends at once, and the latency reported to locust and to the
records runs from the intended time, so a stalled server shows as latency.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import gevent
from locust import FastHttpUser, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment

from loadtests.locust_load.hooks import run_of
from loadtests.locust_load.mix import FALLBACK
from loadtests.locust_load.records import Record
from loadtests.locust_load.retries import OrderAttempt, RetryQueue
from loadtests.locust_load.run import Order, Report

ITEMS = ("tea", "coffee", "cocoa", "mate", "chai", "matcha")
IDLE = 1.0  # s between looks at a schedule whose load is over
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class Answer:
    """A response as the user needs it: status, body, and the times around it."""

    status: int
    error: str | None
    body: bytes | None
    sent: float
    end: float

    def json(self) -> dict[str, Any]:
        """The body as a JSON object; empty when it is not one."""
        try:
            data = json.loads(self.body or b"")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


class ServiceUser(FastHttpUser):
    """A client of the service: tips, orders (created, then read back) and reports."""

    def __init__(self, environment: Environment) -> None:
        self._run = run_of(environment)
        # geventhttpclient's timeouts: to connect, and for each read of the answer.
        self.network_timeout = self.connection_timeout = self._run.options.request_timeout
        super().__init__(environment)
        self._schedule, self._rng = self._run.new_user()
        self._slot = self._schedule.first_slot(time.time())  # it starts at its spawn time
        self._retries = RetryQueue()
        # Writes need an API key: the stack exports one as API_KEY (`source .stack/env`).
        key = os.environ.get("API_KEY", "")
        self._auth = {"Authorization": f"Bearer {key}"} if key else {}

    def wait_time(self) -> float:
        return 0.0  # the schedule paces the user, not a think time

    @task
    def next_request(self) -> None:
        """Wait for the next intended send time (not at all when late), then send."""
        intended = self._schedule.slot_time(self._slot)
        if intended == math.inf:  # the stages are over: wait for locust to stop the test
            gevent.sleep(IDLE)
            return
        self._slot += 1
        delay = intended - time.time()
        if delay > 0:
            gevent.sleep(delay)
        self._send(intended)

    def _send(self, intended: float) -> None:
        retry = self._retries.due(time.time())
        if retry is not None:
            self._order_create(intended, retry)
            return
        endpoint = self._run.options.mix.choose(self._rng)
        if endpoint == "order_read" and (order := self._run.orders.pick(self._rng)):
            self._order_read(intended, order)
        elif endpoint == "report_poll" and (report := self._run.reports.pick(self._rng)):
            self._report_poll(intended, report)
        elif endpoint == "tips":
            self._tips(intended)
        elif FALLBACK.get(endpoint, endpoint) == "order_create":
            self._order_create(intended, self._new_order())
        else:
            self._report_create(intended)

    def _tips(self, intended: float) -> None:
        answer = self._call("tips", "GET", "/api/tips", intended)
        self._record("tips", intended, answer)

    def _new_order(self) -> OrderAttempt:
        item = {"item": self._rng.choice(ITEMS), "quantity": self._rng.randint(1, 10)}
        return OrderAttempt(key=str(uuid.uuid4()), body=json.dumps(item).encode())

    def _order_create(self, intended: float, order: OrderAttempt) -> None:
        headers = {**JSON_HEADERS, "Idempotency-Key": order.key}
        answer = self._call(
            "order_create", "POST", "/api/orders", intended, body=order.body, headers=headers
        )
        created = answer.json() if answer.status == 201 else {}
        if isinstance(created.get("id"), int):
            self._run.orders.add(Order(created["id"], created.get("consistency_token")))
        else:
            self._retries.failed(order, answer.status, answer.end)
        self._record("order_create", intended, answer, key=order.key, attempt=order.attempt,
                     id=created.get("id"))  # fmt: skip

    def _order_read(self, intended: float, order: Order) -> None:
        headers = {"X-Consistency-Token": order.token} if order.token else None
        path = f"/api/orders/{order.id}"
        answer = self._call("order_read", "GET", path, intended, headers=headers)
        self._record("order_read", intended, answer, id=order.id)

    def _report_create(self, intended: float) -> None:
        body = json.dumps({"item_prefix": self._rng.choice(ITEMS)}).encode()
        answer = self._call(
            "report_create", "POST", "/api/reports", intended, body=body, headers=JSON_HEADERS
        )
        accepted = answer.json() if answer.status == 202 else {}
        if isinstance(accepted.get("id"), str):
            self._run.reports.add(Report(accepted["id"], accepted.get("consistency_token")))
        self._record("report_create", intended, answer, id=accepted.get("id"))

    def _report_poll(self, intended: float, report: Report) -> None:
        headers = {"X-Consistency-Token": report.token} if report.token else None
        path = f"/api/reports/{report.id}"
        answer = self._call("report_poll", "GET", path, intended, headers=headers)
        self._record("report_poll", intended, answer, id=report.id)

    def _call(
        self,
        endpoint: str,
        method: str,
        path: str,
        intended: float,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request; locust's stats get its latency from the intended send time."""
        sent = time.time()
        headers = {**self._auth, **(headers or {})}
        response = self.client.request(method, path, name=endpoint, data=body, headers=headers,
                                       catch_response=True)  # fmt: skip
        end = time.time()
        with response:  # reported to locust's stats on exit: failed when no answer or >= 400
            response.request_meta["start_time"] = intended
            response.request_meta["response_time"] = (end - intended) * 1000
        return _answer(response, sent, end)

    def _record(self, endpoint: str, intended: float, answer: Answer, **fields: Any) -> None:
        self._run.record(Record(endpoint, intended, answer.sent, answer.end, answer.status,
                                answer.error, **fields))  # fmt: skip


def _answer(response: ResponseContextManager, sent: float, end: float) -> Answer:
    status = response.status_code
    if status == 0:
        return Answer(0, _describe(getattr(response, "error", None)), None, sent, end)
    body = response.content
    return Answer(status, _error_code(status, body) if status >= 400 else None, body, sent, end)


def _describe(error: BaseException | None) -> str:
    """`TimeoutError: timed out`: the cause, without geventhttpclient's retry wrapper."""
    if error is None:
        return "no response"
    original = getattr(error, "original", None)
    if isinstance(original, BaseException):
        error = original
    return f"{type(error).__name__}: {error}"[:200]


def _error_code(status: int, body: bytes | None) -> str:
    """`HTTP 503 no_primary`: the status and the error code, when one was sent: the
    service's problem details carry it as `code`, the sync twin's body as `error.code`."""
    try:
        answer = json.loads(body or b"")
        code = answer["code"] if "code" in answer else answer["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"
    return f"HTTP {status} {str(code)[:60]}"
