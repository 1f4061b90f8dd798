"""The RBAC that keeps tenants off their Namespace's AWS binding and off their objects' status
(docs/install.md, "The RBAC that keeps tenants off the binding"), proven by the real authorizer: the
chart's `<release>-edit` and `<release>-view` ClusterRoles rendered by helm, and the manifests and
`kubectl auth can-i` lines of that section, run as written against a kube-apiserver with RBAC on.

The operator trusts an object's status as its own record (which AWS resource it manages, in which
account), so a tenant must never write it: bound to the chart's edit role, team-a creates, changes
and deletes objects of every kind, and gets 403 on `<plural>/status`; bound to the view role,
team-b-readers reads them and writes nothing. The hand-written `resources: ["*"]` Role the guide used
to show grants status, and the same checks say so, which is how we know they can tell.

The server has no kube-controller-manager, so nothing aggregates the chart's roles into the built-in
`edit`, `admin` and `view`: the section binds the chart's roles directly (as it tells users to when
aggregation is off), and a test holds the chart's labels to the built-in roles' selectors as this
server defines them.
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
from q_operator.permissions import USER_EDIT_VERBS, USER_VIEW_VERBS
from q_operator.sandbox import KUBECTL, REPO_ROOT
from tests.kinds import TEST_KINDS, KindFacts, qplugin
from tests.rbac import is_user_role, load_manifests, render_chart

from .helpers import e2e_crds, new_application_id

SECTION = "### The RBAC that keeps tenants off the binding"
#: The release the guide installs (`helm install q-operator ...`): its roles are q-operator-edit/-view.
RELEASE_ROLES = {"edit": "q-operator-edit", "view": "q-operator-view"}
#: (user, group) of the section's people: team-a's editor, team-b's reader, and a team bound to the
#: hand-written wildcard Role (not in the guide: the counter-example).
EDITOR = ("alice", "team-a")
VIEWER = ("bob", "team-b-readers")
WILDCARD = ("carol", "legacy")
MERGE = "application/merge-patch+json"
#: What a tenant who could write status would write: another account, and a console-made resource.
FORGED_ACCOUNT = "999999999999"


def section_blocks(language: str) -> list[str]:
    """The fenced blocks of `language` in the install guide's tenant RBAC section."""
    text = (REPO_ROOT / "docs" / "install.md").read_text()
    start = text.index(SECTION)
    end = text.index("\n#", start + len(SECTION))
    return re.findall(rf"```{language}\n(.*?)```", text[start:end], re.S)


def user_roles() -> list[dict[str, Any]]:
    """The chart's ClusterRoles for people, as `helm install q-operator` renders them."""
    roles = [doc for doc in load_manifests(render_chart()) if is_user_role(doc)]
    assert sorted(r["metadata"]["name"] for r in roles) == sorted(RELEASE_ROLES.values())
    return roles


def wildcard_role() -> list[dict[str, Any]]:
    """The Role (and its binding for group `legacy` in team-a) the guide showed before the chart had
    roles for people: `resources: ["*"]` on every kind's group, which includes `<plural>/status`."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "q-operator-objects-wildcard", "namespace": "team-a"},
        "rules": [
            {
                "apiGroups": sorted({facts.info.group for facts in TEST_KINDS}),
                "resources": ["*"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "legacy-wildcard", "namespace": "team-a"},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": WILDCARD[1]}],
    }
    return [role, binding]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A server of this module's own, RBAC on, with our CRDs; team-a's and team-b's namespaces bound;
    the chart's roles for people, the section's bindings and the counter-example's wildcard Role."""
    root = tmp_path_factory.mktemp("tenant-rbac")
    with ApiServer(root / "server", crds_dir=e2e_crds(root / "crds"), rbac=True) as api:
        for team in ("team-a", "team-b"):
            binding = {"q-operator.dev/role-arn": f"arn:aws:iam::111122223333:role/q-operator-tenant-{team}"}
            api.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": team, "annotations": binding}}
            )
        for role in user_roles():
            api.apply(role)
        [manifests] = section_blocks("yaml")
        for doc in yaml.safe_load_all(manifests):
            api.apply(doc)
        for doc in wildcard_role():
            api.apply(doc)
        yield api


