"""The Helm chart lints, renders, validates offline in strict mode, and grants what it says it grants."""

from __future__ import annotations

import filecmp
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from q_operator import permissions
from q_operator.registry import KINDS
from tests.iam import POLICY, TENANT_POLICY, check_iam, load_policy
from tests.rbac import (
    CHART,
    HELM,
    ROOT,
    check_rbac,
    is_user_role,
    load_manifests,
    render_chart,
    rules_from_chart,
)

pytestmark = pytest.mark.skipif(not HELM.exists(), reason="needs .tools/bin/helm (make install)")

#: The Kubernetes version the manifests are validated against (the kubectl that make install ships).
KUBE_VERSION = "1.32.0"

#: API groups whose kinds kubernetes-validate has no schema for: ours, kopf's and Prometheus'.
UNKNOWN_GROUPS = {"q-operator.dev", "kopf.dev", "monitoring.coreos.com"}

NAMESPACED = ("--set", "watchNamespaces={team-a,team-b}")
PEERED = ("--set", "replicas=2", "--set", "peering.enabled=true")

#: The configurations a user is most likely to install with.
CONFIGURATIONS: dict[str, tuple[str, ...]] = {
    "default": (),
    "namespaced": NAMESPACED,
    "two-replicas": PEERED,
    "two-replicas-namespaced": (*PEERED, *NAMESPACED),
    "no-aggregation": ("--set", "rbac.aggregateToDefaultRoles=false"),
    "everything-on": (
        *PEERED,
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "aws.existingSecret=aws-creds",
        "--set",
        "aws.endpointUrl=http://127.0.0.1:4566",
        "--set",
        "aws.rate=5",
        "--set",
        "aws.concurrency=8",
        "--set",
        "operator.consistencySeconds=45",
        "--set-string",
        "serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::123456789012:role/q",
        "--set",
        "nodeSelector.kubernetes\\.io/os=linux",
        "--set",
        "identity.requireNamespaceRole=true",
        "--set",
        "identity.allowAdoptionEverywhere=true",
    ),
}


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc.get("kind") == kind]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = only(docs, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(docs)["env"]}


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_helm_lint_passes(name: str) -> None:
    result = subprocess.run(
        [str(HELM), "lint", "--strict", str(CHART), *CONFIGURATIONS[name]], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_rendered_manifests_validate_strictly_offline(name: str) -> None:
    docs = load_manifests(render_chart(*CONFIGURATIONS[name], include_crds=True))
    validated = 0
    for doc in docs:
        group = doc["apiVersion"].rpartition("/")[0]
        if any(group == g or group.endswith("." + g) for g in UNKNOWN_GROUPS):
            continue
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        validated += 1
    assert validated >= 6


def test_default_install_runs_cluster_wide_standalone_with_a_liveness_probe() -> None:
    docs = load_manifests(render_chart())
    c = container(docs)
    assert c["args"][:2] == ["run", "--liveness=http://0.0.0.0:8081/healthz"]
    assert "--all-namespaces" in c["args"] and "--standalone" in c["args"]
    assert "command" not in c  # the image's ENTRYPOINT q-operator
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": 8080, "healthz": 8081}
    assert c["resources"]["requests"] and c["resources"]["limits"]
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert by_kind(docs, "ClusterRole") and not by_kind(docs, "Role")
    assert not by_kind(docs, "ClusterKopfPeering")
    assert "--require-namespace-role" not in c["args"] and "--allow-adoption-everywhere" not in c["args"]
    # each namespace's AWS identity is read from (and watched on) its Namespace; never written
    namespace_rules = {r for r in rules_from_chart(by_kind(docs, "ClusterRole")) if r[1] == "namespaces"}
    assert namespace_rules == {("", "namespaces", "", "list"), ("", "namespaces", "", "watch")}


def test_identity_values_become_the_operators_flags() -> None:
    from q_operator.engine.runner import parse_args

    args = container(load_manifests(render_chart(*CONFIGURATIONS["everything-on"])))["args"]
    parsed = parse_args([*args[1:], "--priority=1"])
    assert parsed.require_namespace_role and parsed.allow_adoption_everywhere


def test_pod_meets_the_restricted_pod_security_standard() -> None:
    docs = load_manifests(render_chart())
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    sc = container(docs)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container(docs)["volumeMounts"]
    assert {v["name"] for v in pod["volumes"] if "emptyDir" in v} == {"tmp"}


def test_operator_settings_reach_the_container_as_environment() -> None:
    docs = load_manifests(render_chart(*CONFIGURATIONS["everything-on"]))
    env = env_of(docs)
    assert env["AWS_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert env["Q_OPERATOR_AWS_RATE"] == "5"
    assert env["Q_OPERATOR_AWS_CONCURRENCY"] == "8"
    assert env["Q_OPERATOR_LOG_LEVEL"] == "INFO"
    assert env["Q_OPERATOR_LOG_FORMAT"] == "json"
    assert env["Q_OPERATOR_DRIFT_SECONDS"] == "300"
    assert env["Q_OPERATOR_CONSISTENCY_SECONDS"] == "45"
    assert env["Q_OPERATOR_METRICS_PORT"] == "8080"
    assert container(docs)["envFrom"] == [{"secretRef": {"name": "aws-creds"}}]
    sa = only(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/q"}
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["serviceAccountName"] == sa["metadata"]["name"]


def test_unset_rate_limits_leave_the_operator_defaults() -> None:
    env = env_of(load_manifests(render_chart()))
    assert "Q_OPERATOR_AWS_RATE" not in env and "Q_OPERATOR_AWS_CONCURRENCY" not in env
    assert "AWS_ENDPOINT_URL" not in env
    assert "envFrom" not in container(load_manifests(render_chart()))


def test_namespaced_install_grants_only_the_watched_namespaces() -> None:
    docs = load_manifests(render_chart(*NAMESPACED))
    args = container(docs)["args"]
    assert "--namespace=team-a" in args and "--namespace=team-b" in args
    assert "--all-namespaces" not in args
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in by_kind(docs, "RoleBinding")) == ["team-a", "team-b"]
    cluster_rules = rules_from_chart(by_kind(docs, "ClusterRole"))
    assert cluster_rules == {
        ("", "namespaces", "", "list"),
        ("", "namespaces", "", "watch"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "", "watch"),
    }
    assert {(k.group, k.plural, "", "patch") for k in KINDS} <= rules_from_chart(roles)


def test_more_replicas_without_peering_is_refused() -> None:
    result = subprocess.run(
        [str(HELM), "template", "q", str(CHART), "--set", "replicas=2"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "peering.enabled" in result.stderr


def test_two_replicas_run_with_kopf_peering_and_distinct_priorities() -> None:
    rendered = render_chart(*PEERED, include_crds=True)
    docs = load_manifests(rendered)
    c = container(docs)
    assert "--peering=q-operator" in c["args"] and "--standalone" not in c["args"]
    # every pod draws its own priority: kopf pauses all peers that share one
    assert c["command"][:2] == ["/bin/sh", "-c"] and "--priority=" in c["command"][2]
    assert {"name": "POD_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in c["env"]
    crds = {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= crds
    assert only(docs, "ClusterKopfPeering")["metadata"]["name"] == "q-operator"
    rules = rules_from_chart(docs)
    assert ("kopf.dev", "clusterkopfpeerings", "", "patch") in rules
    assert only(docs, "Deployment")["spec"]["replicas"] == 2


def test_namespaced_peering_uses_one_kopfpeering_per_namespace() -> None:
    docs = load_manifests(render_chart(*PEERED, *NAMESPACED))
    peerings = by_kind(docs, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert ("kopf.dev", "kopfpeerings", "", "watch") in rules_from_chart(by_kind(docs, "Role"))
    assert not any(r[1] == "clusterkopfpeerings" for r in rules_from_chart(docs))


def test_peering_crds_are_not_installed_without_peering() -> None:
    docs = load_manifests(render_chart(include_crds=True))
    assert not any(d["metadata"]["name"].endswith(".kopf.dev") for d in docs)


def test_metrics_service_and_optional_servicemonitor() -> None:
    docs = load_manifests(render_chart())
    service = only(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert not by_kind(docs, "ServiceMonitor")
    monitor = only(load_manifests(render_chart("--set", "serviceMonitor.enabled=true")), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "metrics"


def test_every_rbac_rule_carries_a_comment_saying_why() -> None:
    rendered = render_chart(*PEERED) + "\n---\n" + render_chart(*PEERED, *NAMESPACED)
    lines = rendered.splitlines()
    checked = 0
    for index, line in enumerate(lines):
        if not line.lstrip().startswith("- apiGroups:"):
            continue
        back = index - 1
        while back >= 0 and not lines[back].lstrip().startswith(("#", "rules:")):
            back -= 1
        assert back >= 0 and lines[back].lstrip().startswith("#"), f"rule without a comment: {line}"
        checked += 1
    assert checked > 10


# --- the ClusterRoles for people ---

AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def user_roles(*helm_args: str) -> dict[str, dict[str, Any]]:
    """The chart's ClusterRoles for people, by name."""
    return {
        doc["metadata"]["name"]: doc for doc in load_manifests(render_chart(*helm_args)) if is_user_role(doc)
    }


def aggregation_labels(role: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in role["metadata"]["labels"].items() if k.startswith(AGGREGATE)}


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_every_configuration_installs_an_edit_and_a_view_role_with_the_generated_rules(name: str) -> None:
    roles = user_roles(*CONFIGURATIONS[name])
    assert set(roles) == {"q-operator-edit", "q-operator-view"}
    assert roles["q-operator-edit"]["rules"] == yaml.safe_load(permissions.render_user_edit())
    assert roles["q-operator-view"]["rules"] == yaml.safe_load(permissions.render_user_view())
    for role in roles.values():
        assert "aggregationRule" not in role
        assert not any("/" in r or "*" in r for rule in role["rules"] for r in rule["resources"])


def test_the_user_roles_aggregate_into_the_builtin_roles_by_default() -> None:
    roles = user_roles()
    assert aggregation_labels(roles["q-operator-edit"]) == {
        f"{AGGREGATE}edit": "true",
        f"{AGGREGATE}admin": "true",
    }
    assert aggregation_labels(roles["q-operator-view"]) == {f"{AGGREGATE}view": "true"}


def test_without_aggregation_the_user_roles_are_installed_unlabelled() -> None:
    roles = user_roles(*CONFIGURATIONS["no-aggregation"])
    assert len(roles) == 2
    assert all(aggregation_labels(role) == {} for role in roles.values())


def test_the_user_roles_take_the_charts_full_name_and_are_bound_to_no_one() -> None:
    assert set(user_roles("--set", "fullnameOverride=qo")) == {"qo-edit", "qo-view"}
    docs = load_manifests(render_chart(*PEERED, *NAMESPACED))
    bound = {doc["roleRef"]["name"] for doc in docs if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")}
    assert not bound & {"q-operator-edit", "q-operator-view"}


def test_the_user_roles_are_no_grant_of_the_operators() -> None:
    rules = rules_from_chart(render_chart())
    for kind in KINDS:
        assert (kind.group, kind.plural, "", "create") not in rules
        assert (kind.group, kind.plural, "", "delete") not in rules


def test_the_values_file_and_the_install_guide_document_the_aggregation_value() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["rbac"] == {"aggregateToDefaultRoles": True}
    install = (ROOT / "docs" / "install.md").read_text()
    assert "| `rbac.aggregateToDefaultRoles` |" in install


def test_chart_crds_are_identical_to_the_top_level_crds() -> None:
    top, chart = ROOT / "crds", CHART / "crds"
    top_files = sorted(p.name for p in top.glob("*.yaml")) if top.is_dir() else []
    chart_files = sorted(p.name for p in chart.glob("*.yaml")) if chart.is_dir() else []
    assert top_files == chart_files
    for name in top_files:
        assert filecmp.cmp(top / name, chart / name, shallow=False), (
            f"{name} differs between crds/ and the chart"
        )


# --- the RBAC proof helper (fed the Kubernetes stand-in's request log by the e2e suite) ---


def request(verb: str, group: str, resource: str, subresource: str = "", name: str = "x") -> dict[str, Any]:
    return {
        "verb": verb,
        "group": group,
        "resource": resource,
        "subresource": subresource,
        "namespace": "default",
        "name": name,
        "code": 200,
    }


def test_rules_from_chart_splits_subresources() -> None:
    rules = rules_from_chart(render_chart())
    for kind in KINDS:
        assert (kind.group, kind.plural, "status", "patch") in rules
        assert (kind.group, kind.plural, "status", "update") not in rules
    assert ("", "events", "", "create") in rules


def test_check_rbac_finds_a_request_the_chart_does_not_grant() -> None:
    rules = rules_from_chart(render_chart())
    report = check_rbac([request("delete", "", "secrets")], rules)
    assert report.missing == {("", "secrets", "", "delete")}
    assert not report.ok


def test_check_rbac_finds_rules_no_request_used() -> None:
    rules = {("", "events", "", "create"), ("", "configmaps", "", "get")}
    report = check_rbac([request("create", "", "events")], rules)
    assert report.missing == frozenset()
    assert report.unused == {("", "configmaps", "", "get")}


def test_check_rbac_passes_when_log_and_rules_agree_and_ignores_discovery() -> None:
    kind = KINDS[0]
    rules = {(kind.group, kind.plural, "status", "patch"), ("", "events", "", "create")}
    log = [
        request("patch", kind.group, kind.plural, "status"),
        request("create", "", "events"),
        {
            "verb": "get",
            "group": "",
            "resource": "",
            "subresource": "",
            "namespace": "",
            "name": "",
            "code": 200,
        },
    ]
    assert check_rbac(log, rules).ok


def test_check_rbac_maps_http_methods_and_honours_wildcards() -> None:
    rules = {("*", "*", "*", "*")}
    report = check_rbac([{"verb": "GET", "group": "", "resource": "configmaps", "name": ""}], rules)
    assert report.used == {("", "configmaps", "", "list")}
    assert report.ok


def test_check_rbac_can_keep_only_the_operators_requests() -> None:
    log = [dict(request("delete", "", "pods"), user_agent="kubectl/v1.32.3"), request("create", "", "events")]
    log[1]["user_agent"] = "kopf/1.45.2"
    report = check_rbac(log, {("", "events", "", "create")}, agent="kopf")
    assert report.ok
    assert check_rbac(log, {("", "events", "", "create")}, agent=("kopf", "OpenAPI-Generator")).ok
    assert check_rbac(log, {("", "events", "", "create")}).missing == {("", "pods", "", "delete")}


# --- the IAM proof helper (fed the AWS stand-in's request log by the e2e suite) ---


def calls(*pairs: str) -> list[dict[str, str]]:
    return [{"service": p.split(":")[0], "operation": p.split(":")[1]} for p in pairs]


#: Every call the kinds make, as the stand-in logs them (its log spells UnregisterConnector its own way:
#: IAM compares case-insensitively).
ALL_CALLS = calls(*(action for kind in KINDS for action in kind.iam_actions))


def test_iam_policy_allows_exactly_the_operations_of_the_kinds() -> None:
    report = check_iam(ALL_CALLS, load_policy())
    assert report.ok, (report.missing, report.unused)
    assert POLICY.name == "iam-policy.json" and TENANT_POLICY.name == "iam-tenant-policy.json"


def test_check_iam_finds_a_call_the_policy_does_not_allow() -> None:
    stray = f"{KINDS[-1].service}:NoKindCallsThis"
    report = check_iam([*ALL_CALLS, *calls(stray)], load_policy())
    assert report.missing == {stray.lower()}


def test_check_iam_finds_actions_never_called() -> None:
    report = check_iam(calls("qbusiness:GetPlugin"), load_policy())
    assert {action.lower() for kind in KINDS[1:] for action in kind.iam_actions} <= report.unused
    assert "iam:passrole" in report.unused  # no plugin was created or updated


def test_check_iam_honours_wildcards_and_ignores_deny() -> None:
    other = KINDS[-1]
    policy = {
        "Statement": [
            {"Effect": "Allow", "Action": "qbusiness:*Plugin*"},
            {"Effect": "Deny", "Action": [f"{other.service}:*"]},
        ]
    }
    report = check_iam(calls("qbusiness:GetPlugin", other.iam_actions[0]), policy)
    assert report.missing == {other.iam_actions[0].lower()}
    assert report.unused == frozenset()


# --- the operate docs name what the operator really exports ---


def test_observability_doc_lists_exactly_the_metrics_the_operator_exports() -> None:
    from prometheus_client import REGISTRY

    from q_operator.engine import metrics  # noqa: F401  (registers the metrics)

    exported = {metric.name for metric in REGISTRY.collect() if metric.name.startswith("q_operator_")}
    doc = (ROOT / "docs" / "observability.md").read_text()
    documented = {name.removesuffix("_total") for name in re.findall(r"^\| `(q_operator_\w+)`", doc, re.M)}
    assert documented == exported


@pytest.mark.parametrize("name", ["default", "everything-on", "two-replicas-namespaced", "no-aggregation"])
def test_install_notes_render(name: str, tmp_path: Path) -> None:
    """helm template skips NOTES.txt, so render it as a ConfigMap in a copy of the chart."""
    chart = tmp_path / "q-operator"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "NOTES.txt").unlink()
    wrapped = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
    wrapped += "".join(f"    {line}\n" for line in notes.splitlines())
    (chart / "templates" / "notes.yaml").write_text(wrapped)
    result = subprocess.run(
        [
            str(HELM),
            "template",
            "q",
            str(chart),
            "--show-only",
            "templates/notes.yaml",
            *CONFIGURATIONS[name],
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    text = load_manifests(result.stdout)[0]["data"]["notes"]
    assert "kubectl get q-operator --all-namespaces" in text
    assert "<no value>" not in text


def test_peered_pod_command_passes_the_arguments_and_draws_a_priority(tmp_path: Path) -> None:
    """Run the rendered command with a stand-in `q-operator` that prints what it was given."""
    c = container(load_manifests(render_chart(*PEERED)))
    fake = tmp_path / "q-operator"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    runs = [
        subprocess.run([*c["command"], *c["args"]], capture_output=True, text=True, env=env, check=True)
        for _ in range(2)
    ]
    outputs = [run.stdout.splitlines() for run in runs]
    priorities = []
    for argv in outputs:
        assert argv[: len(c["args"])] == c["args"]
        (extra,) = argv[len(c["args"]) :]
        assert re.fullmatch(r"--priority=\d+", extra), extra
        priorities.append(int(extra.split("=")[1]))
    assert priorities[0] != priorities[1]


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_the_operator_accepts_every_argument_the_chart_passes(name: str) -> None:
    from q_operator.engine.runner import parse_args

    c = container(load_manifests(render_chart(*CONFIGURATIONS[name])))
    assert c["args"][0] == "run"
    extra = ["--priority=7"] if "command" in c else []
    args = parse_args([*c["args"][1:], *extra])
    assert args.liveness_endpoint == "http://0.0.0.0:8081/healthz"
    assert args.clusterwide or args.namespaces
    assert (args.peering_name == "q-operator") == ("command" in c)
