"""The user's controls (engine/controls.py, engine/steps/controls.py): pause, observe-only, the
per-object drift interval and reconcile-now, driven through `reconcile()` with the fake adapter, and
the pure rules beside them. The end-to-end proofs are in tests/e2e/test_controls.py."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from q_operator.engine import bridge, controls
from q_operator.engine import conditions as c
from q_operator.engine.controls import (
    DRIFT_CEILING,
    DRIFT_FLOOR,
    DRIFT_INTERVAL_ANNOTATION,
    PAUSED_ANNOTATION,
    RECONCILE_REQUEST_ANNOTATION,
    drift_due,
    drift_interval,
    parse_duration,
    wants_wake,
)
from q_operator.engine.errors import TerminalError
from q_operator.engine.identity import ADOPTION_ALLOWED, ADOPTION_ANNOTATION
from q_operator.engine.reconcile import ADOPT_ANNOTATION, Decision, Trigger
from q_operator.engine.verbs import verbs_for
from q_operator.kinds.base import Observation, Owner, Phase, Resolved
from tests.unit.engine_fakes import Thing, ThingSpec, World, world

T = TypeVar("T")

WRITES = {"create", "update", "delete"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def ready_world() -> World:
    """An object whose resource exists, is ours and matches: Ready."""
    w = world()
    run(w.converge())
    assert w.condition(c.READY)["status"] == "True"
    w.cloud.calls.clear()
    w.events.clear()
    return w


# ----- pause


def test_a_paused_object_calls_aws_for_nothing_and_changes_nothing_but_synced() -> None:
    """Paused before its first cycle: no create, no intent, Synced=False Paused, one event."""
    w = world()
    w.annotations[PAUSED_ANNOTATION] = "true"
    out = run(w.cycle())
    assert out.decision is Decision.DONE
    assert w.cloud.calls == [] and "createPending" not in w.status
    assert (w.condition(c.SYNCED)["status"], w.condition(c.SYNCED)["reason"]) == ("False", c.PAUSED)
    assert "observedGeneration" not in w.status, "a paused cycle acted on no generation"
    run(w.cycle(Trigger.DRIFT))
    assert w.cloud.calls == [] and w.reasons() == [c.EV_PAUSED], "the event is posted once, not per cycle"


def test_a_spec_change_while_paused_waits_for_the_resume() -> None:
    """The change is not applied while paused; removing the annotation applies it."""
    w = ready_world()
    w.annotations[PAUSED_ANNOTATION] = "true"
    w.change_spec(size=4)
    run(w.converge())
    assert w.cloud.calls == [] and w.cloud.things["t-1"].size == 1
    assert w.status["observedGeneration"] == 1 and w.condition(c.READY)["status"] == "True"
    del w.annotations[PAUSED_ANNOTATION]
    run(w.converge())
    assert w.cloud.things["t-1"].size == 4 and w.status["observedGeneration"] == 2
    assert w.condition(c.SYNCED)["reason"] == c.RECONCILE_SUCCESS
    assert c.EV_RESUMED in w.reasons()


def test_a_paused_deletion_keeps_the_finalizer_and_deletes_nothing() -> None:
    """A deletion while paused requeues (never RELEASE) without an AWS call; resuming deletes."""
    w = ready_world()
    w.annotations[PAUSED_ANNOTATION] = "true"
    w.deleting = True
    out = run(w.cycle())
    assert out.decision is Decision.REQUEUE and out.delay > 60
    assert w.cloud.calls == [] and "t-1" in w.cloud.things
    del w.annotations[PAUSED_ANNOTATION]
    out = run(w.converge())
    assert out.decision is Decision.RELEASE and w.cloud.things == {}


@pytest.mark.parametrize(
    ("value", "paused"),
    [("true", True), ("false", False), ("yes", True), ("True", True), ("", True), (None, False)],
)
def test_any_pause_value_but_false_pauses(value: str | None, paused: bool) -> None:
    """Fail closed: a value the operator does not know pauses rather than being ignored."""
    annotations = {} if value is None else {PAUSED_ANNOTATION: value}
    assert controls.is_paused(annotations) is paused


# ----- observe-only


def observing_world(mark: str | None = None, size: int = 1, adoption: bool = True) -> World:
    w = world(managementPolicy="Observe")
    if adoption:
        w.identities.update("ns", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    w.cloud.things["x-5"] = Thing("x-5", "alpha", size, None, mark, w.clock())
    w.annotations[ADOPT_ANNOTATION] = "x-5"
    return w


def test_observe_only_reads_fills_status_and_never_writes() -> None:
    """The named resource is read into status; Ready says it matches; no create, update or tag."""
    w = observing_world()
    out = run(w.converge())
    assert out.decision is Decision.DONE
    assert w.status["thingId"] == "x-5" and w.status["observeOnly"] is True
    assert w.condition(c.READY)["status"] == "True"
    assert (w.condition(c.SYNCED)["status"], w.condition(c.SYNCED)["reason"]) == ("True", c.OBSERVE_ONLY)
    assert not WRITES & set(w.cloud.calls) and w.cloud.things["x-5"].mark is None
    assert c.EV_OBSERVING in w.reasons()


def test_observe_only_reports_a_difference_without_correcting_it() -> None:
    """AWS changed outside: Ready=False DiffersFromSpec naming the field, a Warning, no update."""
    w = observing_world()
    run(w.converge())
    w.cloud.things["x-5"].size = 7
    out = run(w.cycle(Trigger.DRIFT))
    assert out.decision is Decision.DONE
    ready = w.condition(c.READY)
    assert (ready["status"], ready["reason"]) == ("False", c.DIFFERS_FROM_SPEC) and "size" in ready["message"]
    assert w.cloud.things["x-5"].size == 7 and not WRITES & set(w.cloud.calls)
    assert ("Warning", c.EV_DIFFERS) in [(t, r) for t, r, _ in w.events]
    run(w.cycle(Trigger.DRIFT))
    assert [r for r in w.reasons() if r == c.EV_DIFFERS] == [c.EV_DIFFERS], "one event per difference"


def test_observe_only_without_an_id_names_the_annotation_and_calls_nothing() -> None:
    w = world(managementPolicy="Observe")
    out = run(w.cycle())
    assert out.decision is Decision.STOP and w.cloud.calls == []
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.ADOPT_ID_REQUIRED and ADOPT_ANNOTATION in synced["message"]


def test_observe_only_of_a_missing_resource_creates_nothing() -> None:
    w = world(managementPolicy="Observe")
    w.identities.update("ns", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    w.annotations[ADOPT_ANNOTATION] = "x-404"
    out = run(w.cycle())
    assert out.decision is Decision.STOP and w.condition(c.SYNCED)["reason"] == c.ADOPT_TARGET_NOT_FOUND
    assert w.cloud.calls == ["observe"] and w.cloud.things == {}


def test_an_observed_resource_that_disappears_is_not_recreated() -> None:
    w = observing_world()
    run(w.converge())
    del w.cloud.things["x-5"]
    out = run(w.cycle(Trigger.DRIFT))
    assert out.decision is Decision.DONE and w.condition(c.READY)["reason"] == c.UNAVAILABLE
    assert not WRITES & set(w.cloud.calls)


@pytest.mark.parametrize("policy", ["Observe", "Manage"], ids=["still-observe", "switched-to-manage"])
def test_deleting_an_observing_object_leaves_aws_untouched(policy: str) -> None:
    """Released at once, nothing deleted: also when the policy turned Manage before any adoption."""
    w = observing_world()
    run(w.converge())
    w.spec["managementPolicy"] = policy
    w.deleting = True
    w.cloud.calls.clear()
    out = run(w.cycle())
    assert out.decision is Decision.RELEASE and "x-5" in w.cloud.things and w.cloud.calls == []
    assert c.EV_RETAINED in w.reasons()


def test_a_managed_resource_switched_to_observe_is_left_alone_too() -> None:
    """Our own resource, now Observe: drift is reported, not corrected; deletion keeps it."""
    w = ready_world()
    w.change_spec(managementPolicy="Observe")
    w.cloud.things["t-1"].size = 9
    run(w.converge())
    assert w.condition(c.READY)["reason"] == c.DIFFERS_FROM_SPEC and w.cloud.things["t-1"].size == 9
    assert "observeOnly" not in w.status, "it was ours before: no adoption needed to manage it again"
    w.deleting = True
    assert run(w.cycle()).decision is Decision.RELEASE and "t-1" in w.cloud.things


def test_switching_to_manage_takes_over_through_adoption() -> None:
    """Observe → Manage: Adopted, the marker goes, and the next update brings it in line (owner mark)."""
    w = observing_world(size=3)
    run(w.converge())
    assert w.condition(c.READY)["reason"] == c.DIFFERS_FROM_SPEC
    w.change_spec(managementPolicy="Manage")
    run(w.converge())
    assert c.EV_ADOPTED in w.reasons() and "observeOnly" not in w.status
    assert w.cloud.things["x-5"].size == 1 and w.cloud.things["x-5"].mark == "ns.obj.uid-1"
    assert w.cloud.count("create") == 0


def test_switching_to_manage_never_takes_another_objects_resource() -> None:
    """The adoption rules hold for a takeover: another object's resource is refused, and stays unchanged."""
    w = observing_world(mark="other.obj.uid-2", size=3)
    run(w.converge())
    assert "managed by other.obj.uid-2" in w.condition(c.SYNCED)["message"]
    w.change_spec(managementPolicy="Manage")
    out = run(w.converge())
    assert out.decision is Decision.STOP and w.condition(c.SYNCED)["reason"] == c.OWNED_BY_ANOTHER
    assert w.status["observeOnly"] is True, "still only observed: never to be changed"
    assert not WRITES & set(w.cloud.calls) and w.cloud.things["x-5"].size == 3
    run(w.cycle(Trigger.DRIFT))
    assert not WRITES & set(w.cloud.calls)


