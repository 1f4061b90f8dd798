"""The chart's RBAC, proven by the real authorizer: `q-operator run` with nothing but its
ServiceAccount's token goes through a full lifecycle of all three kinds without a single 403.

For each way the chart installs the operator (cluster-wide or namespaced, with and without peering):
`helm template` the chart, apply its ServiceAccount, ClusterRoles, Roles, bindings and peering objects
to a kube-apiserver with RBAC on, get a token for the ServiceAccount by the TokenRequest API (as the
kubelet does for the pod), write a kubeconfig holding only that token, and run the operator with the
arguments of the chart's Deployment. Then create, update in place, change a ConfigMap payload,
replace (every kind whose test facts name a replacement; a kind with none changes only in place) and
delete an object of every kind, check their events (Created, Updated, DriftCorrected for the ConfigMap,
Replacing and Replaced, Deleted) and the peering lease. Any 403 in kube-apiserver's
audit log for the ServiceAccount, or in the operator's log, fails. The audit log also shows which
grants the run used: in each configuration, every one of them.

The other half, that the chart grants nothing the operator does not use across the whole suite, is
test_permissions.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from q_operator.apiserver import ApiServer
from q_operator.sandbox import Sandbox, wait_for
from tests.kinds import OPENAPI, QPLUGIN, QPLUGINS, TEST_KINDS, KindFacts, qplugin
from tests.rbac import audit_requests, check_rbac, load_manifests, render_chart, rules_from_chart

from .helpers import apply, calls, e2e_crds, events_of, new_application_id, shared_sandbox, wait_event_reasons

AWS_ARGS = ["--build-seconds", "0.2"]
OPERATOR_ENV = {"Q_OPERATOR_POLL_MIN_SECONDS": "0.2"}

#: name: (namespaced, peering)
CASES = {
    "clusterwide": (False, False),
    "clusterwide-peering": (False, True),
    "namespaced": (True, False),
    "namespaced-peering": (True, True),
}
#: Objects applied to the server as the admin, as `helm install` would: what the operator runs with.
APPLIED_KINDS = (
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ClusterKopfPeering",
    "KopfPeering",
)
# Matched against a log line's message only: the timestamp's milliseconds can read 403.
FORBIDDEN = re.compile(r"\b403\b|Forbidden|forbidden")


def message_of(line: str) -> str:
    """A log line without its `2026-12-06 17:11:30,403` timestamp."""
    return re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", "", line)


@pytest.fixture(scope="module")
def rbac_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server of this module's own: RBAC on, an audit log, our CRDs and kopf's peering CRDs."""
    root = tmp_path_factory.mktemp("rbac-apiserver")
    with ApiServer(root / "server", crds_dir=e2e_crds(root / "crds"), rbac=True, audit=True) as server:
        yield server


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory, rbac_server: ApiServer) -> Iterator[Sandbox]:
    """The AWS stand-in; no operator: each case starts its own with its own token."""
    workdir = tmp_path_factory.mktemp("chart-rbac")
    with shared_sandbox(workdir, rbac_server, aws_args=AWS_ARGS, operator_env=OPERATOR_ENV) as sandbox:
        yield sandbox


def install(server: ApiServer, case: str) -> tuple[list[dict[str, Any]], list[str], str]:
    """Render the chart for `case` and apply what the operator's identity is made of; returns the
    rendered manifests, the namespaces the operator works in and its ServiceAccount's user name."""
    namespaced, peering = CASES[case]
    release, release_ns = f"r-{case}", f"{case}-system"
    watched = [f"{case}-a", f"{case}-b"] if namespaced else [f"{case}-apps", f"{case}-more"]
    args = ["--set", f"peering.enabled={str(peering).lower()}", "--set", f"peering.name={release}"]
    if namespaced:
        args += ["--set", "watchNamespaces={" + ",".join(watched) + "}"]
    rendered = load_manifests(render_chart(*args, namespace=release_ns))
    for ns in [release_ns, *watched]:
        server.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for kind in APPLIED_KINDS:
        for doc in rendered:
            if doc["kind"] == kind:
                server.apply(doc)
    [account] = [d for d in rendered if d["kind"] == "ServiceAccount"]
    return rendered, watched, f"system:serviceaccount:{release_ns}:{account['metadata']['name']}"


