"""Prometheus metrics of the operator, served on Q_OPERATOR_METRICS_PORT (default 8080; 0 disables).

Reconciles by kind and outcome, AWS calls by service/operation/error code, throttles, AWS call
latency, how many resources are in which Ready/Synced state and with which reason, and since when the
longest-not-Ready one of each kind has been so (what the chart's alerts page on).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from q_operator.engine.conditions import parse_rfc3339

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


RESOURCES_BY_REASON = Gauge(
    "q_operator_resources_by_reason",
    "Custom resources by kind, condition, status and the condition's reason.",
    ["kind", "condition", "status", "reason"],
)
NOT_READY_SINCE = Gauge(
    "q_operator_resources_not_ready_since_timestamp_seconds",
    "Per kind, when the object that has been not Ready the longest stopped being Ready "
    "(Unix time; no sample while every object of the kind is Ready).",
    ["kind"],
)


@dataclass(frozen=True)
class Counted:
    """Where one object is counted in the resources gauges: its kind, the status and reason of its
    Ready and Synced conditions, and since when it has not been Ready (None while it is)."""

    kind: str
    ready: str
    synced: str
    ready_reason: str = "Unknown"
    synced_reason: str = "Unknown"
    not_ready_since: float | None = None


def counted(kind: str, conditions: Sequence[Mapping[str, Any]]) -> Counted:
    """Where an object with these conditions is counted."""
    found = {str(c.get("type")): c for c in conditions}
    ready, synced = found.get("Ready", {}), found.get("Synced", {})
    ready_status = str(ready.get("status", "Unknown"))
    since = None
    if ready_status != "True":
        moment = parse_rfc3339(str(ready.get("lastTransitionTime", "")))
        since = moment.timestamp() if moment else None
    return Counted(
        kind,
        ready_status,
        str(synced.get("status", "Unknown")),
        str(ready.get("reason") or "Unknown"),
        str(synced.get("reason") or "Unknown"),
        since,
    )


#: Per kind, how many not-Ready objects stopped being Ready at each moment: NOT_READY_SINCE is the
#: earliest. Kept by `recount`, as the gauges are.
_not_ready: dict[str, Tally[float]] = {}


def recount(old: Counted | None, new: Counted | None) -> Counted | None:
    """Move one object in the resources gauges from `old` to `new` (None: not counted); returns `new`,
    which the object's memory keeps (memory.py), so forgetting the object uncounts it."""
    if new is not None and new.ready != "True" and new.not_ready_since is None:
        # no transition time written yet: keep the moment we first saw it not Ready
        known = old.not_ready_since if old is not None else None
        new = replace(new, not_ready_since=known if known is not None else time.time())
    if old == new:
        return new
    if old is not None:
        RESOURCES.labels(old.kind, "Ready", old.ready).dec()
        RESOURCES.labels(old.kind, "Synced", old.synced).dec()
        RESOURCES_BY_REASON.labels(old.kind, "Ready", old.ready, old.ready_reason).dec()
        RESOURCES_BY_REASON.labels(old.kind, "Synced", old.synced, old.synced_reason).dec()
        _move_not_ready(old.kind, old.not_ready_since, -1)
    if new is not None:
        RESOURCES.labels(new.kind, "Ready", new.ready).inc()
        RESOURCES.labels(new.kind, "Synced", new.synced).inc()
        RESOURCES_BY_REASON.labels(new.kind, "Ready", new.ready, new.ready_reason).inc()
        RESOURCES_BY_REASON.labels(new.kind, "Synced", new.synced, new.synced_reason).inc()
        _move_not_ready(new.kind, new.not_ready_since, +1)
    return new


def _move_not_ready(kind: str, since: float | None, step: int) -> None:
    if since is None:
        return
    moments = _not_ready.setdefault(kind, Tally())
    moments[since] += step
    if moments[since] <= 0:
        del moments[since]
    if moments:
        NOT_READY_SINCE.labels(kind).set(min(moments))
    else:
        _not_ready.pop(kind, None)
        with contextlib.suppress(KeyError):  # never set
            NOT_READY_SINCE.remove(kind)


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
