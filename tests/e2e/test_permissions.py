"""Least privilege, proven: the chart's RBAC and the IAM policies against what the operator really
called, across the whole end-to-end suite, both ways (nothing missing, nothing unused). Calls the
operator made as a namespace's role are held to docs/iam-tenant-policy.json, the ones it made as
itself (STS AssumeRole included) to docs/iam-policy.json.

What the operator called on Kubernetes comes from the real kube-apiserver's audit log (every module of
this pytest worker ran on the same server) plus the request logs of modules that ran on the stand-in;
on AWS, from the AWS stand-ins' request logs. The other half of the RBAC proof, that the real
authorizer lets the operator do all of it with only the chart's grants, is test_chart_rbac.py.

This module also drives every sample through create, update and delete itself, plus one object in a
namespace bound to a tenant role, so it proves something when run alone; run with the whole suite it
sees every path the suite exercised.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from q_operator.apiserver import ApiServer
from q_operator.sandbox import REPO_ROOT, Sandbox, wait_for
from tests.iam import POLICY, TENANT_POLICY, check_iam, load_policy
from tests.kinds import BY_KIND, QPLUGINS, facts_of, qplugin
from tests.rbac import audit_requests, check_rbac, render_chart, rules_from_chart

from . import calllog
from .helpers import apply, new_application_id, new_namespace

pytestmark = pytest.mark.after_suite

#: The operator's own Kubernetes clients: kopf, and the `kubernetes` client that reads ConfigMaps.
OPERATOR_AGENTS = ("kopf", "OpenAPI-Generator")
#: A team's role (named as the operator's policy expects tenant roles), assumable on the stand-in.
TENANT_ROLE = "arn:aws:iam::210987654321:role/q-operator-tenant-permissions"
AWS_ARGS = ["--build-seconds", "0.5", "--assumable-role", TENANT_ROLE]


def _resources() -> list[dict[str, Any]]:
    found = []
    for path in sorted((REPO_ROOT / "samples").glob("*.yaml")):
        if "invalid" in path.name:
            continue
        found += [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    return found


def _api(obj: dict[str, Any]) -> str:
    return facts_of(obj).plural_path


def _wait_ready(sandbox: Sandbox, objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        ns, name = obj["metadata"].get("namespace", "default"), obj["metadata"]["name"]
        sandbox.wait_condition(_api(obj), ns, name, "Ready")


def _crash_during_create(sandbox: Sandbox) -> None:
    """kill -9 while CreatePlugin is in flight, then the spec changes while the operator is down: the
    token no longer matches, so the restart finds the plugin by listing (ListPlugins), not a replay."""
    app = new_application_id()
    ns = new_namespace(sandbox, "crash-window")
    sandbox.aws("POST", "/_emulator/config", {"latency_ms": 1000})
    try:
        apply(sandbox, qplugin("crash-window", ns, applicationId=app))
        wait_for(
            "AWS to create the plugin", lambda: plugins_in_state(sandbox, app), timeout=30, interval=0.02
        )
        sandbox.stop_operator(kill=True)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"latency_ms": 0})
    patch = '{"spec":{"tags":{"k":"v"}}}'
    sandbox.kubectl("patch", "qplugin", "crash-window", "-n", ns, "--type=merge", "-p", patch)
    sandbox.start_operator()
    sandbox.wait_condition(QPLUGINS, ns, "crash-window", "Ready")
    assert len(plugins_in_state(sandbox, app)) == 1
    sandbox.kubectl("delete", "qplugin", "crash-window", "-n", ns, "--wait=false")
    wait_for("crash-window deleted", lambda: sandbox.get(QPLUGINS, ns, "crash-window") is None, timeout=60)


def _as_a_tenant_role(sandbox: Sandbox) -> None:
    """One object in a namespace bound to a tenant role: the operator assumes it (sts:AssumeRole)
    and watches Namespaces for the binding."""
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "tenant-permissions", "annotations": {"q-operator.dev/role-arn": TENANT_ROLE}},
    }
    sandbox.kube("POST", "/api/v1/namespaces", namespace)
    apply(sandbox, qplugin("tenant", "tenant-permissions", applicationId=new_application_id()))
    live = sandbox.wait_condition(QPLUGINS, "tenant-permissions", "tenant", "Ready")
    assert live["status"]["accountId"] == TENANT_ROLE.split(":")[4]
    sandbox.kubectl("delete", "qplugin", "tenant", "-n", "tenant-permissions", "--wait=false")
    wait_for(
        "tenant deleted", lambda: sandbox.get(QPLUGINS, "tenant-permissions", "tenant") is None, timeout=60
    )


@pytest.fixture(scope="module")
def lifecycle(sandbox: Sandbox) -> Sandbox:
    """Every sample created, changed twice and deleted, plus a crash in the create window."""
    for path in sorted((REPO_ROOT / "samples").glob("*.yaml")):
        if "invalid" not in path.name:
            sandbox.kubectl("apply", "-f", str(path))
    kinds = [d for d in _resources() if d["kind"] in BY_KIND]
    _wait_ready(sandbox, kinds)
    # Two rounds of changes per kind (tests/kinds.py): an in-place change that adds a tag, then the
    # tags removed, so every update and untag call is made at least once.
    for round_ in range(2):
        for obj in kinds:
            patch = facts_of(obj).permission_changes[round_]
            name = obj["metadata"]["name"]
            sandbox.kubectl("patch", obj["kind"].lower(), name, "--type=merge", "-p", json.dumps(patch))
        _wait_ready(sandbox, kinds)
    _crash_during_create(sandbox)
    _as_a_tenant_role(sandbox)
    for obj in kinds:
        sandbox.kubectl("delete", obj["kind"].lower(), obj["metadata"]["name"], "--wait=false")
    for obj in kinds:
        ns, name = obj["metadata"].get("namespace", "default"), obj["metadata"]["name"]
        wait_for(
            f"{name} deleted",
            lambda ns=ns, name=name, obj=obj: sandbox.get(_api(obj), ns, name) is None,
            timeout=60,
        )
    return sandbox


def test_chart_rbac_grants_every_call_the_operator_made_and_nothing_more(
    lifecycle: Sandbox, kube_server: ApiServer | None
) -> None:
    if kube_server is None:
        requests = [*calllog.KUBE, *lifecycle.kube("GET", "/_emulator/requests")]
    else:
        assert kube_server.audit_log is not None
        requests = [*calllog.KUBE, *audit_requests(kube_server.audit_log)]
    report = check_rbac(requests, rules_from_chart(render_chart()), agent=OPERATOR_AGENTS)
    assert report.used, "the log shows no call from the operator: the proof would be empty"
    assert not report.missing, (
        f"calls the chart does not grant (403 on a real cluster): {sorted(report.missing)}"
    )
    assert not report.unused, f"grants nothing used: {sorted(report.unused)}"


def test_iam_policy_allows_every_aws_call_the_operator_made_and_nothing_more(lifecycle: Sandbox) -> None:
    requests = [
        r for r in [*calllog.AWS, *lifecycle.aws_requests()] if "q-operator/" in str(r.get("userAgent", ""))
    ]
    as_tenant = check_iam([r for r in requests if r.get("role")], load_policy(TENANT_POLICY))
    as_itself = check_iam([r for r in requests if not r.get("role")], load_policy(POLICY))
    assert as_tenant.used and as_itself.used, (
        "the log shows no call from the operator: the proof would be empty"
    )
    missing = {("as a tenant role", a) for a in as_tenant.missing} | {
        ("as itself", a) for a in as_itself.missing
    }
    assert not missing, f"calls the policy does not allow (AccessDenied on AWS): {sorted(missing)}"
    # The operator's policy is the tenant policy plus sts:AssumeRole (test_permissions_generated.py):
    # every action of it was used, as itself or as a tenant role.
    unused = check_iam(requests, load_policy(POLICY)).unused
    assert not unused, f"actions allowed but never called: {sorted(unused)}"


def plugins_in_state(sandbox: Sandbox, application_id: str) -> list[dict[str, Any]]:
    state = sandbox.aws("GET", "/_emulator/state")
    return [
        p for r in state.values() for p in r.get("plugins", []) if p.get("application_id") == application_id
    ]
