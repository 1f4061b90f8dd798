"""The resources gauges the chart's alerts read: objects by condition reason, and since when the
longest-not-Ready object of each kind has been so. Each test counts objects of a kind of its own."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from q_operator.engine import metrics
from q_operator.engine.metrics import Counted, counted, recount


def conditions(ready: str, ready_reason: str, synced: str, synced_reason: str, since: str = "") -> list[Any]:
    found: list[dict[str, Any]] = [
        {"type": "Ready", "status": ready, "reason": ready_reason},
        {"type": "Synced", "status": synced, "reason": synced_reason},
    ]
    if since:
        found[0]["lastTransitionTime"] = since
    return found


def by_reason(kind: str, condition: str, status: str, reason: str) -> float:
    labels = {"kind": kind, "condition": condition, "status": status, "reason": reason}
    return REGISTRY.get_sample_value("q_operator_resources_by_reason", labels) or 0.0


def not_ready_since(kind: str) -> float | None:
    value: float | None = REGISTRY.get_sample_value(
        "q_operator_resources_not_ready_since_timestamp_seconds", {"kind": kind}
    )
    return value


READY = conditions("True", "Available", "True", "ReconcileSuccess", "2026-01-01T08:00:00Z")


def test_objects_are_counted_by_kind_condition_status_and_reason() -> None:
    kind = "KindByReason"
    ok = recount(None, counted(kind, READY))
    bad = [
        recount(None, counted(kind, conditions("False", "Unavailable", "False", "InvalidSpec"))) for _ in "ab"
    ]
    assert by_reason(kind, "Synced", "False", "InvalidSpec") == 2
    assert by_reason(kind, "Ready", "True", "Available") == 1
    recount(bad[0], None)
    recount(bad[1], counted(kind, READY))
    assert by_reason(kind, "Synced", "False", "InvalidSpec") == 0
    assert by_reason(kind, "Synced", "True", "ReconcileSuccess") == 2
    recount(ok, None)


def test_not_ready_since_is_the_oldest_transition_of_a_not_ready_object_per_kind() -> None:
    kind, other = "KindNotReady", "KindAlwaysReady"
    a = recount(
        None,
        counted(kind, conditions("False", "Creating", "True", "ReconcileSuccess", "2026-01-01T10:00:00Z")),
    )
    b = recount(
        None,
        counted(kind, conditions("False", "BuildFailed", "False", "BuildFailed", "2026-01-01T09:00:00Z")),
    )
    c = recount(None, counted(other, READY))
    assert not_ready_since(kind) == 1767258000.0, "09:00, the older of the two not-Ready objects"
    assert not_ready_since(other) is None, "no sample for a kind whose objects are all Ready"
    recount(b, None)
    assert not_ready_since(kind) == 1767261600.0
    recount(a, counted(kind, READY))
    assert not_ready_since(kind) is None, "no sample once every object is Ready"
    recount(c, None)


def test_without_a_transition_time_the_first_sight_is_kept() -> None:
    kind = "KindNoTransition"
    first = recount(None, counted(kind, []))
    assert isinstance(first, Counted) and first.not_ready_since is not None
    again = recount(first, counted(kind, []))
    assert again == first
    assert not_ready_since(kind) == first.not_ready_since
    assert by_reason(kind, "Ready", "Unknown", "Unknown") == 1
    recount(again, None)
    assert not_ready_since(kind) is None and not metrics._not_ready.get(kind)