def as_user(
    api: ApiServer,
    who: tuple[str, str],
    method: str,
    path: str,
    body: Any = None,
    content_type: str = "application/json",
) -> int:
    """One request as `who` (user, group), the admin impersonating them as `kubectl --as` does: the
    HTTP status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(api.url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    request.add_header("Impersonate-User", who[0])
    request.add_header("Impersonate-Group", who[1])
    try:
        with urllib.request.urlopen(request, timeout=30, context=api.ssl_context()) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def allowed(
    api: ApiServer, who: tuple[str, str], verb: str, facts: KindFacts, namespace: str, subresource: str = ""
) -> bool:
    """The real authorizer's answer (a SubjectAccessReview) for `who`, a member of every
    authenticated user's group as a real user is."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": who[0],
            "groups": [who[1], "system:authenticated"],
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": facts.info.group,
                "resource": facts.info.plural,
                "subresource": subresource,
            },
        },
    }
    answer = api.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    return bool(answer["status"].get("allowed"))


def collection(facts: KindFacts, namespace: str) -> str:
    return f"/apis/{facts.info.group}/{facts.info.version}/namespaces/{namespace}/{facts.info.plural}"


def forged_status(facts: KindFacts) -> dict[str, Any]:
    """A status that would point the operator at a resource made outside it, in another account."""
    return {"status": {"accountId": FORGED_ACCOUNT, facts.info.id_field: "console-made"}}


def status_patch(api: ApiServer, who: tuple[str, str], facts: KindFacts, namespace: str, name: str) -> int:
    """`who` patching the object's status subresource with a forged status: the HTTP status."""
    path = f"{collection(facts, namespace)}/{name}/status"
    return as_user(api, who, "PATCH", path, forged_status(facts), MERGE)


def admin_get(api: ApiServer, facts: KindFacts, namespace: str, name: str) -> dict[str, Any]:
    got: dict[str, Any] = api.request("GET", f"{collection(facts, namespace)}/{name}")
    return got


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
    assert checked == 5


@pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda facts: facts.kind)
def test_the_editor_creates_changes_and_deletes_every_kind_but_never_writes_its_status(
    server: ApiServer, facts: KindFacts
) -> None:
    """team-a, bound to the chart's edit role: 201/200 on its objects, 403 on their status. What it
    puts in status through the object itself, the status subresource makes the server drop."""
    name = f"edited-{facts.short}"
    obj = {**facts.manifest(name, "team-a"), **forged_status(facts)}
    assert as_user(server, EDITOR, "POST", collection(facts, "team-a"), obj) == 201
    assert "status" not in admin_get(server, facts, "team-a", name)

    change = {"metadata": {"labels": {"changed-by": "alice"}}, **forged_status(facts)}
    assert as_user(server, EDITOR, "PATCH", f"{collection(facts, 'team-a')}/{name}", change, MERGE) == 200
    after = admin_get(server, facts, "team-a", name)
    assert after["metadata"]["labels"] == {"changed-by": "alice"} and "status" not in after

    assert status_patch(server, EDITOR, facts, "team-a", name) == 403
    replace = {**after, **forged_status(facts)}
    assert as_user(server, EDITOR, "PUT", f"{collection(facts, 'team-a')}/{name}/status", replace) == 403
    assert "status" not in admin_get(server, facts, "team-a", name)

    assert as_user(server, EDITOR, "DELETE", f"{collection(facts, 'team-a')}/{name}") == 200


@pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda facts: facts.kind)
def test_the_authorizer_grants_the_editor_and_the_viewer_their_verbs_and_neither_any_status(
    server: ApiServer, facts: KindFacts
) -> None:
    for verb in USER_EDIT_VERBS:
        assert allowed(server, EDITOR, verb, facts, "team-a"), verb
        assert allowed(server, VIEWER, verb, facts, "team-b") == (verb in USER_VIEW_VERBS), verb
        assert not allowed(server, EDITOR, verb, facts, "team-a", "status"), verb
        assert not allowed(server, VIEWER, verb, facts, "team-b", "status"), verb
        # The bindings are namespaced: nothing in the other team's namespace.
        assert not allowed(server, EDITOR, verb, facts, "team-b"), verb
        assert not allowed(server, VIEWER, verb, facts, "team-a"), verb


@pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda facts: facts.kind)
def test_the_viewer_reads_objects_but_creates_nothing_and_writes_no_status(
    server: ApiServer, facts: KindFacts
) -> None:
    name = f"viewed-{facts.short}"
    server.apply(facts.manifest(name, "team-b"))
    try:
        assert as_user(server, VIEWER, "GET", collection(facts, "team-b")) == 200
        assert as_user(server, VIEWER, "GET", f"{collection(facts, 'team-b')}/{name}") == 200
        other = facts.manifest(f"{name}-2", "team-b")
        assert as_user(server, VIEWER, "POST", collection(facts, "team-b"), other) == 403
        change = {"metadata": {"labels": {"changed-by": "bob"}}}
        assert as_user(server, VIEWER, "PATCH", f"{collection(facts, 'team-b')}/{name}", change, MERGE) == 403
        assert status_patch(server, VIEWER, facts, "team-b", name) == 403
        assert as_user(server, VIEWER, "DELETE", f"{collection(facts, 'team-b')}/{name}") == 403
    finally:
        server.request("DELETE", f"{collection(facts, 'team-b')}/{name}")


@pytest.mark.parametrize("facts", TEST_KINDS, ids=lambda facts: facts.kind)
def test_the_wildcard_role_the_guide_used_to_show_lets_a_tenant_forge_status(
    server: ApiServer, facts: KindFacts
) -> None:
    """The counter-example: the same checks, on the hand-written `resources: ["*"]` Role, find the
    hole the chart's roles close, so a status grant in them would not go unnoticed."""
    name = f"forged-{facts.short}"
    server.apply(facts.manifest(name, "team-a"))
    try:
        assert allowed(server, WILDCARD, "patch", facts, "team-a", "status")
        assert status_patch(server, WILDCARD, facts, "team-a", name) == 200
        forged = admin_get(server, facts, "team-a", name)["status"]
        assert forged["accountId"] == FORGED_ACCOUNT and forged[facts.info.id_field] == "console-made"
    finally:
        server.request("DELETE", f"{collection(facts, 'team-a')}/{name}")


def test_the_charts_roles_carry_the_labels_the_builtin_roles_aggregate(server: ApiServer) -> None:
    """What kube-controller-manager would do on a real cluster: `edit` and `admin` take in the chart's
    edit role, `view` its view role (and not the edit role), by the selectors this server defines."""

    def selects(builtin: str, role: dict[str, Any]) -> bool:
        got = server.request("GET", f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{builtin}")
        labels = role["metadata"]["labels"]
        return any(
            all(labels.get(key) == value for key, value in selector["matchLabels"].items())
            for selector in got["aggregationRule"]["clusterRoleSelectors"]
        )

    roles = {role["metadata"]["name"]: role for role in user_roles()}
    edit, view = roles[RELEASE_ROLES["edit"]], roles[RELEASE_ROLES["view"]]
    assert selects("edit", edit) and selects("admin", edit) and not selects("view", edit)
    assert selects("view", view) and not selects("edit", view) and not selects("admin", view)

    unlabelled = [
        doc
        for doc in load_manifests(render_chart("--set", "rbac.aggregateToDefaultRoles=false"))
        if is_user_role(doc)
    ]
    assert len(unlabelled) == 2
    assert not any(selects(builtin, role) for builtin in ("edit", "admin", "view") for role in unlabelled)


def annotate(value: str) -> dict[str, Any]:
    return {"metadata": {"annotations": {"q-operator.dev/role-arn": value}}}


def test_a_tenant_creates_objects_but_cannot_touch_its_namespaces_binding(server: ApiServer) -> None:
    plugin = qplugin("weather", "team-a", applicationId=new_application_id())
    path = "/apis/qbusiness.q-operator.dev/v1alpha1/namespaces/team-a/qplugins"
    assert as_user(server, EDITOR, "POST", path, plugin) == 201
    evil = annotate("arn:aws:iam::999999999999:role/q-operator-tenant-evil")
    assert as_user(server, EDITOR, "PATCH", "/api/v1/namespaces/team-a", evil, MERGE) == 403
    replaced = {**evil, "apiVersion": "v1", "kind": "Namespace"}
    assert as_user(server, EDITOR, "PUT", "/api/v1/namespaces/team-a", replaced) == 403
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
    try:
        assert as_user(server, EDITOR, "PATCH", "/api/v1/namespaces/team-b", annotate("x"), MERGE) == 403
        assert as_user(server, EDITOR, "PATCH", "/api/v1/namespaces/team-a", annotate("x"), MERGE) == 200
    finally:
        server.request(
            "DELETE", "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/do-not-do-this"
        )
