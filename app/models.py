"""The schema. Django owns it (migrations run on the primary and replicate to the replicas);
the async path reads and writes these tables with SQL on psycopg pools, so defaults live in
the database (`db_default`) and rules in constraints, where both paths obey them.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Now


class Order(models.Model):
    item = models.CharField(max_length=200)
    quantity = models.IntegerField()
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "orders"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gte=1, quantity__lte=10000),
                name="orders_quantity_1_to_10000",
            ),
            models.CheckConstraint(condition=~models.Q(item=""), name="orders_item_not_empty"),
        ]

    def __str__(self) -> str:
        return f"order {self.pk}: {self.quantity} x {self.item}"


class Report(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    status = models.CharField(max_length=16, choices=Status.choices, db_default=Status.QUEUED)
    params = models.JSONField(db_default={})
    result = models.JSONField(null=True)
    error = models.TextField(db_default="")
    attempts = models.IntegerField(db_default=0)
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "reports"

    def __str__(self) -> str:
        return f"report {self.pk} ({self.status})"


class OutboxMessage(models.Model):
    """A message committed with the row it is about; a relay publishes it to the broker."""

    actor = models.CharField(max_length=100)
    payload = models.JSONField()
    created_at = models.DateTimeField(db_default=Now())
    sent_at = models.DateTimeField(null=True)
    attempts = models.IntegerField(db_default=0)
    last_error = models.TextField(db_default="")

    class Meta:
        db_table = "outbox"
        indexes = [
            # The relay's scan: unsent messages, oldest first.
            models.Index(
                fields=["id"], name="outbox_unsent_idx", condition=models.Q(sent_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"outbox {self.pk} -> {self.actor}"


class IdempotencyKey(models.Model):
    """A key a client sent with a write, the request it came with, and what it created.

    A retry with the same key and the same request returns what the first one created;
    the same key with another request is refused (draft-ietf-httpapi-idempotency-key-header).
    """

    scope = models.CharField(max_length=50)  # the operation: "orders"
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # sha256 of the canonical request
    resource_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "idempotency_keys"
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_keys_scope_key"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} key {self.key!r} -> {self.resource_id}"


class ApiKey(models.Model):
    """A caller allowed to write: a name, the key's digest (never the key) and its limit.

    A key is `rdk_<prefix>_<secret>`; `prefix` finds the row, and the SHA-256 of the whole
    key is compared with `digest` in constant time (a key is 256 random bits: a slow hash
    would add nothing but cost per request). After a rotation the previous key keeps
    working until `previous_valid_until`, so callers can move to the new one.
    """

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    previous_prefix = models.CharField(max_length=16, db_default="")
    previous_digest = models.CharField(max_length=64, db_default="")
    previous_valid_until = models.DateTimeField(null=True)
    rate_limit = models.IntegerField(null=True)  # requests per rate_window; null: the default
    rate_window = models.FloatField(null=True)  # seconds
    created_at = models.DateTimeField(db_default=Now())
    rotated_at = models.DateTimeField(null=True)
    revoked_at = models.DateTimeField(null=True)

    class Meta:
        db_table = "api_keys"
        indexes = [models.Index(fields=["previous_prefix"], name="api_keys_previous_prefix")]

    def __str__(self) -> str:
        state = "revoked" if self.revoked_at else "active"
        return f"API key {self.name!r} ({self.prefix}, {state})"