def test_observing_and_taking_over_both_need_the_adoption_permission() -> None:
    """Naming an existing resource by ID reaches what someone else made, reading included: observing
    follows the namespace's adoption rule (identity.py) with no AWS call before it is allowed, and
    taking the permission back stops the reads and keeps a takeover out."""
    w = observing_world(size=3, adoption=False)
    run(w.cycle())
    synced = w.condition(c.SYNCED)
    assert synced["reason"] == c.ADOPTION_NOT_ALLOWED and synced["message"].startswith("observe refused")
    assert w.cloud.calls == [] and "thingId" not in w.status
    w.identities.update("ns", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    run(w.converge())
    assert w.condition(c.SYNCED)["reason"] == c.OBSERVE_ONLY and w.status["thingId"] == "x-5"
    w.identities.update("ns", {})
    w.cloud.calls.clear()
    run(w.cycle(Trigger.DRIFT))
    assert w.condition(c.SYNCED)["reason"] == c.ADOPTION_NOT_ALLOWED and w.cloud.calls == []
    w.change_spec(managementPolicy="Manage")
    run(w.cycle())
    assert w.condition(c.SYNCED)["reason"] == c.ADOPTION_NOT_ALLOWED
    assert w.status["observeOnly"] is True
    assert not WRITES & set(w.cloud.calls) and w.cloud.things["x-5"].size == 3
    w.identities.update("ns", {ADOPTION_ANNOTATION: ADOPTION_ALLOWED})
    run(w.converge())
    assert c.EV_ADOPTED in w.reasons() and w.cloud.things["x-5"].size == 1


def test_the_verbs_refuse_writes_for_an_observe_only_object_whatever_a_step_asks() -> None:
    """Fail closed below the steps: the guard answers before the call reaches AWS."""
    w = observing_world()
    obj = w.view()
    verbs = verbs_for(w.kind, obj, w.deps, "us-east-1", logging.LoggerAdapter(logging.getLogger("t")))
    spec = ThingSpec(name="alpha")
    owner = Owner("uid-1", "ns", "obj")
    with pytest.raises(TerminalError, match="update refused"):
        run(
            verbs.update(
                spec, {"thingId": "x-5"}, Observation(Phase.READY, diff=("size",)), owner, Resolved()
            )
        )
    with pytest.raises(TerminalError, match="delete refused"):
        run(verbs.delete(spec, {"thingId": "x-5"}, None))
    assert w.cloud.calls == []
    w.annotations[PAUSED_ANNOTATION] = "true"
    paused = verbs_for(w.kind, w.view(), w.deps, "us-east-1", logging.LoggerAdapter(logging.getLogger("t")))
    with pytest.raises(TerminalError, match="observe refused"):
        run(paused.observe(spec, {"thingId": "x-5"}, owner, Resolved(), None))
    assert w.cloud.calls == []


# ----- reconcile now


def test_a_reconcile_request_is_recorded_as_handled_by_the_cycle_that_acts_on_it() -> None:
    w = ready_world()
    w.annotations[RECONCILE_REQUEST_ANNOTATION] = "2026-01-01T12:00:00Z"
    run(w.cycle())
    assert w.status["lastHandledReconcileAt"] == "2026-01-01T12:00:00Z"
    assert w.cloud.calls == ["observe"], "the cycle looked at AWS"


def test_a_reconcile_request_while_paused_is_not_handled() -> None:
    w = ready_world()
    w.annotations[PAUSED_ANNOTATION] = "true"
    w.annotations[RECONCILE_REQUEST_ANNOTATION] = "now"
    run(w.cycle())
    assert "lastHandledReconcileAt" not in w.status and w.cloud.calls == []


# ----- waking kopf's waiting handlers


def synced(reason: str, status: str = "False") -> dict[str, Any]:
    return {"conditions": [{"type": "Synced", "status": status, "reason": reason}]}


@pytest.mark.parametrize(
    ("annotations", "status", "wake"),
    [
        pytest.param({PAUSED_ANNOTATION: "true"}, {}, True, id="pause-not-yet-recorded"),
        pytest.param({PAUSED_ANNOTATION: "true"}, synced(c.PAUSED), False, id="pause-recorded-no-loop"),
        pytest.param(
            {PAUSED_ANNOTATION: "true", RECONCILE_REQUEST_ANNOTATION: "x"},
            synced(c.PAUSED),
            False,
            id="request-while-paused-waits",
        ),
        pytest.param({}, synced(c.PAUSED), True, id="pause-lifted"),
        pytest.param({RECONCILE_REQUEST_ANNOTATION: "x"}, {}, True, id="request-pending"),
        pytest.param(
            {RECONCILE_REQUEST_ANNOTATION: "x"}, {"lastHandledReconcileAt": "x"}, False, id="request-handled"
        ),
        pytest.param({}, synced(c.RECONCILE_SUCCESS, "True"), False, id="nothing-asked"),
    ],
)
def test_waiting_handlers_are_woken_once_per_control_change(
    annotations: dict[str, str], status: dict[str, Any], wake: bool
) -> None:
    assert wants_wake(annotations, status) is wake


# ----- per-object drift interval


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400), (" 45s ", 45)],
)
def test_durations_read_as_go_writes_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "-5m", "5d", "1h 30m", "m"])
def test_what_is_not_a_duration_is_refused(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("value", "seconds", "problem"),
    [
        pytest.param(None, 300, None, id="none-is-the-default"),
        pytest.param("10m", 600, None, id="within-bounds"),
        pytest.param("5s", DRIFT_FLOOR, "below the floor", id="below-floor-clamped"),
        pytest.param("48h", DRIFT_CEILING, "above the ceiling", id="above-ceiling-clamped"),
        pytest.param("soon", 300, "not a duration", id="unreadable-refused-default"),
    ],
)
def test_drift_interval_is_bounded_and_says_what_was_wrong(
    value: str | None, seconds: float, problem: str | None
) -> None:
    annotations = {} if value is None else {DRIFT_INTERVAL_ANNOTATION: value}
    interval = drift_interval(annotations, 300.0)
    assert interval.seconds == seconds
    if problem is None:
        assert interval.problem is None
    else:
        assert interval.problem is not None and problem in interval.problem
        assert DRIFT_INTERVAL_ANNOTATION in interval.problem and "between 30s and 24h" in interval.problem


