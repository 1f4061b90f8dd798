"""The RBAC that keeps tenants off their Namespace's AWS binding (docs/install.md, "The RBAC that keeps
tenants off the binding"), proven by the real authorizer: the manifests and `kubectl auth can-i`
lines of that section, run as written against a kube-apiserver with RBAC on.

A tenant bound to the built-in `edit` role plus a Role for q-operator's kinds may create objects in
its namespace, and may not change its Namespace (where the binding lives); the pitfall the section
warns of, a RoleBinding granting `patch` on namespaces, would let it re-annotate its own Namespace
and no other.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from q_operator.apiserver import ApiServer
from q_operator.sandbox import KUBECTL, REPO_ROOT
from tests.kinds import qplugin

from .helpers import e2e_crds, new_application_id

SECTION = "### The RBAC that keeps tenants off the binding"


def section_blocks(language: str) -> list[str]:
    """The fenced blocks of `language` in the install guide's tenant RBAC section."""
    text = (REPO_ROOT / "docs" / "install.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n#", start + len(SECTION))
    return re.findall(rf"```{language}\n(.*?)```", text[start:end], re.S)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server of this module's own, RBAC on, with our CRDs; team-a's and team-b's namespaces bound."""
    root = tmp_path_factory.mktemp("tenant-rbac")
    with ApiServer(root / "server", crds_dir=e2e_crds(root / "crds"), rbac=True) as api:
        for team in ("team-a", "team-b"):
            binding = {"q-operator.dev/role-arn": f"arn:aws:iam::111122223333:role/q-operator-tenant-{team}"}
            api.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team, "annotations": binding}}
            )
        for doc in yaml.safe_load_all(section_blocks("yaml")[0]):
            api.apply(doc)
        yield api


def as_tenant(
    api: ApiServer, method: str, path: str, body: Any, content_type: str = "application/json"
) -> int:
    """One request as alice of group team-a (the admin impersonating her, as `kubectl --as` does):
    the HTTP status."""
    request = urllib.request.Request(api.url + path, data=json.dumps(body).encode(), method=method)
    request.add_header("Content-Type", content_type)
    request.add_header("Impersonate-User", "alice")
    request.add_header("Impersonate-Group", "team-a")
    try:
        with urllib.request.urlopen(request, timeout=30, context=api.ssl_context()) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def annotate(namespace: str, value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {"q-operator.dev/role-arn": value}}}


def test_the_documented_can_i_answers_hold(server: ApiServer) -> None:
    """Each `kubectl auth can-i` line of the section answers what the section shows."""
    [console] = section_blocks("console")
    lines = console.strip().splitlines()
    checked = 0
    for command, expected in zip(lines[::2], lines[1::2], strict=True):
        assert command.startswith("$ kubectl ")
        argv = [str(KUBECTL), f"--kubeconfig={server.kubeconfig}", *command[len("$ kubectl ") :].split()]
        answer = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert answer.stdout.strip() == expected.strip(), (command, answer.stdout, answer.stderr)
        checked += 1
    assert checked == 2


def test_a_tenant_creates_objects_but_cannot_touch_its_namespaces_binding(server: ApiServer) -> None:
    plugin = qplugin("weather", "team-a", applicationId=new_application_id())
    assert (
        as_tenant(
            server, "POST", "/apis/qbusiness.q-operator.dev/v1alpha1/namespaces/team-a/qplugins", plugin
        )
        == 201
    )
    evil = annotate("team-a", "arn:aws:iam::999999999999:role/q-operator-tenant-evil")
    merge = "application/merge-patch+json"
    assert as_tenant(server, "PATCH", "/api/v1/namespaces/team-a", evil, merge) == 403
    assert (
        as_tenant(
            server, "PUT", "/api/v1/namespaces/team-a", {**evil, "apiVersion": "v1", "kind": "Namespace"}
        )
        == 403
    )
    still = server.request("GET", "/api/v1/namespaces/team-a")["metadata"]["annotations"]
    assert still["q-operator.dev/role-arn"].endswith("q-operator-tenant-team-a")


def test_the_pitfall_a_rolebinding_granting_namespace_patch_opens_the_tenants_own_namespace(
    server: ApiServer,
) -> None:
    """What the section warns of: `patch` on namespaces granted by a RoleBinding in team-a lets the
    tenant re-annotate Namespace team-a (the API server treats it as inside itself), and no other."""
    server.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "namespace-patcher"},
            "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["patch"]}],
        }
    )
    server.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "do-not-do-this", "namespace": "team-a"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "namespace-patcher",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "team-a"}],
        }
    )
    merge = "application/merge-patch+json"
    try:
        assert as_tenant(server, "PATCH", "/api/v1/namespaces/team-b", annotate("team-b", "x"), merge) == 403
        assert as_tenant(server, "PATCH", "/api/v1/namespaces/team-a", annotate("team-a", "x"), merge) == 200
    finally:
        server.request(
            "DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/do-not-do-this"
        )
