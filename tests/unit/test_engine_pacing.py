"""Pacing toward AWS: build polls that learn how long builds take, a limiter that learns a rate limit."""

from __future__ import annotations

import asyncio
from typing import Any

from q_operator.engine.contract import Timing
from q_operator.engine.polling import BuildClock
from q_operator.engine.reconcile import Decision, Deps, Trigger

from .engine_fakes import World, world


def test_an_unknown_build_is_polled_on_a_growing_interval_from_its_start() -> None:
    clock = BuildClock()
    clock.begin("a", "QPlugin/create", 100.0)
    assert clock.next_poll("a", 100.0, 1.0, 15.0) == 1.0
    assert clock.next_poll("a", 101.0, 1.0, 15.0) == 1.0
    assert clock.next_poll("a", 104.0, 1.0, 15.0) == 4.0
    assert clock.next_poll("a", 160.0, 1.0, 15.0) == 15.0


def test_with_the_default_first_build_factor_a_first_build_is_seen_within_a_fifth_of_its_time() -> None:
    """The first builds of a kind are what its duration is learned from, and a bulk apply's last
    object waits for them: a 5 s build is seen at 5 s (at 6.75 s with the restart fallback's 0.5)."""
    factor = Timing().first_build_factor
    for build_seconds in (5.0, 12.0, 40.0):
        clock = BuildClock()
        clock.begin("a", "QPlugin/create", 0.0)
        now = 0.0
        while now < build_seconds:
            now += clock.next_poll("a", now, 1.0, 15.0, factor) or 0.0
        assert now - build_seconds <= build_seconds / 5, (build_seconds, now)


def test_a_build_whose_start_is_not_known_is_left_to_the_caller() -> None:
    assert BuildClock().next_poll("never-begun", 5.0, 1.0, 15.0) is None


def test_once_builds_are_timed_the_first_poll_waits_until_the_build_should_be_done() -> None:
    clock = BuildClock()
    clock.begin("a", "QPlugin/create", 0.0)
    clock.next_poll("a", 4.0, 1.0, 15.0)  # seen running at 4 s
    clock.done("a", 6.0)  # seen READY at 6 s: it took between 4 and 6
    clock.begin("b", "QPlugin/create", 100.0)
    assert clock.next_poll("b", 100.0, 1.0, 15.0) == 5.0
    # past the expected time, polls grow again from that moment
    assert clock.next_poll("b", 105.5, 1.0, 15.0) == 1.0
    assert clock.next_poll("b", 112.0, 1.0, 15.0) == 7.0


def test_a_build_found_ready_at_the_first_poll_makes_the_next_first_poll_earlier() -> None:
    clock = BuildClock()
    clock.begin("a", "QPlugin/create", 0.0)
    clock.done("a", 6.0)
    first = clock.typical["QPlugin/create"]
    clock.begin("b", "QPlugin/create", 10.0)
    clock.done("b", 10.0 + first)
    assert clock.typical["QPlugin/create"] < first


def test_builds_of_different_kinds_and_steps_are_timed_apart() -> None:
    clock = BuildClock()
    clock.begin("a", "QPlugin/create", 0.0)
    clock.next_poll("a", 8.0, 1.0, 15.0)
    clock.done("a", 10.0)
    clock.begin("b", "QPlugin/update", 0.0)
    assert clock.next_poll("b", 0.0, 1.0, 15.0) == 1.0


def test_a_forgotten_build_teaches_nothing() -> None:
    clock = BuildClock()
    clock.begin("a", "QPlugin/create", 0.0)
    clock.abandon("a")
    clock.done("a", 50.0)
    assert clock.typical == {}


def test_polls_that_run_late_do_not_teach_a_longer_build() -> None:
    """A busy operator polls later than planned: learning from the late READY would feed on itself."""
    clock = BuildClock()
    clock.begin("a", "QPlugin/create", 0.0)
    clock.next_poll("a", 4.0, 1.0, 15.0)
    clock.done("a", 6.0)  # typical 5
    for i in range(20):
        start = 100.0 * (i + 1)
        clock.begin(f"b{i}", "QPlugin/create", start)
        planned = clock.next_poll(f"b{i}", start, 1.0, 15.0)
        assert planned is not None
        clock.done(f"b{i}", start + planned + 3.0)  # every poll runs 3 s late and finds READY
    assert clock.typical["QPlugin/create"] < 5.0


class _OneProcess(World):
    """A World whose engine state (build clock, fresh intents) lives across cycles, as in one process."""

    _kept: Deps | None = None

    @property
    def deps(self) -> Deps:
        if self._kept is None:
            self._kept = World.deps.fget(self)  # type: ignore[attr-defined]
        return self._kept

    def restart(self) -> None:
        self._kept = None
        World.restart(self)


def _one_process(**kwargs: Any) -> _OneProcess:
    w = world(**kwargs)
    return _OneProcess(w.cloud, w.clock, w.kind, w.spec)


def test_a_create_this_process_just_intended_is_looked_for_only_once() -> None:
    """find_before_create kinds look before the intent; the look after it would find nothing."""
    w = _one_process(tags=False, find_before_create=True)
    asyncio.run(w.converge())
    assert w.cloud.calls.count("find") == 1 and w.cloud.calls.count("create") == 1


def test_after_a_restart_an_intent_is_looked_for_again() -> None:
    """A create may have reached AWS before the crash: the new process looks before creating (and, as
    nothing shows, goes on looking until the consistency bound has passed: it may be too new to show)."""
    w = _one_process(tags=False, find_before_create=True)
    asyncio.run(w.cycle())  # intent recorded
    w.restart()
    asyncio.run(w.converge())
    assert w.cloud.calls.count("find") >= 2 and w.cloud.calls.count("create") == 1
    assert w.cloud.calls.index("create") > 2  # not before the second look


def test_a_drift_check_during_a_polled_build_calls_nothing() -> None:
    """The change handler polls a build on its own schedule; the timer does not repeat its calls."""
    w = _one_process(build_polls=3)
    asyncio.run(w.cycle())  # intent
    asyncio.run(w.cycle())  # create: the build starts
    calls = len(w.cloud.calls)
    outcome = asyncio.run(w.cycle(Trigger.DRIFT))
    assert outcome.decision is Decision.STOP and len(w.cloud.calls) == calls
    asyncio.run(w.converge())
    assert w.condition("Ready")["status"] == "True"
    asyncio.run(w.cycle(Trigger.DRIFT))
    assert len(w.cloud.calls) > calls  # once Ready, drift checks look again


def test_polling_stops_counting_for_a_build_left_behind() -> None:
    clock = BuildClock()
    clock.begin("a", "QPlugin/create", 0.0)
    assert clock.polling("a", 10.0)
    assert not clock.polling("a", 601.0)
    clock.done("a", 11.0)
    assert not clock.polling("a", 12.0)


def test_a_kind_ready_at_once_is_looked_at_sooner_than_poll_min() -> None:
    """Library items and connectors have no build: once that is learned, Ready follows within 0.25 s."""
    clock = BuildClock()
    for i in range(5):
        start = 10.0 * i
        clock.begin(f"x{i}", "Item/create", start)
        delay = clock.next_poll(f"x{i}", start, 1.0, 15.0)
        assert delay is not None
        clock.done(f"x{i}", start + delay)
    clock.begin("y", "Item/create", 100.0)
    assert clock.next_poll("y", 100.0, 1.0, 15.0) == 0.25
    # still building at that look: back to poll_min
    assert clock.next_poll("y", 100.3, 1.0, 15.0) == 1.0
