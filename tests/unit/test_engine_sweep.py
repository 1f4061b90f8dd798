"""List mode's sweep (engine/sweep.py), driven by hand on a fake clock: which summaries wake which
object, paging to the end, a throttled listing resumed from its token, what is ignored, and when a
drift check may be skipped."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from q_operator.engine import conditions as c
from q_operator.engine import controls
from q_operator.engine.contract import Decision, Deps, ObjectView, ObserveEach, Outcome
from q_operator.engine.controls import DRIFT_INTERVAL_ANNOTATION
from q_operator.engine.errors import RetryableError
from q_operator.engine.identity import Role
from q_operator.engine.memory import Memory
from q_operator.engine.sweep import Parent, Sweeper, differences
from q_operator.kinds.base import Adapter, KindInfo, Page, Summary

from .engine_fakes import thing_kind

T = TypeVar("T")
APP = "app-1"


class Lister:
    """The kind's `list_page`: pages by token, and errors to raise on given calls."""

    def __init__(self) -> None:
        self.pages: dict[str | None, Page] = {}
        self.asked: list[str | None] = []
        self.fail: dict[int, Exception] = {}

    def list_page(self, parent: dict[str, str], token: str | None) -> Page:
        self.asked.append(token)
        error = self.fail.pop(len(self.asked), None)
        if error is not None:
            raise error
        assert parent == {"app": APP}
        return self.pages[token]


class Caller:
    """An AwsCaller that runs the verb at once on the lister."""

    def __init__(self, lister: Lister) -> None:
        self.lister = lister

    async def call(
        self,
        kind: KindInfo[Any, Any],
        region: str | None,
        step: str,
        fn: Callable[[Adapter[Any]], T],
        logger: logging.LoggerAdapter[logging.Logger],
        role: Role | None = None,
    ) -> T:
        return fn(self.lister)  # type: ignore[arg-type]

    async def account(self, role: Role | None) -> str | None:
        return "123456789012"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def never(seconds: float) -> Awaitable[None]:
    """The sweep's own task waits forever: the tests drive the listings by hand."""
    return asyncio.get_running_loop().create_future()


def kind() -> KindInfo[Any, Any]:
    return dataclasses.replace(thing_kind(), ref_fields=("app", "thingId"), list_parent=("app",))


def ready_status(thing_id: str, updated: str = "t0") -> dict[str, Any]:
    conditions = [
        {"type": c.READY, "status": "True", "reason": "Available", "observedGeneration": 1},
        {"type": c.SYNCED, "status": "True", "reason": "ReconcileSuccess", "observedGeneration": 1},
    ]
    return {
        "app": APP,
        "thingId": thing_id,
        "updatedAt": updated,
        "state": "ON",
        "conditions": conditions,
        "observedGeneration": 1,
    }


def view(thing_id: str, status: dict[str, Any] | None = None) -> ObjectView:
    return ObjectView(
        uid=f"uid-{thing_id}",
        namespace="ns",
        name=thing_id,
        generation=1,
        spec={"name": thing_id},
        status=ready_status(thing_id) if status is None else status,
    )


def summary(thing_id: str, updated: str = "t0") -> Summary:
    return Summary({"app": APP, "thingId": thing_id}, {"updatedAt": updated, "state": "ON"})


class Setup:
    def __init__(self) -> None:
        self.clock = Clock()
        self.memory = Memory()
        self.lister = Lister()
        self.deps = Deps(aws=Caller(self.lister), read_configmap=_no_configmap, memory=self.memory)
        self.sweeper = Sweeper(self.memory, 60.0, 3600.0, clock=self.clock, sleep=never)
        self.woken: list[tuple[str, str]] = []

        async def wake(kind: KindInfo[Any, Any], namespace: str, name: str, found: str) -> None:
            self.woken.append((name, found.split(" ", 1)[1]))

        self.sweeper.wake = wake
        self.kind = kind()

    def watch(self, *thing_ids: str) -> None:
        for thing_id in thing_ids:
            self.sweeper.note(self.kind, view(thing_id), Outcome(Decision.DONE), self.deps)

    @property
    def parent(self) -> Parent:
        [parent] = self.sweeper.parents.values()
        return parent


async def _no_configmap(namespace: str, name: str) -> None:
    return None


def run(body: Callable[[Setup], Coroutine[Any, Any, None]]) -> Setup:
    setup = Setup()

    async def main() -> None:
        try:
            await body(setup)
        finally:
            for parent in setup.sweeper.parents.values():
                if parent.task is not None:
                    parent.task.cancel()

    asyncio.run(main())
    return setup


