"""The service's own Prometheus instruments; the library's come from resilience_async.prometheus.

Imported by the composition root only when `METRICS_ENABLED`.
"""

from __future__ import annotations

from prometheus_client import Gauge

OUTBOX_BACKLOG = Gauge(
    "outbox_backlog_messages",
    "Messages committed to the outbox and not yet published, at the last readiness check.",
    multiprocess_mode="livemax",
)
