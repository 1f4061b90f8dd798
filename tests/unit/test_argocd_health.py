"""The Argo CD health checks give the right verdict on status objects, run as Argo CD runs them.

Argo CD evaluates a health check with Lua 5.1 (gopher-lua) and the live object as the global `obj`;
lupa's lua51 runtime is the same dialect. test_argocd_health_gopherlua.py runs the same checks on
gopher-lua itself and holds the two VMs to the same answers.

Fixtures live in tests/fixtures/status/ and are named `<kind>-<verdict>-<case>.json`; the verdict in
the name is what the check must answer. Objects recorded from end-to-end runs can replace them under
the same naming (then `make crds`: they are also the testdata of Argo CD's upstream layout).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from q_operator.engine import conditions
from q_operator.healthchecks import run_health_check
from q_operator.registry import KINDS as REGISTRY
from tests.argocd import user_fields_drift

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "argocd"
FIXTURES = ROOT / "tests" / "fixtures" / "status"
#: The health check's file stem (the kind's singular name) → the kind, for every registered kind.
KINDS = {kind.singular: kind.kind for kind in REGISTRY}
VERDICTS = {
    "healthy": "Healthy",
    "progressing": "Progressing",
    "degraded": "Degraded",
    "suspended": "Suspended",
}


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """Run argocd/<kind>.lua the way Argo CD does: a fresh VM, `obj` global, no os/io/string/require."""
    return run_health_check((ARGOCD / f"{kind}.lua").read_text(), obj)


def fixture_cases() -> list[tuple[str, str, Path]]:
    cases = []
    for path in sorted(FIXTURES.glob("*.json")):
        kind, verdict, _ = path.stem.split("-", 2)
        cases.append((kind, verdict, path))
    return cases


@pytest.mark.parametrize(("kind", "verdict", "path"), fixture_cases(), ids=lambda v: getattr(v, "stem", v))
def test_health_check_gives_the_recorded_verdict(kind: str, verdict: str, path: Path) -> None:
    obj = json.loads(path.read_text())
    assert obj["kind"] == KINDS[kind], f"{path.name} holds a {obj['kind']}"
    status, message = health(kind, obj)
    assert status == VERDICTS[verdict], f"{path.name}: {status} ({message})"
    assert message, "Argo CD shows the message beside the verdict; it must say something"


def test_fixtures_cover_every_verdict_for_every_kind() -> None:
    seen = {(kind, verdict) for kind, verdict, _ in fixture_cases()}
    assert seen == {(kind, verdict) for kind in KINDS for verdict in VERDICTS}


def base_object(kind: str, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "x/v1alpha1",
        "kind": KINDS[kind],
        "metadata": {"name": "n", "generation": generation},
    }


def with_conditions(kind: str, *conds: tuple[str, str, str, int], generation: int = 1) -> dict[str, Any]:
    obj = base_object(kind, generation)
    obj["status"] = {
        "observedGeneration": max(c[3] for c in conds),
        "conditions": [
            {"type": t, "status": s, "reason": r, "message": f"{r} happened", "observedGeneration": g}
            for t, s, r, g in conds
        ],
    }
    return obj


def lua_set(kind: str, name: str) -> set[str]:
    """The reason names in one of the Lua tables (NEEDS_USER, TRANSIENT, BUSY)."""
    text = (ARGOCD / f"{kind}.lua").read_text()
    match = re.search(rf"local {name} = \{{(.*?)\}}", text, re.S)
    assert match, f"{name} not found in {kind}.lua"
    return set(re.findall(r"(\w+) = true", match.group(1)))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_synced_reason_the_engine_writes_is_classified(kind: str) -> None:
    needs_user, transient = lua_set(kind, "NEEDS_USER"), lua_set(kind, "TRANSIENT")
    failing = set(conditions.SYNCED_REASONS) - {conditions.RECONCILE_SUCCESS, *conditions.CONTROL_REASONS}
    assert failing == needs_user | transient, (
        "a reason is unknown to the Lua check, or the Lua has a stale one"
    )
    assert not needs_user & transient
    for reason in sorted(failing):
        obj = with_conditions(kind, ("Ready", "False", "Creating", 1), ("Synced", "False", reason, 1))
        expected = "Degraded" if reason in needs_user else "Progressing"
        assert health(kind, obj)[0] == expected, reason


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_busy_ready_reasons_are_the_engines_and_show_progressing(kind: str) -> None:
    busy = lua_set(kind, "BUSY")
    assert busy == {conditions.CREATING, conditions.UPDATING, conditions.REPLACING, conditions.DELETING}
    assert busy <= set(conditions.READY_REASONS)
    for reason in sorted(busy):
        obj = with_conditions(kind, ("Ready", "False", reason, 1), ("Synced", "True", "ReconcileSuccess", 1))
        assert health(kind, obj)[0] == "Progressing", reason


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_ready_for_an_older_generation_is_progressing_not_healthy(kind: str) -> None:
    obj = with_conditions(
        kind, ("Ready", "True", "Available", 4), ("Synced", "True", "ReconcileSuccess", 4), generation=5
    )
    assert health(kind, obj)[0] == "Progressing"
    obj["metadata"]["generation"] = 4
    assert health(kind, obj)[0] == "Healthy"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_failure_for_an_older_generation_waits_for_the_operator(kind: str) -> None:
    """The user fixed the spec: the old InvalidSpec must not keep the app Degraded."""
    obj = with_conditions(
        kind, ("Ready", "False", "Creating", 1), ("Synced", "False", "InvalidSpec", 1), generation=2
    )
    assert health(kind, obj)[0] == "Progressing"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_status_observed_generation_is_used_when_conditions_lack_it(kind: str) -> None:
    obj = base_object(kind, generation=3)
    obj["status"] = {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Available"}],
    }
    assert health(kind, obj)[0] == "Healthy"
    obj["status"]["observedGeneration"] = 2
    assert health(kind, obj)[0] == "Progressing"


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("deleting", [False, True], ids=["alive", "being-deleted"])
@pytest.mark.parametrize(
    ("value", "synced_reason", "verdict"),
    [
        pytest.param("true", "Paused", "Suspended", id="paused-and-recorded"),
        pytest.param("true", "ReconcileSuccess", "Suspended", id="paused-not-yet-recorded"),
        pytest.param("yes", "Paused", "Suspended", id="any-value-but-false-pauses-as-in-the-operator"),
        pytest.param("false", "ReconcileSuccess", "Healthy", id="false-is-not-paused"),
        pytest.param(None, "Paused", "Progressing", id="pause-lifted-not-yet-resumed"),
    ],
)
def test_a_paused_object_is_suspended(
    kind: str, deleting: bool, value: str | None, synced_reason: str, verdict: str
) -> None:
    """Paused (q-operator.dev/paused) wins over everything, a waiting deletion included."""
    obj = with_conditions(
        kind,
        ("Ready", "True", "Available", 1),
        ("Synced", "False" if synced_reason == "Paused" else "True", synced_reason, 1),
    )
    if value is not None:
        obj["metadata"]["annotations"] = {"q-operator.dev/paused": value}
    if deleting and verdict != "Healthy":
        obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status, message = health(kind, obj)
    assert status == verdict, message
    if verdict == "Suspended":
        assert "paused" in message.lower()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_observe_only_verdicts(kind: str) -> None:
    """Observe-only: matching is Healthy, differing from the spec is Degraded, no ID named is Degraded."""
    matches = with_conditions(kind, ("Ready", "True", "Available", 1), ("Synced", "True", "ObserveOnly", 1))
    assert health(kind, matches)[0] == "Healthy"
    differs = with_conditions(
        kind, ("Ready", "False", "DiffersFromSpec", 1), ("Synced", "True", "ObserveOnly", 1)
    )
    assert health(kind, differs) == ("Degraded", "DiffersFromSpec: DiffersFromSpec happened")
    unnamed = with_conditions(
        kind, ("Ready", "False", "Unavailable", 1), ("Synced", "False", "AdoptIdRequired", 1)
    )
    assert health(kind, unnamed)[0] == "Degraded"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_build_failed_is_degraded(kind: str) -> None:
    obj = with_conditions(
        kind, ("Ready", "False", "BuildFailed", 1), ("Synced", "True", "ReconcileSuccess", 1)
    )
    assert health(kind, obj)[0] == "Degraded"


def test_argocd_cm_snippet_embeds_each_lua_file_under_its_group_and_kind() -> None:
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    expected = {}
    for crd_file in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(crd_file.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        expected[f"resource.customizations.health.{group}_{kind}"] = (
            ARGOCD / f"{kind.lower()}.lua"
        ).read_text()
    assert set(KINDS.values()) <= {key.rsplit("_", 1)[1] for key in expected}
    assert cm["data"] == expected


# --- the "stays Synced" helper the end-to-end suite uses on applied manifests and live objects ---


def test_live_object_with_only_operator_additions_is_in_sync() -> None:
    applied = json.loads((FIXTURES / "qplugin-healthy-available.json").read_text())
    applied = {
        "apiVersion": applied["apiVersion"],
        "kind": applied["kind"],
        "spec": applied["spec"],
        "metadata": {"name": "jira", "labels": {"app.kubernetes.io/part-of": "support-bot"}},
    }
    live = json.loads((FIXTURES / "qplugin-healthy-available.json").read_text())
    live["metadata"]["annotations"]["kopf.q-operator.dev/last-handled-configuration"] = "{}"
    live["spec"]["deletionPolicy"] = "Delete"  # a default the API server filled in
    assert user_fields_drift(applied, live) == []


def test_changed_spec_field_or_user_annotation_is_drift() -> None:
    applied = {
        "spec": {"displayName": "jira", "authConfiguration": {"noAuthConfiguration": {}}, "tags": {"a": "1"}},
        "metadata": {"annotations": {"team": "support"}, "labels": {"tier": "gold"}},
    }
    live = {
        "spec": {
            "displayName": "jira-2",
            "authConfiguration": {"noAuthConfiguration": {}},
            "tags": {"a": "1"},
        },
        "metadata": {"annotations": {"team": "other"}, "labels": {}},
    }
    assert user_fields_drift(applied, live) == [
        "spec.displayName",
        "metadata.labels.tier",
        "metadata.annotations.team",
    ]


def test_list_of_different_length_is_drift() -> None:
    assert user_fields_drift({"spec": {"categories": ["a"]}}, {"spec": {"categories": []}}) == [
        "spec.categories"
    ]
