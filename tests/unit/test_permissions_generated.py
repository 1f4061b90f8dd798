"""The chart's RBAC rules for our kinds and the IAM policies are generated from the kind registry:
the committed files must match, and what they grant follows from the registry alone."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from q_operator import permissions
from q_operator.registry import KINDS

ROOT = Path(__file__).resolve().parents[2]
RBAC_DIR = ROOT / "charts" / "q-operator" / "files"
IAM_DIR = ROOT / "docs"


def test_committed_rbac_rules_match_the_registry() -> None:
    for name, text in permissions.rendered_rbac_files().items():
        path = RBAC_DIR / name
        assert path.exists() and path.read_text() == text, f"{path} is stale: run make crds"


def test_committed_iam_policies_match_the_registry() -> None:
    for name, text in permissions.rendered_iam_files().items():
        path = IAM_DIR / name
        assert path.exists() and path.read_text() == text, f"{path} is stale: run make crds"


def test_rbac_rules_grant_each_kind_its_objects_and_status_and_nothing_else() -> None:
    rules = yaml.safe_load(permissions.render_rbac())
    expected = []
    for kind in KINDS:
        expected.append(
            {"apiGroups": [kind.group], "resources": [kind.plural], "verbs": ["list", "watch", "patch"]}
        )
        expected.append(
            {"apiGroups": [kind.group], "resources": [f"{kind.plural}/status"], "verbs": ["patch"]}
        )
    assert rules == expected


def test_every_rbac_rule_says_why_above_it() -> None:
    for name, text in permissions.rendered_rbac_files().items():
        lines = text.splitlines()
        for index, line in enumerate(lines):
            if line.startswith("- apiGroups:"):
                assert lines[index - 1].startswith("# "), f"{name}: rule without its reason: {line}"


def test_the_committed_user_rules_are_among_the_generated_files() -> None:
    """`make crds` writes the rules of the chart's edit and view roles beside the operator's."""
    files = permissions.rendered_rbac_files()
    assert {permissions.USER_EDIT_FILE, permissions.USER_VIEW_FILE} <= set(files)
    for name in (permissions.USER_EDIT_FILE, permissions.USER_VIEW_FILE):
        assert (RBAC_DIR / name).read_text() == files[name]


def test_user_rules_grant_each_kinds_objects_the_role_verbs_and_nothing_else() -> None:
    for text, verbs in (
        (permissions.render_user_edit(), permissions.USER_EDIT_VERBS),
        (permissions.render_user_view(), permissions.USER_VIEW_VERBS),
    ):
        rules = yaml.safe_load(text)
        expected = [
            {"apiGroups": [kind.group], "resources": [kind.plural], "verbs": list(verbs)} for kind in KINDS
        ]
        assert rules == expected
    assert permissions.USER_EDIT_VERBS == (
        "get",
        "list",
        "watch",
        "create",
        "update",
        "patch",
        "delete",
        "deletecollection",
    )
    assert permissions.USER_VIEW_VERBS == ("get", "list", "watch")


def test_no_user_rule_names_a_status_subresource_or_a_wildcard() -> None:
    """The operator trusts status as its own record: people never get `<plural>/status`, neither by
    name nor by `*` (which covers every subresource). Read from the committed files, as the chart
    includes them."""
    for name in (permissions.USER_EDIT_FILE, permissions.USER_VIEW_FILE):
        rules = yaml.safe_load((RBAC_DIR / name).read_text())
        assert rules, name
        for rule in rules:
            for resource in rule["resources"]:
                assert "/" not in resource and "*" not in resource, (name, rule)
            assert "*" not in rule["apiGroups"] and "*" not in rule["verbs"], (name, rule)


def test_tenant_policy_allows_exactly_the_kinds_actions_and_their_pass_role() -> None:
    policy = json.loads(permissions.render_policy(permissions.tenant_policy()))
    actions = [
        a
        for s in policy["Statement"]
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    expected = [a for kind in KINDS for a in kind.iam_actions]
    expected += ["iam:PassRole"] * sum(1 for kind in KINDS if kind.pass_role)
    assert sorted(actions) == sorted(expected)
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    sids = [s["Sid"] for s in policy["Statement"]]
    assert len(sids) == len(set(sids))
    for statement in policy["Statement"]:
        if statement["Action"] == "iam:PassRole":  # never a blanket PassRole: only to the kind's service
            assert statement["Condition"]["StringEquals"]["iam:PassedToService"].endswith(".amazonaws.com")


def test_operator_policy_is_the_tenant_policy_plus_assuming_tenant_roles_only() -> None:
    operator = permissions.operator_policy()
    tenant = permissions.tenant_policy()
    [assume, *rest] = operator["Statement"]
    assert rest == tenant["Statement"]
    assert assume["Action"] == "sts:AssumeRole"
    assert assume["Resource"] == permissions.TENANT_ROLE_PATTERN != "*"


def test_the_tenant_role_pattern_is_documented_in_the_install_guide() -> None:
    install = (ROOT / "docs" / "install.md").read_text()
    assert permissions.TENANT_ROLE_PATTERN in install
    assert permissions.TENANT_POLICY in install and permissions.OPERATOR_POLICY in install