def test_one_listing_pages_to_the_end_and_wakes_only_what_changed_or_went() -> None:
    async def body(s: Setup) -> None:
        s.watch("a", "b", "c", "d")
        s.clock.now += 10  # the listing begins after they were noted
        s.lister.pages = {
            None: Page((summary("a"), summary("b", updated="t1")), "next"),
            "next": Page((summary("c"), summary("not-ours", updated="t9"))),
        }
        assert await s.sweeper._list(s.parent) is None
        assert s.lister.asked == [None, "next"]
        assert sorted(s.woken) == [("b", "updatedAt changed"), ("d", "not listed")]
        assert s.parent.completed == s.clock.now

    run(body)


def test_a_throttled_listing_resumes_from_its_token_and_then_completes() -> None:
    async def body(s: Setup) -> None:
        s.watch("a", "b")
        s.clock.now += 10
        s.lister.pages = {None: Page((summary("a"),), "next"), "next": Page((summary("b"),))}
        s.lister.fail = {2: RetryableError(c.THROTTLED, "slow down", 3.0)}
        assert await s.sweeper._list(s.parent) == 3.0
        assert s.parent.token == "next" and s.parent.completed is None
        assert await s.sweeper._list(s.parent) is None
        assert s.lister.asked == [None, "next", "next"]  # resumed, not started over
        assert s.woken == [] and s.parent.completed is not None

    run(body)


def test_a_parent_that_is_gone_wakes_everything_under_it() -> None:
    async def body(s: Setup) -> None:
        s.watch("a", "b")
        s.clock.now += 10
        s.lister.fail = {1: RetryableError(c.DEPENDENCY_NOT_FOUND, "no such application", 300.0)}
        assert await s.sweeper._list(s.parent) is None
        assert sorted(s.woken) == [("a", "not listed"), ("b", "not listed")]

    run(body)


def test_an_object_noted_during_the_listing_is_not_judged_by_it() -> None:
    """A page older than the object's status (or a listing begun before it was watched) says nothing."""

    async def body(s: Setup) -> None:
        s.watch("a")
        s.lister.pages = {None: Page(())}
        # noted at the same moment the listing begins: not "not listed"
        assert await s.sweeper._list(s.parent) is None
        assert s.woken == []

    run(body)


def test_drift_checks_are_skipped_only_while_a_working_sweep_watches_and_no_full_check_is_due() -> None:
    async def body(s: Setup) -> None:
        s.watch("a", "b")
        assert s.sweeper.covers(s.kind, view("a")), "just noted: its parent's first listing is coming"
        s.clock.now += 10
        s.lister.pages = {None: Page((summary("a"), summary("b", updated="t1")))}
        await s.sweeper._list(s.parent)
        assert s.sweeper.covers(s.kind, view("a"))
        assert not s.sweeper.covers(s.kind, view("b")), "woken: its drift check observes it"
        assert not s.sweeper.covers(s.kind, dataclasses.replace(view("a"), generation=2))
        s.clock.now += 2 * 60 + 31  # no listing has worked since
        assert not s.sweeper.covers(s.kind, view("a")), "a sweep that stopped working covers nothing"
        s.watch("c")
        s.clock.now += 3600
        assert not s.sweeper.covers(s.kind, view("c")), "the full check is due"

    run(body)


def annotated(thing_id: str, interval: str | None) -> ObjectView:
    """A Ready object with its own drift interval (q-operator.dev/drift-interval), None: without."""
    annotations = {} if interval is None else {DRIFT_INTERVAL_ANNOTATION: interval}
    return dataclasses.replace(view(thing_id), annotations=annotations)


@pytest.mark.parametrize(
    ("operator", "interval", "covered"),
    [
        pytest.param(60.0, None, True, id="the-operators-own"),
        pytest.param(60.0, "60s", True, id="equal"),
        pytest.param(60.0, "10m", True, id="longer-left-to-the-sweep"),
        pytest.param(60.0, "48h", True, id="above-the-ceiling-is-24h-longer"),
        pytest.param(60.0, "45s", False, id="shorter-observed-on-its-own"),
        pytest.param(60.0, "5s", False, id="below-the-floor-is-30s-still-shorter"),
        pytest.param(10.0, "5s", True, id="below-the-floor-is-30s-longer-than-a-10s-operator"),
        pytest.param(60.0, "soon", True, id="unreadable-is-the-operators"),
    ],
)
def test_only_a_drift_interval_shorter_than_the_operators_takes_an_object_from_its_sweep(
    operator: float, interval: str | None, covered: bool
) -> None:
    """docs/engine.md#drift-interval: the parent is listed at the operator's interval, so an object
    asking for less often stays with it; one asking for more often (after the 30s..24h clamp) is
    observed by its own drift checks."""

    async def body(s: Setup) -> None:
        s.sweeper.interval = operator
        obj = annotated("a", interval)
        s.sweeper.note(s.kind, obj, Outcome(Decision.DONE), s.deps)
        assert s.sweeper.covers(s.kind, obj) is covered

    run(body)


