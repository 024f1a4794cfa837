from __future__ import annotations

from django.apps import AppConfig


class ServiceConfig(AppConfig):
    name = "app"
    verbose_name = "Fault-tolerant service"
