"""Where the image tooling keeps what it reuses between runs."""

from __future__ import annotations

from pathlib import Path

DEFAULT_CACHE_DIR = Path("/var/cache/resilient-django")


def cache_dir(configured: str | None) -> Path:
    """The cache directory: `configured` (IMAGE_CACHE_DIR) or /var/cache/resilient-django.
    Outside the checkout on purpose: CI and developers on this machine share it."""
    return Path(configured) if configured else DEFAULT_CACHE_DIR
