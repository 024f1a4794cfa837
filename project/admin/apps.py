"""The admin app with the service's site (`site.ServiceAdminSite`) as `admin.site`.

Installed in place of `django.contrib.admin`, as Django's docs do to override the default
site; this module imports nothing that needs the app registry ready.
"""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "project.admin.site.ServiceAdminSite"
