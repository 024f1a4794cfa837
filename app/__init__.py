"""The service: its schema (Django models own it), async API and services."""