def test_a_longer_drift_interval_is_still_listed_and_corrected_at_the_operators_interval() -> None:
    """A 10m object under a 60 s operator: its parent's sweep lists every 60 s whatever the object
    asks, so a change made by hand wakes it at the next listing, not 10 minutes on. Its own drift
    checks (every 10m) call nothing while the sweep works, until the full check is due."""
    times: list[float] = []

    async def body(s: Setup) -> None:
        def listing(parent: dict[str, str], token: str | None) -> Page:
            times.append(s.clock.now)
            return Page((summary("a", updated="t0" if len(times) == 1 else "t1"),))  # changed after the 1st

        async def sleep(seconds: float) -> None:
            s.clock.now += seconds
            if len(times) >= 3:
                await never(0)  # three listings are enough
            await asyncio.sleep(0)

        s.lister.list_page = listing  # type: ignore[method-assign]
        s.sweeper.sleep = sleep
        obj = annotated("a", "10m")
        s.sweeper.note(s.kind, obj, Outcome(Decision.DONE), s.deps)
        for _ in range(1000):
            if len(times) >= 3:
                break
            await asyncio.sleep(0)
        assert [b - a for a, b in itertools.pairwise(times)] == [60.0, 60.0]
        assert s.woken == [("a", "updatedAt changed")], "found by the listing after the change"
        fresh = annotated("b", "10m")
        s.sweeper.note(s.kind, fresh, Outcome(Decision.DONE), s.deps)
        assert s.sweeper.covers(s.kind, fresh), "its drift checks call nothing"
        s.clock.now += 3600
        assert not s.sweeper.covers(s.kind, fresh), "the full check is due: its next drift check observes it"

    run(body)


def test_only_a_ready_cycle_keeps_an_object_watched() -> None:
    async def body(s: Setup) -> None:
        s.watch("a")
        assert s.memory.peek("uid-a") is not None and s.memory.peek("uid-a").watched is not None  # type: ignore[union-attr]
        s.sweeper.note(s.kind, view("a"), Outcome(Decision.REQUEUE, 1.0), s.deps)
        assert s.memory.peek("uid-a").watched is None  # type: ignore[union-attr]
        assert "a" not in {ref[1][1] for ref in s.parent.members}
        failed = ready_status("a")
        failed["conditions"][1] = {**failed["conditions"][1], "status": "False"}
        s.sweeper.note(s.kind, view("a", failed), Outcome(Decision.DONE), s.deps)
        assert s.memory.peek("uid-a").watched is None  # type: ignore[union-attr]

    run(body)


def test_a_resume_takes_over_converged_objects_only() -> None:
    async def body(s: Setup) -> None:
        assert s.sweeper.takes_over(s.kind, view("a"), s.deps)
        pending = {**ready_status("b"), "createPending": {"token": "x", "since": "now"}}
        assert not s.sweeper.takes_over(s.kind, view("b", pending), s.deps)
        stale = {**ready_status("c"), "observedGeneration": 0}
        assert not s.sweeper.takes_over(s.kind, view("c", stale), s.deps)
        assert ObserveEach().takes_over(s.kind, view("a"), s.deps) is False

    run(body)


def test_a_resume_leaves_an_object_to_its_own_cycle_when_a_control_waits() -> None:
    """A pause, or a reconcile request, set while the operator was down: the object's own cycle must
    record the pause (and call nothing) or act on the request; its parent's sweep would do neither."""

    def annotated(
        thing_id: str, annotations: dict[str, str], status: dict[str, Any] | None = None
    ) -> ObjectView:
        return dataclasses.replace(view(thing_id, status), annotations=annotations)

    async def body(s: Setup) -> None:
        assert not s.sweeper.takes_over(s.kind, annotated("p", {controls.PAUSED_ANNOTATION: "true"}), s.deps)
        asked = {controls.RECONCILE_REQUEST_ANNOTATION: "r1"}
        assert not s.sweeper.takes_over(s.kind, annotated("r", asked), s.deps)
        handled = {**ready_status("h"), controls.HANDLED_REQUEST_KEY: "r1"}
        assert s.sweeper.takes_over(s.kind, annotated("h", asked, handled), s.deps)
        resumed = {controls.PAUSED_ANNOTATION: "false"}
        assert s.sweeper.takes_over(s.kind, annotated("u", resumed), s.deps)

    run(body)


@pytest.mark.parametrize(
    ("seen", "status", "changed"),
    [
        ({"updatedAt": "t1"}, {"updatedAt": "t1"}, []),
        ({"updatedAt": "t2"}, {"updatedAt": "t1"}, ["updatedAt"]),
        ({"categories": ["b", "a"]}, {"categories": ["a", "b"]}, []),  # AWS keeps no order
        ({"isVerified": True}, {}, ["isVerified"]),
    ],
)
def test_differences(seen: dict[str, Any], status: dict[str, Any], changed: list[str]) -> None:
    assert differences(seen, status) == changed
