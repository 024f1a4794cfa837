"""How uvicorn serves the web process: its HTTP protocol with this service's limits.

    uvicorn project.asgi:application --http project.serving:HttpProtocol --ws none

The limits come from the settings (HTTP_HEADER_TIMEOUT, HTTP_BODY_TIMEOUT,
HTTP_MAX_HEADER_BYTES, HTTP_MAX_HEADERS, and lingering's HTTP_LINGER_TIMEOUT,
HTTP_LINGER_TIME, HTTP_LINGER_BYTES); `make run`, the tests, the bench and the container
image all serve with it.
"""

from __future__ import annotations

from project import settings
from resilience_async.uvicorn import guarded_protocol

HttpProtocol = guarded_protocol(
    header_timeout=settings.HTTP_HEADER_TIMEOUT,
    body_timeout=settings.HTTP_BODY_TIMEOUT,
    max_header_bytes=settings.HTTP_MAX_HEADER_BYTES,
    max_headers=settings.HTTP_MAX_HEADERS,
    linger_timeout=settings.HTTP_LINGER_TIMEOUT,
    linger_time=settings.HTTP_LINGER_TIME,
    linger_bytes=settings.HTTP_LINGER_BYTES,
)
