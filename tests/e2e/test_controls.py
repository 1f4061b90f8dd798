"""The user's controls, end to end with the real operator process, for every registered kind: pause,
observe-only (spec.managementPolicy: Observe) and taking over, and reconcile-now (the per-object
drift interval is in test_drift_interval.py).

What the operator did to AWS is read from the AWS stand-in's request log (the operator's calls only:
its user agent says q-operator/). A write is every call that is not a Get, List or Describe. Where a
test times or counts one object's calls, the object lives in an AWS region of its own (spec.region), so
the log's region tells its calls apart whatever the kind's API puts in the path. The kinds' facts come from
tests/kinds.py; the tests use the `sandbox` and `namespace` fixtures, so they run on whichever
Kubernetes backend conftest provides.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from typing import Any

import pytest

from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import TEST_KINDS, KindFacts
from tests.unit.test_argocd_health import health

from .helpers import (
    allow_adoption,
    apply,
    client,
    log_position,
    operator_calls,
    record_status_fixture,
    restart_and_wait_until_processing,
    synced,
    unique_name,
    wait_event_reasons,
    wait_synced,
)

PAUSED = "q-operator.dev/paused"
ADOPT = "q-operator.dev/adopt-id"
REQUEST = "q-operator.dev/reconcile-requested-at"
READS = ("Get", "List", "Describe")
#: What docs/engine.md promises for q-operator.dev/reconcile-requested-at.
RECONCILE_NOW_SECONDS = 2.0
#: How long a paused object's region is watched for calls once the operator has handled an event:
#: longer than anything the operator starts after a cycle's status write (the List sweep of an object
#: it newly watches lists 5 s later, engine/sweep.py FIRST_DELAY).
SETTLE_SECONDS = 6.0
#: Regions of their own for objects whose calls a test times (the stand-in keeps state per region).
_regions = (f"zz-{word}-{digit}" for word in ("controls", "timing", "spare") for digit in range(10))


# ----- reading what happened


def writes(sandbox: Sandbox, since: int) -> list[str]:
    return [
        str(r["operation"])
        for r in operator_calls(sandbox, since)
        if not str(r.get("operation") or "").startswith(READS)
    ]


def no_calls_for(
    sandbox: Sandbox, since: int, region: str, what: str, seconds: float = SETTLE_SECONDS
) -> None:
    """Watch the stand-in's log for `seconds`: any operator call in `region` (an object's own) since
    log position `since` fails at once, naming the calls. Proves an absence, so it must watch for a
    while: run it after the operator has visibly handled what could have made a call."""
    deadline = time.monotonic() + seconds
    while True:
        made = operator_calls(sandbox, since, region)
        assert made == [], f"{what}: {[r['operation'] for r in made]} in {region}"
        if time.monotonic() >= deadline:
            return
        time.sleep(0.5)


def in_aws(sandbox: Sandbox, facts: KindFacts, status: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields of the object's resource as the AWS stand-in holds them (None: it has none)."""
    state = sandbox.aws("GET", "/_emulator/state")
    for resource in facts.resources(state):
        if resource.id == status[facts.info.id_field]:
            return dict(resource.fields)
    return None


