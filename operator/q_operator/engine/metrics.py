"""Prometheus metrics of the operator, served on Q_OPERATOR_METRICS_PORT (default 8080; 0 disables).

Reconciles by kind and outcome, AWS calls by service/operation/error code, throttles, AWS call
latency, and how many resources are in which Ready/Synced state.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter(
    "q_operator_reconciles_total", "Reconcile cycles by kind and outcome.", ["kind", "outcome"]
)
RECONCILE_SECONDS = Histogram("q_operator_reconcile_seconds", "Duration of one reconcile cycle.", ["kind"])
AWS_CALLS = Counter(
    "q_operator_aws_calls_total",
    "AWS API calls by service, operation and error code.",
    ["service", "operation", "code"],
)
AWS_THROTTLES = Counter(
    "q_operator_aws_throttles_total", "AWS calls answered with throttling.", ["service", "operation"]
)
AWS_SECONDS = Histogram(
    "q_operator_aws_call_seconds",
    "AWS API call latency.",
    ["service", "operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AWS_WAIT_SECONDS = Counter(
    "q_operator_aws_ratelimit_wait_seconds_total",
    "Time AWS calls waited for the client-side rate limiter.",
    ["service"],
)
RESOURCES = Gauge(
    "q_operator_resources", "Custom resources by kind and condition status.", ["kind", "condition", "status"]
)


class ResourceTracker:
    """Keeps the RESOURCES gauge: each object counted once under its current Ready and Synced status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, str, str]] = {}

    def observe(self, uid: str, kind: str, ready: str, synced: str) -> None:
        with self._lock:
            self._forget(uid)
            self._seen[uid] = (kind, ready, synced)
            RESOURCES.labels(kind, "Ready", ready).inc()
            RESOURCES.labels(kind, "Synced", synced).inc()

    def forget(self, uid: str) -> None:
        with self._lock:
            self._forget(uid)

    def _forget(self, uid: str) -> None:
        old = self._seen.pop(uid, None)
        if old is not None:
            RESOURCES.labels(old[0], "Ready", old[1]).dec()
            RESOURCES.labels(old[0], "Synced", old[2]).dec()


TRACKER = ResourceTracker()


def serve(port: int) -> bool:
    """Start the /metrics endpoint in a daemon thread (port 0: metrics off). A port already taken is
    logged, not fatal: the operator's job is reconciling, not serving metrics."""
    if not port:
        return False
    try:
        start_http_server(port)
    except OSError as error:
        logging.getLogger("q_operator.engine").warning(
            "metrics endpoint on port %d not started: %s", port, error
        )
        return False
    return True
