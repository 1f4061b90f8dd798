"""The kopf edge and its bridge: how an Outcome becomes kopf's decision, how a body becomes an
ObjectView, how kopf is made to act on spec changes, and how a ConfigMap change reaches objects."""

from __future__ import annotations

import json
from typing import Any

import kopf
import pytest

from q_operator.engine import bridge, configmaps, process
from q_operator.engine.reconcile import Decision, Outcome, Trigger


@pytest.mark.parametrize(
    ("outcome", "trigger", "deleting", "expected", "delay"),
    [
        pytest.param(Outcome(Decision.DONE), Trigger.CHANGE, False, None, None, id="done-returns"),
        pytest.param(
            Outcome(Decision.REQUEUE, 2.0),
            Trigger.CHANGE,
            False,
            kopf.TemporaryError,
            2.0,
            id="short-requeue-is-a-temporary-error-with-that-delay",
        ),
        pytest.param(
            Outcome(Decision.REQUEUE, 0.0),
            Trigger.CHANGE,
            False,
            kopf.TemporaryError,
            0.0,
            id="intent-recorded-requeues-at-once",
        ),
        pytest.param(
            Outcome(Decision.REQUEUE, 300.0),
            Trigger.CHANGE,
            False,
            kopf.PermanentError,
            None,
            id="slow-retry-parks-so-a-spec-change-is-seen-at-once",
        ),
        pytest.param(
            Outcome(Decision.REQUEUE, 300.0),
            Trigger.CHANGE,
            True,
            kopf.TemporaryError,
            300.0,
            id="deletion-never-parks-the-finalizer-stays",
        ),
        pytest.param(
            Outcome(Decision.STOP, message="bad"),
            Trigger.CHANGE,
            False,
            kopf.PermanentError,
            None,
            id="stop-is-permanent-until-the-spec-changes",
        ),
        pytest.param(Outcome(Decision.STOP), Trigger.DRIFT, False, None, None, id="timer-stop-just-waits"),
        pytest.param(
            Outcome(Decision.REQUEUE, 0.0),
            Trigger.DRIFT,
            False,
            kopf.TemporaryError,
            1.0,
            id="timer-requeue-never-spins-at-zero",
        ),
        pytest.param(
            Outcome(Decision.REQUEUE, 300.0),
            Trigger.DRIFT,
            False,
            kopf.TemporaryError,
            300.0,
            id="timer-slow-retry-waits-in-the-timer",
        ),
    ],
)
def test_outcome_maps_onto_kopf(
    outcome: Outcome, trigger: Trigger, deleting: bool, expected: type[Exception] | None, delay: float | None
) -> None:
    error = bridge.verdict(outcome, trigger, deleting)
    if expected is None:
        assert error is None
        return
    assert isinstance(error, expected)
    if delay is not None:
        assert isinstance(error, kopf.TemporaryError) and error.delay == delay


def body(rv: str = "5", **status: object) -> dict[str, object]:
    return {
        "metadata": {
            "uid": "u1",
            "namespace": "ns",
            "name": "n",
            "generation": 3,
            "resourceVersion": rv,
            "annotations": {"q-operator.dev/adopt-id": "x"},
            "deletionTimestamp": None,
        },
        "spec": {"name": "a"},
        "status": dict(status),
    }


def test_object_view_reads_the_body() -> None:
    view = bridge.object_view(body(thingId="t-1"), 2, None)
    assert (view.uid, view.namespace, view.name, view.generation, view.retry) == ("u1", "ns", "n", 3, 2)
    assert view.status == {"thingId": "t-1"} and view.annotations["q-operator.dev/adopt-id"] == "x"
    assert not view.deleting


def test_object_view_overlays_our_patches_on_an_older_body() -> None:
    """A timer may run on a body from before our own patches arrived: it sees them, not stale status."""
    wrote = {"createPending": None, "thingId": "t-2", "conditions": [{"type": "Ready"}]}
    stale = bridge.object_view(body("5", createPending={"token": "t", "since": "s"}), 0, wrote)
    assert stale.status == {"thingId": "t-2", "conditions": [{"type": "Ready"}]}
    fresh = bridge.object_view(body("6", thingId="t-2", conditions=[{"type": "Ready"}]), 0, wrote)
    assert fresh.status == {"thingId": "t-2", "conditions": [{"type": "Ready"}]}  # nothing to add