def wait_ready_reason(sandbox: Sandbox, facts: KindFacts, ns: str, name: str, reason: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = sandbox.get(facts.plural_path, ns, name) or {}
        ready = condition(obj, "Ready", "False", current=True) or condition(
            obj, "Ready", "True", current=True
        )
        return obj if ready and ready.get("reason") == reason else None

    return wait_for(f"{name} Ready reason {reason}", probe, timeout=60)


def table_columns(table: str, *names: str) -> dict[str, str]:
    """The named columns of the first row of a `kubectl get` table. kubectl pads columns with at
    least two spaces, and a header may hold one ("PLUGIN ID"): a column starts after such a gap."""
    header, row = table.splitlines()[:2]
    starts = [0, *(m.end() for m in re.finditer(r"  +", header))]
    found = {}
    for name in names:
        start = header.index(name)
        assert start in starts, f"{name} is not a column of {header!r}"
        later = [i for i in starts if i > start]
        found[name] = row[start : later[0] if later else len(row)].strip()
    return found


def annotate(sandbox: Sandbox, facts: KindFacts, ns: str, name: str, *pairs: str) -> None:
    sandbox.kubectl("annotate", facts.short, name, "-n", ns, "--overwrite", *pairs)


def patch_spec(sandbox: Sandbox, facts: KindFacts, ns: str, name: str, spec: Mapping[str, Any]) -> None:
    sandbox.kubectl("patch", facts.short, name, "-n", ns, "--type", "merge", "-p", json.dumps({"spec": spec}))


def _kind_id(facts: KindFacts) -> str:
    return facts.kind


# ----- pause


@pytest.mark.parametrize("facts", TEST_KINDS, ids=_kind_id)
def test_pause_holds_the_object_with_zero_aws_calls_across_a_restart_and_a_deletion(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    """Paused, the object costs AWS nothing at all, reads included: its own region's share of the
    stand-in's log stays empty while a reconcile request, two spec changes, a deletion and two
    operator restarts are handled, and for a settling window after each."""
    name = unique_name(facts, "paused")
    region = next(_regions)
    manifest = facts.manifest(name, namespace, region=region)
    apply(sandbox, manifest)
    obj = sandbox.wait_condition(facts.plural_path, namespace, name, "Ready", timeout=90)
    status = obj["status"]
    before = in_aws(sandbox, facts, status)
    assert before == facts.desired(manifest["spec"])

    # Paused: Synced=False Paused, Argo CD Suspended, and `kubectl get -o wide` says so.
    annotate(sandbox, facts, namespace, name, f"{PAUSED}=true")
    obj = wait_synced(sandbox, facts, namespace, name, "Paused")
    mark = log_position(sandbox)  # from here on, not one call in the object's region
    assert health(facts.info.singular, obj)[0] == "Suspended"
    record_status_fixture(f"{facts.info.singular}-suspended-paused", obj)
    table = sandbox.kubectl("get", facts.short, name, "-n", namespace, "-o", "wide").stdout
    columns = table_columns(table, "SYNCED", "REASON", "POLICY")
    assert columns == {"SYNCED": "False", "REASON": "Paused", "POLICY": "Manage"}, table

    # A reconcile request and a spec change while paused are handled (Synced is written for the new
    # generation, by a cycle that saw the request too) and call nothing, not even after a restart:
    # the new process proves it handled the object by doing the same for a second change.
    annotate(sandbox, facts, namespace, name, f"{REQUEST}=while-paused")
    change = paused_change(facts, name, namespace, region, 1)
    apply(sandbox, change)
    wait_synced(sandbox, facts, namespace, name, "Paused")
    no_calls_for(sandbox, mark, region, "a paused object's request and spec change")
    restart_and_wait_until_processing(sandbox, namespace)
    change = paused_change(facts, name, namespace, region, 2)
    apply(sandbox, change)
    wait_synced(sandbox, facts, namespace, name, "Paused")
    no_calls_for(sandbox, mark, region, "a paused object after a restart")
    assert in_aws(sandbox, facts, status) == before
    assert writes(sandbox, mark) == []
    obj = sandbox.get(facts.plural_path, namespace, name) or {}
    assert obj["status"].get("lastHandledReconcileAt") != "while-paused", "nothing is done while paused"
    assert obj["status"]["observedGeneration"] < obj["metadata"]["generation"], "the change waits"

    # Resumed: the last change is applied, and the request is recorded as handled.
    sandbox.kubectl("annotate", facts.short, name, "-n", namespace, f"{PAUSED}-")
    wanted = facts.desired(change["spec"])
    wait_for("the change in AWS", lambda: in_aws(sandbox, facts, status) == wanted, timeout=60)
    sandbox.wait_condition(facts.plural_path, namespace, name, "Ready", timeout=90)
    wait_for(
        "the request made while paused to be handled",
        lambda: (
            (sandbox.get(facts.plural_path, namespace, name) or {})
            .get("status", {})
            .get("lastHandledReconcileAt")
            == "while-paused"
        ),
        timeout=30,
    )
    wait_event_reasons(sandbox, namespace, name, "Resumed")
    assert operator_calls(sandbox, mark, region), "resuming calls AWS in the object's region"

    # A deletion while paused waits, with the finalizer, and calls nothing, across a restart too;
    # resuming deletes.
    annotate(sandbox, facts, namespace, name, f"{PAUSED}=true")
    wait_synced(sandbox, facts, namespace, name, "Paused")
    mark = log_position(sandbox)
    sandbox.kubectl("delete", facts.short, name, "-n", namespace, "--wait=false")
    wait_for(
        "the paused deletion to be reported",
        lambda: (
            "deletion waits"
            in synced(sandbox.get(facts.plural_path, namespace, name) or {}).get("message", "")
        ),
        timeout=30,
    )
    no_calls_for(sandbox, mark, region, "a paused deletion")
    restart_and_wait_until_processing(sandbox, namespace)
    no_calls_for(sandbox, mark, region, "a paused deletion after a restart")
    live = sandbox.get(facts.plural_path, namespace, name)
    assert live is not None and live["metadata"].get("finalizers"), "the finalizer holds the object"
    assert health(facts.info.singular, live)[0] == "Suspended"
    assert in_aws(sandbox, facts, status) == wanted, "still in AWS"
    assert writes(sandbox, mark) == []
    sandbox.kubectl("annotate", facts.short, name, "-n", namespace, f"{PAUSED}-")
    wait_for("the object to go", lambda: sandbox.get(facts.plural_path, namespace, name) is None, timeout=60)
    assert facts.delete_op in writes(sandbox, mark), "resuming ran the deletion"
    assert in_aws(sandbox, facts, status) is None


def paused_change(facts: KindFacts, name: str, ns: str, region: str, round_: int) -> dict[str, Any]:
    """The object's manifest with spec change `round_`, still paused (kubectl apply keeps the
    annotations it did not set, such as a reconcile request)."""
    change = facts.manifest(name, ns, region=region)
    facts.change(change["spec"], name, round_)
    change["metadata"]["annotations"] = {PAUSED: "true"}
    return change


# ----- observe-only


def observed_manifest(sandbox: Sandbox, facts: KindFacts, name: str, ns: str) -> tuple[dict[str, Any], str]:
    """A resource made by hand in AWS, and an observe-only object naming it (its spec describes what
    was made: without tags, which a hand-made resource does not carry)."""
    manifest = facts.manifest(name, ns, managementPolicy="Observe", tags=None)
    made = facts.make_by_hand(client(sandbox, facts.info.service), manifest["spec"])
    manifest["metadata"]["annotations"] = {ADOPT: made}
    return manifest, made


@pytest.mark.parametrize("facts", TEST_KINDS, ids=_kind_id)
def test_observe_only_reads_reports_a_change_made_by_hand_and_never_writes(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    name = unique_name(facts, "observed")
    allow_adoption(sandbox, namespace)  # naming a resource by ID, to observe it too (test below)
    mark = log_position(sandbox)
    manifest, made = observed_manifest(sandbox, facts, name, namespace)
    apply(sandbox, manifest)
    obj = sandbox.wait_condition(facts.plural_path, namespace, name, "Ready", timeout=60)
    assert (synced(obj)["status"], synced(obj)["reason"]) == ("True", "ObserveOnly")
    status = obj["status"]
    assert status[facts.info.id_field] == made and status["observeOnly"] is True
    if facts.info.arn_field:
        assert status[facts.info.arn_field].startswith("arn:aws:")
    assert health(facts.info.singular, obj)[0] == "Healthy"

    # Changed in AWS by hand: reported (on request, at once), never corrected.
    facts.change_by_hand(client(sandbox, facts.info.service), status)
    by_hand = in_aws(sandbox, facts, status)
    annotate(sandbox, facts, namespace, name, f"{REQUEST}=look-now")
    obj = wait_ready_reason(sandbox, facts, namespace, name, "DiffersFromSpec")  # (after AWS's own build)
    assert "AWS differs from the spec in " in (condition(obj, "Ready", "False") or {})["message"]
    assert obj["status"]["lastHandledReconcileAt"] == "look-now"
    assert health(facts.info.singular, obj)[0] == "Degraded"
    wait_event_reasons(sandbox, namespace, name, "DiffersFromSpec")

    # Across a restart and a deletion: still no write; AWS keeps the resource as it was.
    restart_and_wait_until_processing(sandbox, namespace)
    sandbox.kubectl("delete", facts.short, name, "-n", namespace, "--wait=false")
    wait_for("the object to go", lambda: sandbox.get(facts.plural_path, namespace, name) is None, timeout=30)
    assert in_aws(sandbox, facts, status) == by_hand != facts.desired(manifest["spec"])
    assert writes(sandbox, mark) == []
    assert operator_calls(sandbox, mark), "it did read"


def settle(
    sandbox: Sandbox, facts: KindFacts, ns: str, name: str, what: str, done: Any, refused: str
) -> dict[str, Any]:
    """Wait until `done(obj)`. Each time the last reconcile request was handled and the object still
    shows `refused`, ask for another cycle: the Namespace watch may deliver the admin's annotation
    after a request was acted on."""
    requests: list[str] = []

    def probe() -> dict[str, Any] | None:
        obj = sandbox.get(facts.plural_path, ns, name) or {}
        if done(obj):
            return obj
        handled = obj.get("status", {}).get("lastHandledReconcileAt")
        if not requests or (handled == requests[-1] and synced(obj).get("reason") == refused):
            requests.append(f"{what.replace(' ', '-')}-{len(requests)}")
            annotate(sandbox, facts, ns, name, f"{REQUEST}={requests[-1]}")
        return None

    return wait_for(f"{name}: {what}", probe, timeout=60, interval=0.5)


@pytest.mark.parametrize("facts", TEST_KINDS, ids=_kind_id)
def test_observing_and_taking_over_need_the_namespaces_adoption_permission(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    """Naming an existing resource by ID reaches what someone else made, to read it too: observing
    and taking over are both allowed only where a cluster admin allows adoption."""
    name = unique_name(facts, "taken")
    manifest, made = observed_manifest(sandbox, facts, name, namespace)
    mark = log_position(sandbox)
    apply(sandbox, manifest)
    obj = wait_synced(sandbox, facts, namespace, name, "AdoptionNotAllowed")
    assert synced(obj)["message"].startswith("observe refused"), synced(obj)
    assert facts.info.id_field not in obj["status"] and writes(sandbox, mark) == []

    allow_adoption(sandbox, namespace)
    obj = settle(
        sandbox,
        facts,
        namespace,
        name,
        "observed",
        lambda o: condition(o, "Ready", "True"),
        "AdoptionNotAllowed",
    )
    assert obj["status"][facts.info.id_field] == made and obj["status"]["observeOnly"] is True
    facts.change_by_hand(client(sandbox, facts.info.service), obj["status"])
    annotate(sandbox, facts, namespace, name, f"{REQUEST}=before-taking-over")
    obj = wait_ready_reason(sandbox, facts, namespace, name, "DiffersFromSpec")
    assert in_aws(sandbox, facts, obj["status"]) != facts.desired(manifest["spec"])

    # The permission taken back: the reads stop, and a switch to Manage does not take it over.
    allow_adoption(sandbox, namespace, allowed=False)
    settle(
        sandbox,
        facts,
        namespace,
        name,
        "reads stopped",
        lambda o: synced(o).get("reason") == "AdoptionNotAllowed",
        "ObserveOnly",
    )
    mark = log_position(sandbox)
    patch_spec(sandbox, facts, namespace, name, {"managementPolicy": "Manage"})
    obj = wait_synced(sandbox, facts, namespace, name, "AdoptionNotAllowed")
    assert synced(obj)["message"].startswith("adopt refused"), synced(obj)
    assert obj["status"]["observeOnly"] is True and writes(sandbox, mark) == []
    creates = len([w for w in writes(sandbox, 0) if w == facts.create_op])

    allow_adoption(sandbox, namespace)
    obj = settle(
        sandbox,
        facts,
        namespace,
        name,
        "taken over",
        lambda o: condition(o, "Ready", "True", current=True),
        "AdoptionNotAllowed",
    )
    assert obj["status"][facts.info.id_field] == made and "observeOnly" not in obj["status"]
    assert in_aws(sandbox, facts, obj["status"]) == facts.desired(manifest["spec"])
    wait_event_reasons(sandbox, namespace, name, "Adopted")
    assert len([w for w in writes(sandbox, 0) if w == facts.create_op]) == creates, "nothing created"


@pytest.mark.parametrize("facts", [f for f in TEST_KINDS if f.tagged], ids=_kind_id)
def test_another_objects_resource_is_observed_but_never_taken_over(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    """The owner tag names another object: observing it is fine, taking it over is refused."""
    owner = unique_name(facts, "owner")
    apply(sandbox, facts.manifest(owner, namespace))
    theirs = sandbox.wait_condition(facts.plural_path, namespace, owner, "Ready", timeout=90)["status"]
    name = unique_name(facts, "watcher")
    allow_adoption(sandbox, namespace)
    watcher = facts.manifest(name, namespace, managementPolicy="Observe")
    watcher["metadata"]["annotations"] = {ADOPT: theirs[facts.info.id_field]}
    apply(sandbox, watcher)
    obj = wait_synced(sandbox, facts, namespace, name, "ObserveOnly")
    assert f"{namespace}.{owner}." in synced(obj)["message"], "it says whose the resource is"

    mark = log_position(sandbox)
    patch_spec(sandbox, facts, namespace, name, {"managementPolicy": "Manage"})
    obj = wait_synced(sandbox, facts, namespace, name, "OwnedByAnother")
    assert writes(sandbox, mark) == [] and obj["status"]["observeOnly"] is True
    sandbox.kubectl("delete", facts.short, name, "-n", namespace)
    assert in_aws(sandbox, facts, theirs) is not None, "deleting the watcher leaves the owner's resource"
    assert writes(sandbox, mark) == []


# ----- reconcile now


@pytest.mark.parametrize("facts", TEST_KINDS, ids=_kind_id)
def test_reconcile_now_looks_at_aws_within_two_seconds(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    """From the annotation's write (a PATCH, timed by the test) to the operator's first call in the
    object's own region, and status.lastHandledReconcileAt says it was done."""
    name = unique_name(facts, "now")
    region = next(_regions)
    apply(sandbox, facts.manifest(name, namespace, region=region))
    sandbox.wait_condition(facts.plural_path, namespace, name, "Ready", timeout=90)
    path = f"/apis/{facts.info.group}/{facts.info.version}/namespaces/{namespace}/{facts.info.plural}/{name}"
    latencies = []
    value = ""
    for attempt in range(3):
        value = f"2026-01-01T00:00:0{attempt}Z"
        mark = log_position(sandbox)
        asked = time.time()
        sandbox.kube(
            "PATCH", path, {"metadata": {"annotations": {REQUEST: value}}}, "application/merge-patch+json"
        )
        looked = wait_for(
            "the requested look at AWS", lambda m=mark: operator_calls(sandbox, m, region), timeout=30
        )
        latencies.append(float(looked[0]["time"]) - asked)
        assert str(looked[0]["operation"]).startswith(READS)

        def handled(want: str = value) -> dict[str, Any] | None:
            obj = sandbox.get(facts.plural_path, namespace, name)
            return obj if obj and obj["status"].get("lastHandledReconcileAt") == want else None

        obj = wait_for("status to report the request handled", handled, timeout=30)
        assert condition(obj, "Ready", "True", current=True)
    # What docs/engine.md tells a script to do.
    sandbox.kubectl(
        "wait",
        f"{facts.short}/{name}",
        "-n",
        namespace,
        f"--for=jsonpath={{.status.lastHandledReconcileAt}}={value}",
        "--timeout=30s",
    )
    shown = ", ".join(f"{seconds:.2f}s" for seconds in latencies)
    print(f"reconcile-now ({facts.kind}), annotation PATCH → the operator's first AWS call: {shown}")
    assert max(latencies) <= RECONCILE_NOW_SECONDS, latencies
