"""The service: its schema (Django models own it), async API, services and the sync twin."""