def test_merge_patch_is_the_api_servers_merge() -> None:
    """Maps merge, None removes, lists and scalars replace; merged patches keep their removals."""
    target = {"a": {"x": 1, "y": 2}, "b": [1], "c": 3}
    patch = {"a": {"y": None, "z": 4}, "b": [2], "c": None}
    assert bridge.merge_patch(target, patch) == {"a": {"x": 1, "z": 4}, "b": [2]}
    kept = bridge.merge_patch({}, patch, keep_removals=True)
    assert bridge.merge_patch(target, kept) == {"a": {"x": 1, "z": 4}, "b": [2]}


def one_cycle(deps: Any, trigger: Trigger, version: str = "5") -> None:
    """One `bridge.run_cycle` of the first registered kind on `body(version)`, outside deletion."""
    import asyncio

    from q_operator import registry

    asyncio.run(
        bridge.run_cycle(
            deps,
            registry.KINDS[0],
            trigger,
            kopf.Body(body(version)),  # type: ignore[arg-type]
            kopf.Patch(),
            deleting=False,
        )
    )


def test_a_cycle_on_a_body_older_than_several_of_our_patches_sees_them_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under a backlog kopf can hand a timer a body from before the intent *and* the create were
    written (it once recorded a second intent for an object whose plugin existed): every cycle sees
    the status as all our patches left it, whichever version its body is."""

    from q_operator.engine.reconcile import Deps

    seen: list[dict[str, Any]] = []
    writes = iter(
        [
            {"createPending": {"token": "t", "since": "s"}},  # cycle 1 records the intent
            {"createPending": None, "thingId": "t-1"},  # cycle 2 creates
            {"conditions": [{"type": "Ready", "status": "False"}]},  # cycle 3 polls the build
            {},
        ]
    )

    async def fake_reconcile(kind: object, obj: bridge.ObjectView, deps: object, trigger: object) -> Outcome:
        seen.append(dict(obj.status))
        return Outcome(Decision.REQUEUE, 1.0, next(writes))

    deps = Deps(aws=None, read_configmap=None)  # type: ignore[arg-type]
    monkeypatch.setattr(bridge, "reconcile", fake_reconcile)
    for version in ("1", "2", "3", "1"):  # the last body is from before any of our writes
        with pytest.raises(kopf.TemporaryError):
            one_cycle(deps, Trigger.DRIFT, version)
    assert seen[3] == {"thingId": "t-1", "conditions": [{"type": "Ready", "status": "False"}]}


def test_a_poll_in_the_handler_is_due_its_delay_after_the_cycle_decided_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A build polled inside the handler call: the status write between two looks is part of the
    wait, not added to it, so looks a second apart stay a second apart."""
    import asyncio
    import time

    from q_operator.engine.reconcile import Deps

    slept: list[float] = []
    outcomes = iter([Outcome(Decision.REQUEUE, 1.0, {"step": 1}), Outcome(Decision.DONE, 0.0, {"step": 2})])

    async def fake_reconcile(kind: object, obj: bridge.ObjectView, deps: object, trigger: object) -> Outcome:
        return next(outcomes)

    async def slow_write(kind: object, namespace: str, name: str, patch: object) -> str:
        await asyncio.sleep(0.3)  # an API server under load
        return "6"

    async def record(seconds: float) -> None:
        slept.append(seconds)

    deps = Deps(aws=None, read_configmap=None, write_status=slow_write, sleep=record)  # type: ignore[arg-type]
    deps.builds.begin("u1", "Thing/create", deps.now().timestamp())
    monkeypatch.setattr(bridge, "reconcile", fake_reconcile)
    started = time.monotonic()
    one_cycle(deps, Trigger.CHANGE)
    assert len(slept) == 1 and slept[0] <= 0.7 + 1e-3, slept
    assert slept[0] >= 1.0 - (time.monotonic() - started)


def test_kopf_storage_prefix_keeps_our_annotations_visible_as_changes() -> None:
    """kopf ignores changes to annotations under its own prefix; ours must not be under it."""
    assert not configmaps.CONFIGMAP_HASH.startswith(bridge.KOPF_PREFIX + "/")
    assert not "q-operator.dev/adopt-id".startswith(bridge.KOPF_PREFIX + "/")


