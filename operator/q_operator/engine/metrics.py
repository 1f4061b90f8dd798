"""Prometheus metrics of the operator, served on Q_OPERATOR_METRICS_PORT (default 8080; 0 disables).

Reconciles by kind and outcome, AWS calls by service/operation/error code, throttles, AWS call
latency, and how many resources are in which Ready/Synced state, with which reason, and since when
the oldest not-Ready one of each kind has been so (what the chart's alerts page on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

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


BY_REASON = "q_operator_resources_by_reason"
NOT_READY_SINCE = "q_operator_resources_not_ready_since_timestamp_seconds"


@dataclass(frozen=True)
class _Seen:
    kind: str
    ready: str
    synced: str
    ready_reason: str
    synced_reason: str
    #: Unix time at which Ready stopped being True (its lastTransitionTime); None while Ready.
    not_ready_since: float | None


class ResourceTracker:
    """Keeps the RESOURCES gauge: each object counted once under its current Ready and Synced status.

    Also a collector: at each scrape it reports the objects by condition reason (which reason needs
    a person) and, per kind, when the longest-not-Ready object stopped being Ready, so an alert can
    tell one object stuck for an hour from many objects each building for a minute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}

    def observe(
        self, uid: str, kind: str, ready: str, synced: str, conditions: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        found = {str(c.get("type")): c for c in conditions}
        with self._lock:
            old = self._forget(uid)
            since: float | None = None
            if ready != "True":
                moment = parse_rfc3339(str(found.get("Ready", {}).get("lastTransitionTime", "")))
                since = moment.timestamp() if moment else None
                if since is None:  # no transition time: keep what we knew, or start counting now
                    since = old.not_ready_since if old and old.not_ready_since else time.time()
            self._seen[uid] = _Seen(
                kind,
                ready,
                synced,
                str(found.get("Ready", {}).get("reason") or "Unknown"),
                str(found.get("Synced", {}).get("reason") or "Unknown"),
                since,
            )
            RESOURCES.labels(kind, "Ready", ready).inc()
            RESOURCES.labels(kind, "Synced", synced).inc()

    def forget(self, uid: str) -> None:
        with self._lock:
            self._forget(uid)

    def _forget(self, uid: str) -> _Seen | None:
        old = self._seen.pop(uid, None)
        if old is not None:
            RESOURCES.labels(old.kind, "Ready", old.ready).dec()
            RESOURCES.labels(old.kind, "Synced", old.synced).dec()
        return old

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Called by the metrics endpoint at each scrape: objects by reason, oldest not-Ready."""
        with self._lock:
            seen = list(self._seen.values())
        tally: Tally[tuple[str, str, str, str]] = Tally()
        oldest: dict[str, float] = {}
        for one in seen:
            tally[(one.kind, "Ready", one.ready, one.ready_reason)] += 1
            tally[(one.kind, "Synced", one.synced, one.synced_reason)] += 1
            if one.not_ready_since is not None:
                oldest[one.kind] = min(one.not_ready_since, oldest.get(one.kind, one.not_ready_since))
        by_reason, since = self._families()
        for labels, count in sorted(tally.items()):
            by_reason.add_metric(list(labels), count)
        for kind, moment in sorted(oldest.items()):
            since.add_metric([kind], moment)
        yield by_reason
        yield since

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                BY_REASON,
                "Custom resources by kind, condition, status and the condition's reason.",
                labels=["kind", "condition", "status", "reason"],
            ),
            GaugeMetricFamily(
                NOT_READY_SINCE,
                "Per kind, when the object that has been not Ready the longest stopped being Ready "
                "(Unix time; no sample when every object is Ready).",
                labels=["kind"],
            ),
        )


TRACKER = ResourceTracker()
REGISTRY.register(TRACKER)


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