@pytest.mark.parametrize(
    ("last", "now", "interval", "due"),
    [
        pytest.param(None, 5.0, 300.0, True, id="never-checked"),
        pytest.param(0.0, 270.0, 300.0, False, id="not-yet"),
        pytest.param(0.0, 290.0, 300.0, True, id="due-at-the-nearest-tick"),
        pytest.param(0.0, 30.0, 30.0, True, id="floor-interval-every-tick"),
        pytest.param(0.0, 30.0, 3600.0, False, id="long-interval-skips-ticks"),
    ],
)
def test_a_drift_check_is_due_once_per_interval(
    last: float | None, now: float, interval: float, due: bool
) -> None:
    assert drift_due(last, now, interval, tick=30.0) is due


# ----- the kopf edge (bridge.py)


def kopf_body(annotations: dict[str, str], status: dict[str, Any], deleting: bool = False) -> Any:
    import kopf

    delayed = json.dumps({"started": "2026-01-01T00:00:00+00:00", "delayed": "2099-01-01T00:00:00+00:00"})
    return kopf.Body(
        {
            "metadata": {
                "uid": "u1",
                "namespace": "ns",
                "name": "n",
                "generation": 4,  # the API server bumps it when it sets deletionTimestamp
                "resourceVersion": "7",
                "annotations": {
                    **annotations,
                    f"{bridge.KOPF_PREFIX}/delete": delayed,
                    f"{bridge.KOPF_PREFIX}/update": delayed,
                },
                "deletionTimestamp": "2026-01-01T00:00:00Z" if deleting else None,
            },
            "spec": {"name": "a"},
            "status": {"observedGeneration": 3, **status},
        }
    )


