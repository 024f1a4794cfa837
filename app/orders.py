"""Orders: written on the primary, read from the freshest replica that has the caller's writes.

SQL runs on the async pools of `resilience_async.Database` (no ORM, no thread hop); the schema is
Django's (`app/models.py`). A create with an idempotency key is one statement: the order and
its key row commit together or not at all, so a retried request can never create twice.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from app import idempotency
from app.idempotency import Created
from app.schemas import NewOrder
from resilience_async import Connection, Database, ReadResult, WriteResult

SCOPE = "orders"
_INSERT = """
INSERT INTO orders (item, quantity) VALUES (%s, %s) RETURNING id, item, quantity, created_at
"""
# The key row is inserted from the order's row in the same statement: a key that exists
# already raises a unique violation and the whole statement (the order too) rolls back.
_INSERT_WITH_KEY = """
WITH created AS (
    INSERT INTO orders (item, quantity) VALUES (%(item)s, %(quantity)s)
    RETURNING id, item, quantity, created_at
), claimed AS (
    INSERT INTO idempotency_keys (scope, key, fingerprint, resource_id)
    SELECT %(scope)s, %(key)s, %(fingerprint)s, id::text FROM created
)
SELECT id, item, quantity, created_at FROM created
"""
_SELECT_ONE = "SELECT id, item, quantity, created_at FROM orders WHERE id = %s"
_SELECT_PAGE = "SELECT id, item, quantity, created_at FROM orders ORDER BY id DESC LIMIT %s"
_SELECT_PAGE_BEFORE = (
    "SELECT id, item, quantity, created_at FROM orders WHERE id < %s ORDER BY id DESC LIMIT %s"
)


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    item: str
    quantity: int
    created_at: datetime.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "item": self.item,
            "quantity": self.quantity,
            "created_at": self.created_at.isoformat(),
        }


class OrderService:
    """Orders on the database: writes on the primary, reads where the caller's token allows.

    Args:
        database: the service's `Database` (primary and replica pools, routing).
        key_ttl: seconds an idempotency key is remembered.
    """

    def __init__(self, *, database: Database, key_ttl: float) -> None:
        self._database = database
        self._key_ttl = key_ttl

    async def create(
        self, new: NewOrder, *, idempotency_key: str | None
    ) -> WriteResult[Created[Order]]:
        """Commit the order on the primary; with a key, at most once per key and request."""
        if idempotency_key is None:
            return await self._database.write(lambda conn: _insert(conn, new))
        key, ttl = idempotency_key, self._key_ttl
        return await self._database.write(lambda conn: _insert_once(conn, new, key, ttl))

    async def get(self, order_id: int, *, token: str | None) -> ReadResult[Order | None]:
        return await self._database.read(lambda conn: _select_one(conn, order_id), token=token)

    async def page(
        self, limit: int, before: int | None, *, token: str | None
    ) -> ReadResult[list[Order]]:
        """Newest first; `before` is the last id of the previous page (keyset pagination)."""
        return await self._database.read(
            lambda conn: _select_page(conn, limit, before), token=token
        )


async def _insert(conn: Connection, new: NewOrder) -> Created[Order]:
    cursor = await conn.execute(_INSERT, (new.item, new.quantity))
    return Created(Order(*await _one(cursor)))


async def _insert_once(conn: Connection, new: NewOrder, key: str, ttl: float) -> Created[Order]:
    digest = new.fingerprint()

    async def insert() -> Order:
        params = {"item": new.item, "quantity": new.quantity, "scope": SCOPE, "key": key,
                  "fingerprint": digest}  # fmt: skip
        cursor = await conn.execute(_INSERT_WITH_KEY, params)
        return Order(*await _one(cursor))

    return await idempotency.create_once(
        conn, scope=SCOPE, key=key, digest=digest, ttl=ttl, insert=insert,
        load=lambda order_id: _select_one(conn, int(order_id)),
    )  # fmt: skip


async def _select_one(conn: Connection, order_id: int) -> Order | None:
    cursor = await conn.execute(_SELECT_ONE, (order_id,))
    row = await cursor.fetchone()
    return None if row is None else Order(*row)


async def _select_page(conn: Connection, limit: int, before: int | None) -> list[Order]:
    if before is None:
        cursor = await conn.execute(_SELECT_PAGE, (limit,))
    else:
        cursor = await conn.execute(_SELECT_PAGE_BEFORE, (before, limit))
    return [Order(*row) for row in await cursor.fetchall()]


async def _one(cursor: Any) -> Any:
    row = await cursor.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return row
