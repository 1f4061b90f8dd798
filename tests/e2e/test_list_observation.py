"""List mode (`Q_OPERATOR_OBSERVE_MODE=list`), end to end, for every kind: Ready objects are watched by
one List sweep per parent (application, Q Apps instance, region) and drift interval, not read one by
one; an out-of-band update and an out-of-band deletion are found by that sweep within one interval
and corrected by the object's own cycle. The counts come from the AWS stand-in's request log."""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import Any

import pytest

from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import TEST_KINDS, KindFacts

from .helpers import apply, client, wait_event_reasons

DRIFT = 10.0
AWS_ARGS = ["--build-seconds", "0.5"]
OPERATOR_ENV = {
    "Q_OPERATOR_DRIFT_SECONDS": f"{DRIFT:g}",
    "Q_OPERATOR_OBSERVE_MODE": "list",
    "Q_OPERATOR_POLL_MIN_SECONDS": "0.2",
}
#: the annotation a sweep sets when it finds a change: "<time> <what>"
FOUND = "q-operator.dev/drift-found"
PER_KIND = 4

each_kind = pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda f: f.kind)


def _ready_all(sandbox: Sandbox, facts: KindFacts, namespace: str, names: list[str]) -> list[dict[str, Any]]:
    return [sandbox.wait_condition(facts.plural_path, namespace, name, "Ready", timeout=90) for name in names]


def _calls(sandbox: Sandbox, facts: KindFacts, ops: tuple[str, ...], since: float, until: float) -> int:
    return sum(
        1
        for r in sandbox.aws_requests()
        if r.get("service") == facts.info.service
        and r.get("operation") in ops
        and since <= float(r.get("time", 0)) < until
    )


def _parents(sandbox: Sandbox, facts: KindFacts) -> set[tuple[str, ...]]:
    """The parents that hold Ready objects of the kind, in every namespace of the sandbox."""
    group_version, plural = facts.plural_path.rsplit("/", 1)
    listed = sandbox.kube("GET", f"/apis/{group_version}/{plural}")
    fields = facts.info.list_parent or ()
    return {
        tuple(str((obj.get("status") or {}).get(f)) for f in fields)
        for obj in listed.get("items", [])
        if condition(obj, "Ready", "True")
    }


def _listed_after(sandbox: Sandbox, facts: KindFacts, moment: float) -> bool:
    return _calls(sandbox, facts, (facts.list_op,), moment, math.inf) > 0


@each_kind
def test_steady_state_lists_each_parent_instead_of_reading_each_object(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    names = [f"steady{i}" for i in range(PER_KIND)]
    for name in names:
        apply(sandbox, facts.manifest(name, namespace))
    _ready_all(sandbox, facts, namespace, names)
    # Once every object is Ready, a listing of its parent has to come first (within an interval); from
    # then on a window of two intervals shows the steady state.
    settled = time.time()
    wait_for(
        "a listing after all are Ready", lambda: _listed_after(sandbox, facts, settled), timeout=3 * DRIFT
    )
    start = time.time()
    time.sleep(2 * DRIFT)
    end = time.time()
    observes = _calls(sandbox, facts, facts.observe_ops, start, end)
    lists = _calls(sandbox, facts, (facts.list_op,), start, end)
    parents = len(_parents(sandbox, facts))
    per_object_mode = PER_KIND * facts.observe_calls * 2
    assert observes == 0, f"{observes} per-object reads in steady state (object mode: {per_object_mode}+)"
    assert 1 <= lists <= parents * 3, f"{lists} {facts.list_op} calls for {parents} parents in two intervals"


@each_kind
def test_an_out_of_band_update_and_deletion_are_found_by_the_sweep_and_corrected(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    apply(sandbox, facts.manifest("changed", namespace))
    apply(sandbox, facts.manifest("deleted", namespace))
    changed, deleted = _ready_all(sandbox, facts, namespace, ["changed", "deleted"])
    settled = time.time()
    wait_for(
        "a listing after both are Ready", lambda: _listed_after(sandbox, facts, settled), timeout=3 * DRIFT
    )
    time.sleep(1.0)  # builds done in AWS too, not only in status
    aws = client(sandbox, facts.info.service)
    done_at = time.time()
    facts.change_by_hand(aws, changed["status"])
    facts.delete_by_hand(aws, deleted["status"])

    def found(name: str) -> datetime | None:
        obj = sandbox.get(facts.plural_path, namespace, name) or {}
        value = (obj.get("metadata", {}).get("annotations") or {}).get(FOUND)
        return datetime.fromisoformat(str(value).split(" ")[0]) if value else None

    for name in ("changed", "deleted"):
        when = wait_for(f"the sweep to find {name}", lambda n=name: found(n), timeout=4 * DRIFT)
        # Found by the next listing of its parent: within one interval (the stamp is to the second).
        assert when.timestamp() - done_at <= DRIFT + 3, (
            f"{name} found {when.timestamp() - done_at:.1f}s after"
        )

    def corrected() -> bool:
        state = sandbox.aws("GET", "/_emulator/state")
        live = {r.id: r for r in facts.resources(state)}
        ok = []
        for name in ("changed", "deleted"):
            obj = sandbox.get(facts.plural_path, namespace, name) or {}
            if not condition(obj, "Ready", "True", current=True):
                return False
            resource = live.get(str(obj["status"].get(facts.info.id_field)))
            ok.append(
                resource is not None
                and all(resource.fields.get(k) == v for k, v in facts.desired(obj["spec"]).items())
            )
        return all(ok)

    wait_for("both corrected in AWS and Ready", corrected, timeout=60)
    wait_event_reasons(sandbox, namespace, "changed", "DriftCorrected")
    wait_event_reasons(sandbox, namespace, "deleted", "Recreated")