def test_a_paused_object_never_lags_so_no_catch_up_loop() -> None:
    """observedGeneration stays while paused; that must not make the catch-up fire on every event."""
    paused = kopf_body({PAUSED_ANNOTATION: "true"}, synced(c.PAUSED), deleting=True)
    assert not bridge.lagging(paused) and not bridge.control_changed(paused)


def test_lifting_a_pause_wakes_the_waiting_deletion() -> None:
    import kopf

    resumed = kopf_body({}, synced(c.PAUSED), deleting=True)
    assert bridge.control_changed(resumed)
    patch = kopf.Patch()
    bridge.wake(resumed, patch)
    assert patch["metadata"]["annotations"][f"{bridge.KOPF_PREFIX}/delete"] is None


def test_a_reconcile_request_wakes_a_handler_waiting_out_a_requeue() -> None:
    import kopf

    asked = kopf_body({RECONCILE_REQUEST_ANNOTATION: "2026-01-01T12:00:00Z"}, {})
    assert bridge.control_changed(asked)
    patch = kopf.Patch()
    bridge.wake(asked, patch)
    assert patch["metadata"]["annotations"][f"{bridge.KOPF_PREFIX}/update"] is None


def test_paused_cycles_are_no_failures_for_the_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Synced=False Paused is the user's choice, not an error: the attempt count does not grow."""
    import kopf

    from q_operator import registry
    from q_operator.engine.reconcile import Deps, Outcome

    seen: list[int] = []

    async def paused_reconcile(
        kind: object, obj: bridge.ObjectView, deps: object, trigger: object
    ) -> Outcome:
        seen.append(obj.retry)
        return Outcome(Decision.DONE, status={"conditions": [synced(c.PAUSED)["conditions"][0]]})

    deps = Deps(aws=None, read_configmap=None)  # type: ignore[arg-type]
    monkeypatch.setattr(bridge, "reconcile", paused_reconcile)
    for version in "123":
        raw = kopf_body({PAUSED_ANNOTATION: "true"}, {})
        raw["metadata"]["resourceVersion"] = version
        asyncio.run(
            bridge.run_cycle(deps, registry.KINDS[0], Trigger.CHANGE, raw, kopf.Patch(), deleting=False)
        )
    assert seen == [0, 0, 0]


def test_a_timer_requeue_waits_at_most_the_objects_own_interval() -> None:
    import kopf

    from q_operator.engine.reconcile import Outcome

    error = bridge.verdict(Outcome(Decision.REQUEUE, 300.0), Trigger.DRIFT, False, interval=60.0)
    assert isinstance(error, kopf.TemporaryError) and error.delay == 60.0
