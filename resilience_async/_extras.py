"""Which extra of the distribution installs which integration, for ImportErrors that say so.

The core needs aiobreaker alone; every other package is an integration that a part of the
library imports when it is used. When one is missing, the error names the extra to install
(`pip install 'resilient-django[postgres]'`) rather than leaving a bare "No module named
'psycopg'" for the reader to trace back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

DISTRIBUTION = "resilient-django"

# The top-level module a part imports -> the extra of pyproject.toml that installs it.
EXTRAS = {
    "aiohttp": "aiohttp",
    "yarl": "aiohttp",
    "django": "django",
    "asgiref": "django",
    "httpx": "http",
    "prometheus_client": "prometheus",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
    "redis": "redis",
    "uvicorn": "uvicorn",
    "httptools": "uvicorn",
}


def install_hint(module: str) -> str | None:
    """What to install for `module` (a dotted name), or None when no extra brings it."""
    top = module.partition(".")[0]
    if top == "aiobreaker":
        return f"install {DISTRIBUTION} (aiobreaker is its one dependency)"
    extra = EXTRAS.get(top)
    return None if extra is None else f"install {DISTRIBUTION}[{extra}]"


@contextlib.contextmanager
def extra_needed(by: str) -> Iterator[None]:
    """Turn a missing integration, imported inside, into an ImportError naming its extra
    (a ModuleNotFoundError still, for code that tells optional parts by it).

    Args:
        by: what needs it, as the reader wrote it ("resilience_async.Database").
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        hint = install_hint(exc.name or "")
        if hint is None:
            raise  # not an integration: a bug, or a broken install, shown as it is
        message = f"{by} needs {exc.name}, which is not installed: {hint}"
        raise ModuleNotFoundError(message, name=exc.name) from exc
