"""The waiting allowance of issue 21's reliability rows (tests/reliability/waiting.py): the arithmetic its
docstring shows, and the count of waiting calls it is held against."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from q_operator.engine.contract import Timing
from tests.kinds import TEST_KINDS, KindFacts
from tests.reliability.waiting import SIGMAS, Waiting, look_times, spent
from tests.reliability.writes import FOLLOW_UPS

TIMING = Timing(consistency=30.0)
#: A kind whose look at one resource is one call (its Get alone).
ONE_CALL = next(f for f in TEST_KINDS if f.observe_calls == 1)


def test_looks_follow_the_engines_poll_schedule() -> None:
    """1 s, then half the time since the write (at least 1 s, at most 15 s)."""
    assert look_times(TIMING, 30.0) == [1.0, 2.0, 3.0, 4.5, 6.75, 10.125, 15.1875, 22.78125]
    assert look_times(TIMING, 60.0)[-2:] == [34.171875, 49.171875]  # poll_max caps the wait at 15 s


@pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda f: f.kind)
@pytest.mark.parametrize(
    ("write", "mean"),
    [
        pytest.param("update", lambda observe, follow: 1.9 * observe, id="update: 1.9 full looks"),
        pytest.param(
            "create",
            lambda observe, follow: 1.9 + 0.73 * observe * follow,
            id="create: 1.9 NotFound, and 0.73 looks more behind a follow-up write (a connector's tags)",
        ),
        pytest.param(
            "delete", lambda observe, follow: 2.9 * observe, id="delete of a resource older than the bound"
        ),
    ],
)
def test_the_mean_waiting_calls_of_one_write_at_a_5_s_lag(
    facts: KindFacts, write: str, mean: Callable[[int, int], float]
) -> None:
    follow = len(FOLLOW_UPS[facts.kind])
    assert follow <= 1, "the 0.73 of the docstring is for one follow-up write"
    waiting = Waiting(TIMING, 5.0)
    if write == "delete":
        waiting.delete(facts.kind, doubted=-60.0)
    else:
        getattr(waiting, write)(facts.kind)
    assert waiting.total.mean == pytest.approx(mean(facts.observe_calls, follow), abs=0.01)


def test_a_delete_within_the_bound_adds_notfound_looks_until_it_has_passed() -> None:
    """R = 17 s: looks at 6.75, 10.1 and 15.2 s for certain, those at 1 to 4.5 s after a shorter draw."""
    waiting = Waiting(TIMING, 5.0)
    waiting.delete(ONE_CALL.kind, doubted=17.0)
    assert waiting.total.mean == pytest.approx(2.9 + 5.1)


def test_without_lag_only_the_doubted_deletion_waits_and_it_is_certain() -> None:
    waiting = Waiting(TIMING, 0.0)
    for kind in (f.kind for f in TEST_KINDS):
        waiting.create(kind)
        waiting.update(kind)
        waiting.delete(kind, doubted=-1.0)
    assert (waiting.total.mean, waiting.total.variance) == (0.0, 0.0)
    waiting.delete(ONE_CALL.kind, doubted=17.0)  # looks at 0, 1, 2, 3, 4.5, 6.75, 10.1 and 15.2 s
    assert (waiting.total.mean, waiting.total.allowance()) == (8.0, 8)


def test_the_allowance_lies_three_deviations_above_the_mean_of_independent_writes() -> None:
    one, many = Waiting(TIMING, 5.0), Waiting(TIMING, 5.0)
    one.update(TEST_KINDS[0].kind)
    for _ in range(16):
        many.update(TEST_KINDS[0].kind)
    assert many.total.mean == pytest.approx(16 * one.total.mean)
    assert many.total.deviation == pytest.approx(4 * one.total.deviation)  # variances add up
    assert many.total.allowance() == pytest.approx(many.total.mean + SIGMAS * many.total.deviation, abs=1)
    assert many.total.allowance() < 2 * many.total.mean  # twice the looks would not fit


#: Two kinds' operations, from their facts: a kind that reads tags, and another service's kind.
TAGGED = next(f for f in TEST_KINDS if len(f.observe_ops) == 2)
OTHER = next(f for f in TEST_KINDS if f.info.service != TAGGED.info.service)


def _read(operation: str, service: str = TAGGED.info.service, **extra: Any) -> dict[str, Any]:
    return {"service": service, "operation": operation, "status": 200, **extra}


def test_spent_counts_lagged_reads_and_notfound_beyond_one_per_deleted_resource() -> None:
    get, tags = TAGGED.observe_ops
    log = [
        _read(TAGGED.create_op, visibleAfter=2.0),  # a write: never waiting
        _read(get, lagged=1, error="ResourceNotFoundException"),
        _read(tags, lagged=1),
        _read(TAGGED.list_op, lagged=2),  # a List serves many objects: left out
        _read(get, error="ThrottlingException"),
        _read(get, error="ResourceNotFoundException"),
        _read(get, error="ResourceNotFoundException"),
        _read(OTHER.observe_ops[0], OTHER.info.service, error="ResourceNotFoundException"),
        _read("GetCallerIdentity", "sts", lagged=1),  # not a kind's service
    ]
    waited = spent(log, deleted=2)
    assert (waited.lagged, waited.doubted, waited.total) == (2, 1, 3)
    assert spent(log, deleted=5).doubted == 0