def operator_args(rendered: list[dict[str, Any]]) -> list[str]:
    """The chart Deployment's `q-operator` arguments, less `run` and the pod's liveness port (the
    sandbox gives each operator a free one); a fixed priority where the pod would draw one."""
    [deployment] = [d for d in rendered if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    args = [a for a in container["args"] if a != "run" and not a.startswith("--liveness")]
    if any(a.startswith("--peering") for a in args):
        args.append("--priority=100")
    return args


def lifecycle(box: Sandbox, case: str, namespaces: list[str]) -> dict[str, list[str]]:
    """Create, update in place, replace (each kind that has a replacement) and delete an object of every
    kind in each watched namespace, plus a plugin whose OpenAPI document is in a ConfigMap (changed,
    then the plugin replaced); the event reasons posted about each object, by "namespace/name"."""
    ns = namespaces[0]
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "orders-openapi", "namespace": ns},
        "data": {"openapi.json": OPENAPI},
    }
    box.kubectl("apply", "-f", "-", input=json.dumps(cm))
    plugin = qplugin(f"{case}-from-configmap", ns, applicationId=new_application_id())
    plugin["spec"]["customPluginConfiguration"]["apiSchema"] = {
        "payloadFrom": {"configMapKeyRef": {"name": "orders-openapi", "key": "openapi.json"}}
    }
    # One object of every kind in each watched namespace: a Role (or the ClusterRole) must cover each.
    of_kinds = [
        (facts, facts.manifest(f"{case}-{facts.short}", where))
        for facts in TEST_KINDS
        for where in namespaces
    ]
    objects = [(QPLUGINS, plugin)] + [(facts.plural_path, obj) for facts, obj in of_kinds]
    for _, obj in objects:
        apply(box, obj)
    wait_all_ready(box, objects)

    # Update: a change AWS applies in place; the engine says so with an Updated event.
    for facts, obj in of_kinds:
        facts.change(obj["spec"], obj["metadata"]["name"], 0)
        apply(box, obj)
    wait_all_ready(box, objects)
    for _, obj in of_kinds:
        wait_event_reasons(box, obj["metadata"]["namespace"], obj["metadata"]["name"], "Updated")

    # The ConfigMap holding the plugin's OpenAPI document changes: the operator reads it and updates
    # the plugin in place (the spec did not change: the event is the drift correction's).
    updates = len(calls(box, "UpdatePlugin"))
    cm["data"]["openapi.json"] = OPENAPI.replace("Orders", "Orders v2")
    box.kubectl("apply", "-f", "-", input=json.dumps(cm))
    wait_for("UpdatePlugin after the ConfigMap changed", lambda: len(calls(box, "UpdatePlugin")) > updates)
    wait_all_ready(box, objects)
    wait_event_reasons(box, ns, plugin["metadata"]["name"], "DriftCorrected")

    # Replace: a change no AWS call makes in place (a plugin's application, a library item's app
    # version) means a new resource, then the old one is deleted.
    replaced = [(QPLUGIN, plugin)] + [(facts, obj) for facts, obj in of_kinds if facts.replacement]
    old_ids: dict[tuple[str, str], str] = {}
    for facts, obj in replaced:
        meta = obj["metadata"]
        old_ids[meta["namespace"], meta["name"]] = current_id(box, facts, obj)
        assert facts.replacement is not None
        facts.replacement(obj["spec"])
        apply(box, obj)
    wait_all_ready(box, objects)
    for facts, obj in replaced:
        meta = obj["metadata"]
        assert current_id(box, facts, obj) != old_ids[meta["namespace"], meta["name"]], f"{meta} not replaced"
        wait_event_reasons(box, meta["namespace"], meta["name"], "Replacing", "Replaced")

    for _, obj in objects:
        meta = obj["metadata"]
        box.kubectl("delete", obj["kind"].lower(), meta["name"], "-n", meta["namespace"], "--wait=false")
    for path, obj in objects:
        meta = obj["metadata"]
        wait_for(
            f"{meta['namespace']}/{meta['name']} deleted",
            lambda p=path, m=meta: box.get(p, m["namespace"], m["name"]) is None,
            timeout=60,
        )
    return {
        f"{obj['metadata']['namespace']}/{obj['metadata']['name']}": [
            e["reason"] for e in events_of(box, obj["metadata"]["namespace"], obj["metadata"]["name"])
        ]
        for _, obj in objects
    }