def test_kopf_diff_essence_keeps_adopt_and_configmap_annotations() -> None:
    """With our storage prefix, kopf still treats adopt-id and configmap-hash edits as changes."""
    storage = kopf.AnnotationsDiffBaseStorage(prefix=bridge.KOPF_PREFIX)
    raw = body()
    raw["metadata"]["annotations"] = {  # type: ignore[index]
        f"{bridge.KOPF_PREFIX}/kopf-managed": "yes",
        f"{bridge.KOPF_PREFIX}/last-handled-configuration": "{}",
        "q-operator.dev/adopt-id": "x",
        configmaps.CONFIGMAP_HASH: "abc",
    }
    essence = storage.build(body=kopf.Body(raw))  # type: ignore[arg-type]
    kept = essence.get("metadata", {}).get("annotations", {})
    assert set(kept) == {"q-operator.dev/adopt-id", configmaps.CONFIGMAP_HASH}


def test_troubleshooting_explains_every_reason() -> None:
    """docs/troubleshooting.md names every Ready and Synced reason the engine can write."""
    from pathlib import Path

    from q_operator.engine import conditions

    text = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()
    missing = [r for r in (*conditions.READY_REASONS, *conditions.SYNCED_REASONS) if f"`{r}`" not in text]
    assert not missing, f"undocumented reasons: {missing}"


def test_every_reason_in_the_error_table_is_a_known_reason() -> None:
    from q_operator.engine import conditions
    from q_operator.engine.errors import ERROR_TABLE

    assert {rule.reason for rule in ERROR_TABLE.values()} <= set(conditions.SYNCED_REASONS)


def _deleting(
    generation: int, observed: int, delayed: bool, handled: dict[str, Any] | None = None
) -> kopf.Body:
    record = '{"started":"2026-01-01T00:00:00.000000+00:00","retries":1'
    record += ',"delayed":"2099-01-01T00:00:00.000000+00:00"}' if delayed else ',"success":true}'
    raw = body(observedGeneration=observed)
    annotations = {f"{bridge.KOPF_PREFIX}/delete": record}
    if handled is not None:
        annotations[f"{bridge.KOPF_PREFIX}/last-handled-configuration"] = json.dumps({"spec": handled})
    raw["metadata"].update(  # type: ignore[union-attr]
        generation=generation,
        deletionTimestamp="2026-01-01T00:00:00Z",
        annotations=annotations,
    )
    return kopf.Body(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("generation", "observed", "delayed", "handled", "woken"),
    [
        pytest.param(4, 3, True, None, True, id="spec-changed-during-a-delayed-deletion-runs-it-now"),
        pytest.param(4, 3, True, {"other": 1}, True, id="a-spec-unlike-the-handled-one-runs-it-now"),
        # kube-apiserver bumps the generation when it sets deletionTimestamp: no spec change.
        pytest.param(4, 3, True, "same", False, id="the-deletion-alone-keeps-the-slow-retry"),
        pytest.param(3, 3, True, None, False, id="unchanged-spec-keeps-the-slow-retry"),
        pytest.param(4, 3, False, None, False, id="a-finished-handler-is-left-alone"),
    ],
)
def test_spec_change_wakes_a_waiting_deletion(
    generation: int, observed: int, delayed: bool, handled: Any, woken: bool
) -> None:
    """forceDelete set while an in-use connector's deletion waits a minute is acted on at once."""
    patch = kopf.Patch()
    if handled == "same":
        handled = dict(body(observedGeneration=observed)["spec"])
    deleting = _deleting(generation, observed, delayed, handled)
    if bridge.lagging(deleting):
        bridge.catch_up_on_spec_change(deleting, patch)
    key = f"{bridge.KOPF_PREFIX}/delete"
    assert (patch.get("metadata", {}).get("annotations", {}).get(key, "kept") is None) is woken


