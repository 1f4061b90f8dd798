"""What every kind does the same way, end to end, parametrized over the kind registry: Ready with the
ID and ARN AWS holds, deletion and the Retain policy, adoption of an existing resource, the crash
window of a create (kill -9, or a deletion, between AWS acting and the operator recording it), an
invalid manifest refused at apply naming the field, and `kubectl explain` of the kind's fields.

Each kind's own behaviour (its updates, replacements, errors) stays in tests/e2e/test_<kind>.py. The
objects and the reading of AWS's side come from tests/kinds.py; AWS's side is the stand-in's own
record (/_emulator/state), so a resource AWS made but never answered for is seen too.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from q_operator.kinds.common import RESERVED_TAG_KEY_MESSAGE
from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import TEST_KINDS, AwsResource, KindFacts, Refused

from .helpers import allow_adoption, apply, calls, client, events_of

AWS_ARGS = ["--build-seconds", "0.5"]
#: Library items and connectors have no build: poll right after a create or update, not after 1 s.
OPERATOR_ENV = {"Q_OPERATOR_POLL_MIN_SECONDS": "0.2"}
ADOPT = "q-operator.dev/adopt-id"
#: Every AWS answer is delayed this long in the crash-window tests: AWS has acted while the operator
#: still waits for the answer.
LATENCY_MS = 1500

each_kind = pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda f: f.kind)


def _under_key(sandbox: Sandbox, facts: KindFacts, obj: dict[str, Any]) -> list[AwsResource]:
    """The AWS resources under the natural key the object asks for (the stand-in's own record)."""
    key = facts.natural_key(obj)
    return [r for r in facts.resources(sandbox.aws("GET", "/_emulator/state")) if r.natural_key == key]


def _gone(sandbox: Sandbox, facts: KindFacts, namespace: str, name: str) -> None:
    wait_for(
        f"{facts.kind} {name} to go",
        lambda: sandbox.get(facts.plural_path, namespace, name) is None,
        timeout=60,
    )


def _delete(sandbox: Sandbox, facts: KindFacts, namespace: str, name: str) -> None:
    sandbox.kubectl("delete", facts.info.singular, name, "-n", namespace, "--wait=false")


@each_kind
def test_reaches_ready_with_the_id_and_arn_aws_holds(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    obj = facts.manifest("ready", namespace)
    apply(sandbox, obj)
    live = sandbox.wait_condition(facts.plural_path, namespace, "ready", "Ready")
    [resource] = _under_key(sandbox, facts, obj)
    status = live["status"]
    assert status[facts.info.id_field] == resource.id
    if facts.info.arn_field:
        assert status[facts.info.arn_field] == resource.arn
    if facts.tagged:
        assert str(resource.owner_tag).startswith(f"{namespace}.ready."), "the owner mark"
    assert condition(live, "Synced", "True")
    assert status["observedGeneration"] == live["metadata"]["generation"]
    assert "createPending" not in status


@each_kind
def test_delete_removes_the_aws_resource_then_the_object(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    obj = facts.manifest("gone", namespace)
    apply(sandbox, obj)
    sandbox.wait_condition(facts.plural_path, namespace, "gone", "Ready")
    _delete(sandbox, facts, namespace, "gone")
    _gone(sandbox, facts, namespace, "gone")
    assert _under_key(sandbox, facts, obj) == []


@each_kind
def test_retain_keeps_the_aws_resource_and_releases_the_object(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    obj = facts.manifest("kept", namespace, deletionPolicy="Retain")
    apply(sandbox, obj)
    live = sandbox.wait_condition(facts.plural_path, namespace, "kept", "Ready")
    deletes = len(calls(sandbox, facts.delete_op))
    _delete(sandbox, facts, namespace, "kept")
    _gone(sandbox, facts, namespace, "kept")
    [kept] = _under_key(sandbox, facts, obj)
    assert kept.id == live["status"][facts.info.id_field]
    assert len(calls(sandbox, facts.delete_op)) == deletes
    if facts.tagged:
        assert kept.owner_tag, "a retained resource keeps its owner mark"


@each_kind
def test_adopt_annotation_manages_an_existing_resource_creating_nothing(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    obj = facts.manifest("handmade", namespace)
    made = facts.make_by_hand(client(sandbox, facts.info.service), obj["spec"])
    creates = len(calls(sandbox, facts.create_op))
    obj["metadata"]["annotations"] = {ADOPT: made}
    allow_adoption(sandbox, namespace)
    apply(sandbox, obj)
    live = sandbox.wait_condition(facts.plural_path, namespace, "handmade", "Ready")
    assert live["status"][facts.info.id_field] == made
    assert len(calls(sandbox, facts.create_op)) == creates
    [adopted] = _under_key(sandbox, facts, obj)
    assert adopted.id == made
    if not facts.tagged:
        return
    assert str(adopted.owner_tag).startswith(f"{namespace}.handmade."), "adopting marks it as the object's"
    # A second object asking for the same resource is refused: it belongs to the first.
    thief = facts.manifest("thief", namespace, **obj["spec"])
    thief["metadata"]["annotations"] = {ADOPT: made}
    apply(sandbox, thief)

    def refused() -> dict[str, Any] | None:
        found = condition(sandbox.get(facts.plural_path, namespace, "thief") or {}, "Synced", "False")
        return found if found and found.get("reason") == "OwnedByAnother" else None

    wait_for("the second object refused as OwnedByAnother", refused, timeout=30)
    assert [r.id for r in _under_key(sandbox, facts, obj)] == [made]


def _created_events(sandbox: Sandbox, namespace: str, name: str) -> list[str]:
    return [str(e["message"]) for e in events_of(sandbox, namespace, name) if e["reason"] == "Created"]


@each_kind
def test_kill_9_between_create_and_status_write_never_duplicates(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    """AWS answers late, so it has made the resource while the operator still waits for the answer;
    the operator is killed right then and never learns the ID. After the restart exactly one resource
    exists and the object holds it. Repeated to vary the moment."""
    for attempt in range(3):
        name = f"crashy{attempt}"
        obj = facts.manifest(name, namespace)
        sandbox.aws("POST", "/_emulator/config", {"latency_ms": LATENCY_MS})
        try:
            apply(sandbox, obj)
            wait_for("AWS to create it", partial(_under_key, sandbox, facts, obj), timeout=30, interval=0.02)
            sandbox.stop_operator(kill=True)
            status = (sandbox.get(facts.plural_path, namespace, name) or {}).get("status", {})
            assert not status.get(facts.info.id_field), "the ID must not have been recorded yet"
            assert status.get("createPending"), "the intent is recorded before the create"
        finally:
            sandbox.aws("POST", "/_emulator/config", {"latency_ms": 0})
        sandbox.start_operator()
        live = sandbox.wait_condition(facts.plural_path, namespace, name, "Ready")
        [resource] = _under_key(sandbox, facts, obj)
        assert live["status"][facts.info.id_field] == resource.id
        if facts.tagged:
            assert str(resource.owner_tag).startswith(f"{namespace}.{name}.")
        if facts.info.find_before_create:  # no client token: found after the restart, not made again
            created = wait_for(
                "the Created event", partial(_created_events, sandbox, namespace, name), timeout=10
            )
            assert all("before an interruption" in m for m in created), created


@each_kind
def test_deleting_while_the_create_is_in_flight_leaves_nothing(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    """The object is deleted while the create's answer is still on its way: the resource AWS made is
    found and deleted, never orphaned."""
    obj = facts.manifest("fleeting", namespace)
    sandbox.aws("POST", "/_emulator/config", {"latency_ms": LATENCY_MS})
    try:
        apply(sandbox, obj)
        wait_for("AWS to create it", partial(_under_key, sandbox, facts, obj), timeout=30, interval=0.02)
        _delete(sandbox, facts, namespace, "fleeting")
    finally:
        sandbox.aws("POST", "/_emulator/config", {"latency_ms": 0})
    _gone(sandbox, facts, namespace, "fleeting")
    assert _under_key(sandbox, facts, obj) == []


@each_kind
def test_object_deleted_while_the_operator_is_dead_mid_create_leaves_nothing(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    """kill -9 after AWS made the resource but before its ID was recorded, then the object is deleted
    while no operator runs: the restarted operator finds the unrecorded resource and deletes it."""
    obj = facts.manifest("orphaned", namespace)
    sandbox.aws("POST", "/_emulator/config", {"latency_ms": LATENCY_MS})
    try:
        apply(sandbox, obj)
        wait_for("AWS to create it", partial(_under_key, sandbox, facts, obj), timeout=30, interval=0.02)
        sandbox.stop_operator(kill=True)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"latency_ms": 0})
    _delete(sandbox, facts, namespace, "orphaned")
    sandbox.start_operator()
    _gone(sandbox, facts, namespace, "orphaned")
    assert _under_key(sandbox, facts, obj) == []


def _refused(facts: KindFacts) -> list[Refused]:
    """What every kind's CRD refuses alike, then what the kind's own rules refuse."""
    shared = [
        Refused(
            "a deletion policy outside the enum", {"deletionPolicy": "Sometimes"}, ("spec.deletionPolicy",)
        ),
        Refused(
            "a field the schema does not have", {"noSuchField": "x"}, ("unknown field", "spec.noSuchField")
        ),
    ]
    if facts.tagged:
        shared.append(
            Refused(
                "a tag key under the operator's prefix",
                {"tags": {"q-operator.dev/mine": "x"}},
                ("spec.tags", RESERVED_TAG_KEY_MESSAGE),
            )
        )
    return [*shared, *facts.refused]


@each_kind
def test_an_invalid_manifest_is_refused_at_apply_naming_the_field(
    sandbox: Sandbox, namespace: str, facts: KindFacts
) -> None:
    """The CRD's schema and CEL rules refuse bad input before anything is stored: kubectl's answer names
    the field, and neither the operator nor AWS ever sees the object."""
    creates = len(calls(sandbox, facts.create_op))
    for case in _refused(facts):
        out = apply(sandbox, facts.manifest(case.name, namespace, **case.spec), check=False)
        for words in case.says:
            assert words in out, f"{case.what}: {words!r} not in {out!r}"
        assert sandbox.get(facts.plural_path, namespace, case.name) is None, case.what
    assert len(calls(sandbox, facts.create_op)) == creates


@each_kind
def test_kubectl_explain_describes_the_fields(sandbox: Sandbox, facts: KindFacts) -> None:
    """`kubectl explain` reads the CRD's descriptions: the fields every kind shares, then the kind's own."""
    explained = [
        ("spec.deletionPolicy", "retain"),
        (f"status.{facts.info.id_field}", ""),
        *facts.explained,
    ]
    for path, word in explained:
        out = sandbox.kubectl("explain", f"{facts.info.singular}.{path}").stdout
        assert "DESCRIPTION:" in out and word.lower() in out.lower(), (path, out)
