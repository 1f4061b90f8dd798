"""The resource tracker's scrape-time metrics: objects by condition reason, and since when the
longest-not-Ready object of each kind has been so (what the chart's alerts read)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from q_operator.engine.metrics import BY_REASON, NOT_READY_SINCE, ResourceTracker


def conditions(ready: str, ready_reason: str, synced: str, synced_reason: str, since: str = "") -> list[Any]:
    found: list[dict[str, Any]] = [
        {"type": "Ready", "status": ready, "reason": ready_reason},
        {"type": "Synced", "status": synced, "reason": synced_reason},
    ]
    if since:
        found[0]["lastTransitionTime"] = since
    return found


def scrape(tracker: ResourceTracker) -> dict[str, dict[tuple[str, ...], float]]:
    return {
        family.name: {tuple(s.labels.values()): s.value for s in family.samples}
        for family in tracker.collect()
    }


@pytest.fixture
def tracker() -> Iterator[ResourceTracker]:
    made = ResourceTracker()
    yield made
    for uid in list(made._seen):  # keep the process-wide RESOURCES gauge as it was
        made.forget(uid)


def test_objects_are_counted_by_kind_condition_status_and_reason(tracker: ResourceTracker) -> None:
    tracker.observe(
        "a", "QPlugin", "True", "True", conditions("True", "Available", "True", "ReconcileSuccess")
    )
    tracker.observe(
        "b", "QPlugin", "False", "False", conditions("False", "Unavailable", "False", "InvalidSpec")
    )
    tracker.observe(
        "c", "QPlugin", "False", "False", conditions("False", "Unavailable", "False", "InvalidSpec")
    )
    counts = scrape(tracker)[BY_REASON]
    assert counts[("QPlugin", "Synced", "False", "InvalidSpec")] == 2
    assert counts[("QPlugin", "Ready", "True", "Available")] == 1
    tracker.forget("b")
    tracker.observe(
        "c", "QPlugin", "True", "True", conditions("True", "Available", "True", "ReconcileSuccess")
    )
    counts = scrape(tracker)[BY_REASON]
    assert ("QPlugin", "Synced", "False", "InvalidSpec") not in counts, (
        "a reason no object has is not reported"
    )
    assert counts[("QPlugin", "Synced", "True", "ReconcileSuccess")] == 2


def test_not_ready_since_is_the_oldest_transition_of_a_not_ready_object_per_kind(
    tracker: ResourceTracker,
) -> None:
    tracker.observe(
        "a",
        "QPlugin",
        "False",
        "True",
        conditions("False", "Creating", "True", "ReconcileSuccess", "2026-01-01T10:00:00Z"),
    )
    tracker.observe(
        "b",
        "QPlugin",
        "False",
        "False",
        conditions("False", "BuildFailed", "False", "BuildFailed", "2026-01-01T09:00:00Z"),
    )
    tracker.observe(
        "c",
        "QLibraryItem",
        "True",
        "True",
        conditions("True", "Available", "True", "ReconcileSuccess", "2026-01-01T08:00:00Z"),
    )
    since = scrape(tracker)[NOT_READY_SINCE]
    assert since == {("QPlugin",): 1767258000.0}, "09:00, the older of the two not-Ready plugins"
    tracker.forget("b")
    assert scrape(tracker)[NOT_READY_SINCE] == {("QPlugin",): 1767261600.0}
    tracker.observe(
        "a", "QPlugin", "True", "True", conditions("True", "Available", "True", "ReconcileSuccess")
    )
    assert scrape(tracker)[NOT_READY_SINCE] == {}, "no sample once every object is Ready"


def test_without_a_transition_time_the_first_sight_is_kept(tracker: ResourceTracker) -> None:
    tracker.observe("a", "AppFlowConnector", "Unknown", "Unknown", [])
    first = scrape(tracker)[NOT_READY_SINCE][("AppFlowConnector",)]
    tracker.observe("a", "AppFlowConnector", "Unknown", "Unknown", [])
    assert scrape(tracker)[NOT_READY_SINCE][("AppFlowConnector",)] == first
    assert scrape(tracker)[BY_REASON][("AppFlowConnector", "Ready", "Unknown", "Unknown")] == 1