def current_id(box: Sandbox, facts: KindFacts, obj: dict[str, Any]) -> str:
    """The AWS ID in the object's status (a replacement changes it)."""
    meta = obj["metadata"]
    status = (box.get(facts.plural_path, meta["namespace"], meta["name"]) or {}).get("status") or {}
    return str(status.get(facts.info.id_field))


def wait_all_ready(box: Sandbox, objects: list[tuple[str, dict[str, Any]]]) -> None:
    for path, obj in objects:
        box.wait_condition(path, obj["metadata"]["namespace"], obj["metadata"]["name"], "Ready", timeout=60)


def peering_holders(server: ApiServer, rendered: list[dict[str, Any]]) -> list[str]:
    """The operator identities kopf recorded in the chart's peering object(s)."""
    holders = []
    for doc in rendered:
        if doc["kind"] == "ClusterKopfPeering":
            path = f"/apis/kopf.dev/v1/clusterkopfpeerings/{doc['metadata']['name']}"
        elif doc["kind"] == "KopfPeering":
            meta = doc["metadata"]
            path = f"/apis/kopf.dev/v1/namespaces/{meta['namespace']}/kopfpeerings/{meta['name']}"
        else:
            continue
        holders += list((server.request("GET", path).get("status") or {}).keys())
    return holders


@pytest.mark.parametrize("case", list(CASES))
def test_the_operator_runs_a_full_lifecycle_with_only_the_charts_grants(
    box: Sandbox, rbac_server: ApiServer, case: str
) -> None:
    rendered, namespaces, user = install(rbac_server, case)
    kubeconfig = box.workdir / f"{case}.kubeconfig"
    token = rbac_server.service_account_token(user.split(":")[2], user.split(":")[3])
    kubeconfig.write_text(rbac_server.kubeconfig_text(token=token))
    operator = box.spawn_operator(*operator_args(rendered), env={"KUBECONFIG": str(kubeconfig)})
    assert rbac_server.audit_log is not None
    try:
        events = lifecycle(box, case, namespaces)
        holders = peering_holders(rbac_server, rendered)
    finally:
        operator.terminate()
        operator.wait(timeout=30)
        # Checked even when the lifecycle failed: a 403 is then the reason to report.
        requests = audit_requests(rbac_server.audit_log, user=user)
        denied = sorted({f"{r['verb']} {r['uri']}" for r in requests if r["code"] == 403})
        assert not denied, f"the real authorizer refused the chart's ServiceAccount: {denied}"
        log = box.operator_log(operator).read_text(errors="replace")
        forbidden = [line for line in log.splitlines() if FORBIDDEN.search(message_of(line))]
        assert not forbidden, f"403 in the operator log: {forbidden[:3]}"

    for what, reasons in events.items():
        assert "Created" in reasons and "Deleted" in reasons, f"{what}: events {reasons}"
    if CASES[case][1]:
        assert holders, "the operator holds no lease in the chart's peering object"

    report = check_rbac(requests, rules_from_chart(rendered), agent=("kopf", "OpenAPI-Generator"))
    assert report.used and not report.missing
    assert not report.unused, f"grants this configuration never used: {sorted(report.unused)}"
