"""The Django admin's pages for the service's data (loaded only when ADMIN_ENABLED).

Orders can be corrected (the database's constraints still hold: the form checks them).
API keys are made, rotated and revoked by `manage.py apikeys` (a key is shown once, when
made); here they are listed, and can be revoked. Reports and outbox messages are the jobs'
record: a report's status, result and error are
written by its job, an outbox message by a request and the relay, so both are read-only
here. What an operator does to them is the action that runs failed reports again, through
the outbox (`app/operations.py`, as `manage.py reports requeue` does).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from app import operations
from app.models import ApiKey, Order, OutboxMessage, Report


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "item", "quantity", "created_at")
    list_filter = ("created_at",)
    search_fields = ("item",)
    ordering = ("-id",)
    readonly_fields = ("created_at",)
    show_full_result_count = False  # a count(*) over every order on each page is slow


class _ReadOnly(admin.ModelAdmin):
    """Viewable, never added, changed or deleted through the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Report)
class ReportAdmin(_ReadOnly):
    list_display = ("id", "status", "attempts", "created_at", "updated_at", "short_error")
    list_filter = ("status", "created_at")
    search_fields = ("id", "error")
    ordering = ("-created_at",)
    actions = ("requeue_failed",)
    show_full_result_count = False

    @admin.display(description="error")
    def short_error(self, report: Report) -> str:
        return str(report.error)[:80]

    @admin.action(description="Run the selected failed reports again", permissions=("requeue",))
    def requeue_failed(self, request: HttpRequest, queryset: QuerySet[Report]) -> None:
        ids = list(queryset.values_list("id", flat=True))
        outcome = operations.requeue_failed(ids)
        if outcome.requeued:
            self.message_user(
                request, f"{len(outcome.requeued)} report(s) queued again", messages.SUCCESS
            )
        if outcome.refused:
            self.message_user(
                request,
                f"{len(outcome.refused)} report(s) left as they were (not failed)",
                messages.WARNING,
            )

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        """Who may view reports may run failed ones again (the job stays idempotent)."""
        return self.has_view_permission(request)


class _Sent(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [
            ("unsent", "unpublished"),
            ("refused", "refused by the broker"),
            ("sent", "published"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "unsent":
            return queryset.filter(sent_at__isnull=True)
        if self.value() == "refused":
            return queryset.filter(sent_at__isnull=True, attempts__gt=0)
        if self.value() == "sent":
            return queryset.filter(sent_at__isnull=False)
        return queryset


@admin.register(OutboxMessage)
class OutboxMessageAdmin(_ReadOnly):
    list_display = ("id", "actor", "payload", "created_at", "sent_at", "attempts", "last_error")
    list_filter = (_Sent, "actor")
    search_fields = ("actor", "payload__report_id", "last_error")
    ordering = ("-id",)
    show_full_result_count = False


@admin.register(ApiKey)
class ApiKeyAdmin(_ReadOnly):
    """Names, prefixes and limits; never a key (the database holds digests only)."""

    list_display = ("name", "prefix", "limit", "created_at", "rotated_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    ordering = ("name",)
    exclude = ("digest", "previous_digest")
    actions = ("revoke",)

    @admin.display(description="limit")
    def limit(self, key: ApiKey) -> str:
        return f"{key.rate_limit}/{key.rate_window:g} s" if key.rate_limit else "default"

    @admin.action(description="Revoke the selected keys (403 from now on)",
                  permissions=("revoke",))  # fmt: skip
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"{revoked} key(s) revoked", messages.SUCCESS)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)  # type: ignore[union-attr]
