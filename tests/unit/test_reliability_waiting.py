"""The waiting allowance of issue 21's reliability rows (tests/reliability/waiting.py): the arithmetic its
docstring shows, and the count of waiting calls it is held against."""

from __future__ import annotations

from typing import Any

import pytest

from q_operator.engine.contract import Timing
from tests.reliability.waiting import SIGMAS, Waiting, look_times, spent

TIMING = Timing(consistency=30.0)


def test_looks_follow_the_engines_poll_schedule() -> None:
    """1 s, then half the time since the write (at least 1 s, at most 15 s)."""
    assert look_times(TIMING, 30.0) == [1.0, 2.0, 3.0, 4.5, 6.75, 10.125, 15.1875, 22.78125]
    assert look_times(TIMING, 60.0)[-2:] == [34.171875, 49.171875]  # poll_max caps the wait at 15 s


@pytest.mark.parametrize(
    ("write", "kind", "mean"),
    [
        pytest.param("update", "QPlugin", 1.9 * 2, id="update: 1.9 looks at the Get and its tags"),
        pytest.param("update", "QLibraryItem", 1.9, id="update: 1.9 looks at the Get alone"),
        pytest.param("create", "QPlugin", 1.9, id="create: 1.9 NotFound"),
        pytest.param("create", "AppFlowConnector", 1.9 + 0.73 * 2, id="create and tag: 0.73 looks more"),
        pytest.param("delete", "QPlugin", 2.9 * 2, id="delete of a resource older than the bound"),
    ],
)
def test_the_mean_waiting_calls_of_one_write_at_a_5_s_lag(write: str, kind: str, mean: float) -> None:
    waiting = Waiting(TIMING, 5.0)
    if write == "delete":
        waiting.delete(kind, doubted=-60.0)
    else:
        getattr(waiting, write)(kind)
    assert waiting.total.mean == pytest.approx(mean)


def test_a_delete_within_the_bound_adds_notfound_looks_until_it_has_passed() -> None:
    """R = 17 s: looks at 6.75, 10.1 and 15.2 s for certain, those at 1 to 4.5 s after a shorter draw."""
    waiting = Waiting(TIMING, 5.0)
    waiting.delete("QLibraryItem", doubted=17.0)
    assert waiting.total.mean == pytest.approx(2.9 + 5.1)


def test_without_lag_only_the_doubted_deletion_waits_and_it_is_certain() -> None:
    waiting = Waiting(TIMING, 0.0)
    for kind in ("QPlugin", "QLibraryItem", "AppFlowConnector"):
        waiting.create(kind)
        waiting.update(kind)
        waiting.delete(kind, doubted=-1.0)
    assert (waiting.total.mean, waiting.total.variance) == (0.0, 0.0)
    waiting.delete("QPlugin", doubted=17.0)  # looks at 0, 1, 2, 3, 4.5, 6.75, 10.1 and 15.2 s
    assert (waiting.total.mean, waiting.total.allowance()) == (8.0, 8)


def test_the_allowance_lies_three_deviations_above_the_mean_of_independent_writes() -> None:
    one, many = Waiting(TIMING, 5.0), Waiting(TIMING, 5.0)
    one.update("QPlugin")
    for _ in range(16):
        many.update("QPlugin")
    assert many.total.mean == pytest.approx(16 * one.total.mean)
    assert many.total.deviation == pytest.approx(4 * one.total.deviation)  # variances add up
    assert many.total.allowance() == pytest.approx(many.total.mean + SIGMAS * many.total.deviation, abs=1)
    assert many.total.allowance() < 2 * many.total.mean  # twice the looks would not fit


def _read(operation: str, service: str = "qbusiness", **extra: Any) -> dict[str, Any]:
    return {"service": service, "operation": operation, "status": 200, **extra}


def test_spent_counts_lagged_reads_and_notfound_beyond_one_per_deleted_resource() -> None:
    log = [
        _read("CreatePlugin", visibleAfter=2.0),  # a write: never waiting
        _read("GetPlugin", lagged=1, error="ResourceNotFoundException"),
        _read("ListTagsForResource", lagged=1),
        _read("ListPlugins", lagged=2),  # a List serves many objects: left out
        _read("GetPlugin", error="ThrottlingException"),
        _read("GetPlugin", error="ResourceNotFoundException"),
        _read("GetPlugin", error="ResourceNotFoundException"),
        _read("GetLibraryItem", "qapps", error="ResourceNotFoundException"),
        _read("GetCallerIdentity", "sts", lagged=1),  # not a kind's service
    ]
    waited = spent(log, deleted=2)
    assert (waited.lagged, waited.doubted, waited.total) == (2, 1, 3)
    assert spent(log, deleted=5).doubted == 0
