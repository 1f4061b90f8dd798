"""Prometheus metrics of the operator, served on Q_OPERATOR_METRICS_PORT (default 8080; 0 disables).

Reconciles by kind and outcome, AWS calls by service/operation/error code, throttles, AWS call
latency, and how many resources are in which Ready/Synced state.
"""

from __future__ import annotations

import logging

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


#: (kind, Ready status, Synced status): where one object is counted in RESOURCES.
Counted = tuple[str, str, str]


def recount(old: Counted | None, new: Counted | None) -> Counted | None:
    """Move one object in the RESOURCES gauge from `old` to `new` (None: not counted); returns `new`,
    which the object's memory keeps (memory.py), so forgetting the object uncounts it."""
    if old == new:
        return new
    if old is not None:
        RESOURCES.labels(old[0], "Ready", old[1]).dec()
        RESOURCES.labels(old[0], "Synced", old[2]).dec()
    if new is not None:
        RESOURCES.labels(new[0], "Ready", new[1]).inc()
        RESOURCES.labels(new[0], "Synced", new[2]).inc()
    return new


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