def _reverted(spec: dict[str, Any], handled_spec: dict[str, Any]) -> kopf.Body:
    """An object whose update handler backs off (status at generation 2) and whose spec is now 3."""
    raw = body(observedGeneration=2)
    raw["spec"] = spec
    handled = json.dumps(
        {"spec": handled_spec, "metadata": {"annotations": {"q-operator.dev/adopt-id": "x"}}}
    )
    raw["metadata"].update(  # type: ignore[union-attr]
        generation=3,
        deletionTimestamp=None,
        annotations={
            "q-operator.dev/adopt-id": "x",
            f"{bridge.KOPF_PREFIX}/last-handled-configuration": handled,
            f"{bridge.KOPF_PREFIX}/update": json.dumps({"started": "2026-01-01", "delayed": "2099-01-01"}),
        },
    )
    return kopf.Body(raw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("handled_spec", "forced"),
    [
        pytest.param({"name": "a"}, True, id="spec-back-to-the-last-handled-one-is-reconciled-now"),
        pytest.param({"name": "b"}, False, id="a-change-kopf-sees-runs-without-waiting-out-the-back-off"),
    ],
)
def test_reverted_spec_during_a_back_off_is_reconciled_at_once(
    handled_spec: dict[str, Any], forced: bool
) -> None:
    """A change while the update backs off runs now; a revert to the last handled spec, which kopf
    would not see at all, is made visible (an older handled state)."""
    reverted = _reverted({"name": "a"}, handled_spec)
    assert bridge.lagging(reverted)
    patch = kopf.Patch()
    bridge.catch_up_on_spec_change(reverted, patch)
    annotations = patch.get("metadata", {}).get("annotations", {})
    stored = annotations.get(f"{bridge.KOPF_PREFIX}/last-handled-configuration")
    assert (stored is not None and "spec" not in json.loads(stored)) is forced
    assert annotations.get(f"{bridge.KOPF_PREFIX}/update", "kept") is None  # its back-off is dropped


def test_back_off_counts_failed_cycles_not_kopf_requeues(monkeypatch: pytest.MonkeyPatch) -> None:
    """The intent and build polls requeue a healthy create; only failed cycles raise the attempt."""

    from q_operator.engine.reconcile import Deps

    seen: list[int] = []
    synced = {"ok": "True", "bad": "False"}
    script = iter(["ok", "bad", "bad", "ok", "bad"])

    async def fake_reconcile(kind: object, obj: bridge.ObjectView, deps: object, trigger: object) -> Outcome:
        seen.append(obj.retry)
        status = {"conditions": [{"type": "Synced", "status": synced[next(script)]}]}
        return Outcome(Decision.REQUEUE, 1.0, status)

    deps = Deps(aws=None, read_configmap=None)  # type: ignore[arg-type]
    monkeypatch.setattr(bridge, "reconcile", fake_reconcile)
    for _ in range(5):
        with pytest.raises(kopf.TemporaryError):
            one_cycle(deps, Trigger.CHANGE)
    assert seen == [0, 0, 1, 2, 0]


def test_configmap_changes_mark_the_objects_that_refer_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """First sight in the initial listing marks nothing; a change (even one seen in a re-list after a
    watch reconnect), a new ConfigMap or a deleted one marks every referring object once."""
    import asyncio

    from q_operator import registry
    from q_operator.engine.reconcile import Deps

    async def no_read(namespace: str, name: str) -> None:
        return None

    monkeypatch.setattr(process, "_process", process.Process(Deps(aws=None, read_configmap=no_read)))  # type: ignore[arg-type]
    bumped: list[tuple[str, str, str]] = []

    async def bump(kind: object, namespace: str, name: str, digest: str) -> None:
        bumped.append((namespace, name, digest))

    monkeypatch.setattr(configmaps, "_bump", bump)
    kind = registry.KINDS[0]
    index = process.state().deps.memory.index(configmaps.index_name(kind))
    index.replace("uid-a", {("ns", "schema"): "a", ("ns", "other"): "a"})
    index.replace("uid-b", {("ns", "schema"): "b"})

    def event(type_: str | None, data: dict[str, str]) -> None:
        cm = {"metadata": {"namespace": "ns", "name": "schema"}, "data": data}
        asyncio.run(configmaps.on_configmap(event={"type": type_}, body=kopf.Body(cm)))  # type: ignore[arg-type]

    event(None, {"k": "1"})
    assert bumped == []
    event("MODIFIED", {"k": "1"})
    assert bumped == []
    event(None, {"k": "2"})  # changed while the watch was down
    assert sorted(n for _, n, _ in bumped) == ["a", "b"]
    event("DELETED", {})
    assert len(bumped) == 4 and bumped[-1][2] == "deleted"
