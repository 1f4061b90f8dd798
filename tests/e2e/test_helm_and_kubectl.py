"""`helm install` of the chart and kubectl's server-side apply on the real kube-apiserver.

The chart must install as it would on a cluster (the real server validates every Deployment, Service
and RBAC field the stand-in takes on trust); no pod runs, as there is no kubelet. Server-side apply is
how Argo CD and `kubectl apply --server-side` write our objects: the operator must own no spec field,
so a user's apply never conflicts with it. `kubectl get`, `wait` and `describe` on our kinds are in
test_user_experience.py, `explain` and the refusal of invalid manifests in test_kinds.py, which run on
the same server.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from q_operator.sandbox import REPO_ROOT, Sandbox
from tests.kinds import QPLUGINS, qplugin
from tests.rbac import CHART, HELM


def helm(sandbox: Sandbox, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.run(
        [str(HELM), f"--kubeconfig={sandbox.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_helm_installs_upgrades_and_uninstalls_the_chart(sandbox: Sandbox, tmp_path: Path) -> None:
    release = ["q-operator", "--namespace=q-helm"]
    installed = helm(sandbox, tmp_path, "install", *release, str(CHART), "--create-namespace")
    assert installed.returncode == 0, installed.stderr
    assert "STATUS: deployed" in installed.stdout
    deployment = json.loads(
        sandbox.kubectl("get", "deployment", "q-operator", "-n", "q-helm", "-o", "json").stdout
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--all-namespaces" in container["args"] and "--standalone" in container["args"]
    sandbox.kubectl("get", "clusterrole,clusterrolebinding", "q-operator")
    # The roles for people, labelled for aggregation into the built-in edit, admin and view.
    people = sandbox.kubectl(
        "get", "clusterroles", "-l", "app.kubernetes.io/component=user-rbac", "-o", "json"
    ).stdout
    labels = {r["metadata"]["name"]: r["metadata"]["labels"] for r in json.loads(people)["items"]}
    assert set(labels) == {"q-operator-edit", "q-operator-view"}
    assert labels["q-operator-edit"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["q-operator-view"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    sandbox.kubectl("get", "serviceaccount/q-operator", "service/q-operator-metrics", "-n", "q-helm")

    upgraded = helm(
        sandbox,
        tmp_path,
        "upgrade",
        *release,
        str(CHART),
        "--set",
        "peering.enabled=true",
        "--set",
        "replicas=2",
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert (
        sandbox.kubectl(
            "get", "deployment", "q-operator", "-n", "q-helm", "-o", "jsonpath={.spec.replicas}"
        ).stdout
        == "2"
    )
    sandbox.kubectl("get", "clusterkopfpeering", "q-operator")
    # No kubelet, no controller-manager: the Deployment exists, its pods never do.
    assert sandbox.kubectl("get", "pods", "-n", "q-helm", "-o", "name").stdout.strip() == ""

    uninstalled = helm(sandbox, tmp_path, "uninstall", *release)
    assert uninstalled.returncode == 0, uninstalled.stderr
    for role in ("q-operator", "q-operator-edit", "q-operator-view"):
        gone = sandbox.kubectl("get", "clusterrole", role, check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_the_chart_is_valid_for_the_real_server_in_every_mode(sandbox: Sandbox) -> None:
    """Server-side dry runs of the rendered chart: namespaced with peering, and with every optional
    template on that needs no foreign CRD."""
    for namespace in ("team-a", "team-b"):
        sandbox.kubectl("create", "namespace", namespace, check=False)
    rendered = subprocess.run(
        [
            str(HELM),
            "template",
            "q-operator",
            str(CHART),
            "--namespace=team-a",
            "--set",
            "watchNamespaces={team-a,team-b}",
            "--set",
            "peering.enabled=true",
            "--set",
            "replicas=2",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    docs = [d for d in yaml.safe_load_all(rendered) if isinstance(d, dict)]
    assert {d["kind"] for d in docs} >= {"Deployment", "Role", "RoleBinding", "KopfPeering", "ServiceAccount"}
    result = sandbox.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
    assert result.returncode == 0, result.stderr


def test_server_side_apply_never_conflicts_with_the_operator(sandbox: Sandbox, namespace: str) -> None:
    obj = qplugin("ssa", namespace)
    applied = sandbox.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))
    assert "serverside-applied" in applied.stdout
    sandbox.wait_condition(QPLUGINS, namespace, "ssa", "Ready")
    live = sandbox.get(QPLUGINS, namespace, "ssa") or {}
    assert all("f:spec" not in (m.get("fieldsV1") or {}) for m in managers(live, "kopf"))

    # The user changes the spec by applying again: no conflict with the operator's fields.
    obj["spec"]["displayName"] = "renamed"
    sandbox.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(obj))
    live = sandbox.wait_condition(QPLUGINS, namespace, "ssa", "Ready")
    assert live["spec"]["displayName"] == "renamed"

    # Another manager (say, a GitOps tool) that sets the same field conflicts with the user, not the operator.
    obj["spec"]["displayName"] = "theirs"
    other = sandbox.kubectl(
        "apply", "--server-side", "--field-manager=gitops", "-f", "-", input=json.dumps(obj), check=False
    )
    assert other.returncode != 0
    assert 'conflict with "kubectl": .spec.displayName' in other.stderr
    assert "kopf" not in other.stderr


def test_an_invalid_sample_is_refused_naming_the_field(sandbox: Sandbox) -> None:
    result = sandbox.kubectl("apply", "-f", str(REPO_ROOT / "samples" / "qplugin-invalid.yaml"), check=False)
    assert result.returncode != 0
    assert "spec." in result.stderr and "Invalid value" in result.stderr, result.stderr


def managers(obj: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [m for m in obj.get("metadata", {}).get("managedFields", []) if m.get("manager") == name]
