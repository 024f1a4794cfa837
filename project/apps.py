"""The project as a Django app: it has no models, only the system checks it registers."""

from __future__ import annotations

from django.apps import AppConfig


class ProjectConfig(AppConfig):
    name = "project"
    verbose_name = "Service project"

    def ready(self) -> None:
        from project import deploy_checks  # noqa: F401, PLC0415 - registers the checks
