"""The fast part of the reliability suite, for `make test`: a handful of scenarios of tests/reliability at
their smallest size (one object per kind), two at a time, each in its own sandbox with the real operator
on a real kube-apiserver of its own (each runs a cluster-wide operator, so they cannot share one).

Each test asserts what the suite's table reports for its scenario: no duplicate, no orphan, nothing
stuck, the AWS-call bound the scenario states, and no problem (operator alive, no traceback).
`make reliability` runs every scenario at full size.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.harness import Result
from tests.reliability.realserver import RealServerRun
from tests.reliability.scenarios import SCENARIOS, TINY, run_scenario

pytestmark = pytest.mark.e2e

FAST = ("kill9", "ratelimit", "nohotloop", "drift", "clash")


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Result]]:
    """Play the fast scenarios, two at a time (they mostly wait on the operator), once per module."""
    root: Path = tmp_path_factory.mktemp("reliability")
    seed = random.randrange(1_000_000)
    chosen = [dataclasses.replace(s, world=RealServerRun) for s in SCENARIOS if s.name in FAST]
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {s.name: pool.submit(run_scenario, s, root / s.name, TINY, seed) for s in chosen}
        results = {name: future.result() for name, future in futures.items()}
    for row in results.values():
        print(f"{row.scenario}: {row.aws_calls} AWS calls, {row.converge_seconds:.1f}s, {row.bound} ({seed})")
    yield results


def assert_clean(row: Result) -> None:
    assert (row.duplicates, row.orphans, row.stuck) == (0, 0, 0), row.problems
    assert not row.problems, row.problems
    assert row.bound_held, row.bound


def test_kill_9_in_the_crash_window_and_at_random_never_duplicates_nor_orphans(
    rows: dict[str, Result],
) -> None:
    assert_clean(rows["kill9"])


def test_a_hard_rate_limit_converges_every_kind_within_the_stated_call_bound(rows: dict[str, Result]) -> None:
    assert_clean(rows["ratelimit"])


def test_invalid_and_access_denied_objects_make_no_hot_loop(rows: dict[str, Result]) -> None:
    assert_clean(rows["nohotloop"])


def test_out_of_band_change_and_deletion_are_corrected_within_the_drift_interval(
    rows: dict[str, Result],
) -> None:
    assert_clean(rows["drift"])


def test_the_same_name_in_two_namespaces_never_takes_over_the_other_resource(rows: dict[str, Result]) -> None:
    assert_clean(rows["clash"])
