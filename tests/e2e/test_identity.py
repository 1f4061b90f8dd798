"""Many teams, many AWS accounts, end to end: each namespace acts in AWS as the role its Namespace is
annotated with (issue 18).

The AWS stand-in may assume three roles in three accounts (ROLE_B only with its ExternalId) and
issues credentials that live 20 seconds, so every test here also runs across credential renewals.
Which account a call acted in, and as which role session, is in the stand-in's request log; each
account's resources are in its own state (`/_emulator/state`, keyed "<account>/<region>").
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import OPENAPI, QPLUGINS, TEST_KINDS, AwsResource, facts_of, qplugin

from .helpers import apply, log_position, new_application_id, operator_calls, synced, wait_synced_false

OWN_ACCOUNT = "123456789012"
ACCOUNT_A, ACCOUNT_B, ACCOUNT_C = "111111111111", "222222222222", "333333333333"
ROLE_A = f"arn:aws:iam::{ACCOUNT_A}:role/q-operator-tenant-a"
ROLE_B = f"arn:aws:iam::{ACCOUNT_B}:role/q-operator-tenant-b"
EXTERNAL_ID_B = "team-b-7f3e"
#: Not assumable: the stand-in answers AccessDenied.
ROLE_UNASSUMABLE = f"arn:aws:iam::{ACCOUNT_C}:role/q-operator-tenant-c"
REGION = "us-east-1"

AWS_ARGS = [
    "--build-seconds",
    "0.5",
    "--assumable-role",
    ROLE_A,
    "--assumable-role",
    f"{ROLE_B}:{EXTERNAL_ID_B}",
    "--credential-lifetime",
    "20",
]
#: Slow retries (AssumeRoleFailed, NoAWSIdentity) would wait for the drift timer: a wrong binding
#: fixed must converge because the namespace's objects are woken, not because the timer came.
OPERATOR_ENV = {"Q_OPERATOR_DRIFT_SECONDS": "600"}


# ----- helpers


def new_namespace(sandbox: Sandbox, **binding: str | None) -> str:
    name = f"id-{uuid.uuid4().hex[:8]}"
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if binding:
        body["metadata"]["annotations"] = annotations(**binding)  # type: ignore[index]
    sandbox.kube("POST", "/api/v1/namespaces", body)
    return name


def annotations(
    role: str | None = None,
    external_id: str | None = None,
    region: str | None = None,
    adoption: str | None = None,
) -> dict[str, str | None]:
    values = {
        "q-operator.dev/role-arn": role,
        "q-operator.dev/external-id": external_id,
        "q-operator.dev/region": region,
        "q-operator.dev/adoption": adoption,
    }
    return {k: v for k, v in values.items() if v is not None}


def bind(sandbox: Sandbox, namespace: str, **binding: str | None) -> None:
    """What a cluster admin does: annotate the Namespace (None removes an annotation)."""
    values = {
        "q-operator.dev/role-arn": binding.get("role"),
        "q-operator.dev/external-id": binding.get("external_id"),
        "q-operator.dev/region": binding.get("region"),
        "q-operator.dev/adoption": binding.get("adoption"),
    }
    sandbox.kube(
        "PATCH",
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"annotations": values}},
        content_type="application/merge-patch+json",
    )


def state(sandbox: Sandbox) -> dict[str, Any]:
    result: dict[str, Any] = sandbox.aws("GET", "/_emulator/state")
    return result


def plugins(sandbox: Sandbox, application_id: str) -> dict[str, list[dict[str, Any]]]:
    """account → the plugins of this application in it (every region)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for scope, resources in state(sandbox).items():
        account = scope.split("/")[0]
        for plugin in resources.get("plugins", []):
            if plugin["application_id"] == application_id:
                found.setdefault(account, []).append(plugin)
    return found


def as_role(sandbox: Sandbox, service: str, role: str, external_id: str | None = None) -> Any:
    """A boto3 client acting as `role`, as a team's own script would (STS on the stand-in)."""
    sts = boto3.client(
        "sts",
        endpoint_url=sandbox.aws_url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    request = {"RoleArn": role, "RoleSessionName": "a-team-script"}
    if external_id:
        request["ExternalId"] = external_id
    got = sts.assume_role(**request)["Credentials"]
    return boto3.client(
        service,
        endpoint_url=sandbox.aws_url,
        region_name=REGION,
        aws_access_key_id=got["AccessKeyId"],
        aws_secret_access_key=got["SecretAccessKey"],
        aws_session_token=got["SessionToken"],
        config=Config(retries={"max_attempts": 1}),
    )


def delete_all(sandbox: Sandbox, namespace: str, plural: str, names: list[str]) -> None:
    kind = plural.rsplit("/", 1)[1].split(".")[0]
    for name in names:
        sandbox.kubectl("delete", kind, name, "-n", namespace, "--wait=false")
    for name in names:
        wait_for(
            f"{name} deleted", lambda name=name: sandbox.get(plural, namespace, name) is None, timeout=90
        )


class Watcher:
    """Reads the namespace's objects every half second on a thread, keeping every Synced=False seen."""

    def __init__(self, sandbox: Sandbox, plural: str, namespace: str) -> None:
        self.sandbox, self.plural, self.namespace = sandbox, plural, namespace
        self.failures: list[tuple[str, str, str]] = []
        self.looks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        group_version, plural = self.plural.rsplit("/", 1)
        while not self._stop.wait(0.5):
            listed = self.sandbox.kube("GET", f"/apis/{group_version}/namespaces/{self.namespace}/{plural}")
            self.looks += 1
            for obj in listed.get("items", []):
                got = synced(obj)
                if got.get("status") == "False":
                    self.failures.append(
                        (obj["metadata"]["name"], str(got.get("reason")), str(got.get("message")))
                    )

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def restore_operator(sandbox: Sandbox) -> Iterator[None]:
    """A test that restarts the operator with other flags gets the default one back afterwards."""
    yield
    sandbox.start_operator()


# ----- the tests


def test_two_namespaces_bound_to_two_accounts_keep_same_named_objects_apart(sandbox: Sandbox) -> None:
    """The same object name and spec in two namespaces bound to two accounts: one plugin in each
    account, each status naming its account, each call made as its namespace's role session;
    deleting one leaves the other."""
    team_a = new_namespace(sandbox, role=ROLE_A)
    team_b = new_namespace(sandbox, role=ROLE_B, external_id=EXTERNAL_ID_B)
    app = new_application_id()
    for ns in (team_a, team_b):
        apply(sandbox, qplugin("orders", ns, applicationId=app))
    a = sandbox.wait_condition(QPLUGINS, team_a, "orders", "Ready")
    b = sandbox.wait_condition(QPLUGINS, team_b, "orders", "Ready")

    assert (a["status"]["accountId"], a["status"]["region"]) == (ACCOUNT_A, REGION)
    assert (b["status"]["accountId"], b["status"]["region"]) == (ACCOUNT_B, REGION)
    by_account = plugins(sandbox, app)
    assert sorted(by_account) == [ACCOUNT_A, ACCOUNT_B], by_account
    assert [p["plugin_id"] for p in by_account[ACCOUNT_A]] == [a["status"]["pluginId"]]
    assert [p["plugin_id"] for p in by_account[ACCOUNT_B]] == [b["status"]["pluginId"]]
    assert f":{ACCOUNT_A}:" in a["status"]["pluginArn"] and f":{ACCOUNT_B}:" in b["status"]["pluginArn"]
    sessions = {
        (r.get("role"), r.get("session")) for r in operator_calls(sandbox) if r.get("service") == "qbusiness"
    }
    assert (ROLE_A, f"q-operator-{team_a}") in sessions and (ROLE_B, f"q-operator-{team_b}") in sessions
    assert not any(
        r.get("account") == OWN_ACCOUNT for r in operator_calls(sandbox) if r.get("service") == "qbusiness"
    )

    delete_all(sandbox, team_a, QPLUGINS, ["orders"])
    wait_for("account A's plugin gone", lambda: ACCOUNT_A not in plugins(sandbox, app), timeout=60)
    assert [p["plugin_id"] for p in plugins(sandbox, app)[ACCOUNT_B]] == [b["status"]["pluginId"]]
    still = sandbox.get(QPLUGINS, team_b, "orders")
    assert still is not None and condition(still, "Ready", "True")
    delete_all(sandbox, team_b, QPLUGINS, ["orders"])


def test_no_binding_under_require_namespace_role_is_refused_without_any_aws_call(
    sandbox: Sandbox, restore_operator: None
) -> None:
    """--require-namespace-role: an unbound namespace's object gets NoAWSIdentity and the operator
    makes no AWS call for it; annotating the Namespace then converges it, without a restart."""
    sandbox.start_operator("--require-namespace-role")
    unbound = new_namespace(sandbox)
    app = new_application_id()
    since = log_position(sandbox)
    apply(sandbox, qplugin("orphan", unbound, applicationId=app))
    got = wait_synced_false(sandbox, QPLUGINS, unbound, "orphan", "NoAWSIdentity")
    assert unbound in got["message"] and "q-operator.dev/role-arn" in got["message"]
    time.sleep(3)  # a measured window: whatever the operator calls for this object shows by now
    assert operator_calls(sandbox, since) == []
    assert plugins(sandbox, app) == {}

    bind(sandbox, unbound, role=ROLE_A)
    fixed = sandbox.wait_condition(QPLUGINS, unbound, "orphan", "Ready", timeout=60)
    assert fixed["status"]["accountId"] == ACCOUNT_A
    assert sorted(plugins(sandbox, app)) == [ACCOUNT_A]
    assert not any(
        r.get("role") is None and r.get("service") != "sts" for r in operator_calls(sandbox, since)
    )
    delete_all(sandbox, unbound, QPLUGINS, ["orphan"])


def test_a_namespaced_operator_acts_as_its_namespaces_role(sandbox: Sandbox, restore_operator: None) -> None:
    """An install that watches only some namespaces (`--namespace`, the chart's watchNamespaces)
    still reads their Namespaces' bindings, and follows a change of one."""
    ns = new_namespace(sandbox, role=ROLE_A)
    sandbox.stop_operator()
    sandbox.operator = sandbox.spawn_operator("--standalone", "--namespace", ns)
    app = new_application_id()
    apply(sandbox, qplugin("scoped", ns, applicationId=app))
    live = sandbox.wait_condition(QPLUGINS, ns, "scoped", "Ready", timeout=60)
    assert live["status"]["accountId"] == ACCOUNT_A
    bind(sandbox, ns, role=ROLE_A, region="eu-west-1")  # a new default region: the plugin moves there

    def moved() -> dict[str, Any] | None:
        obj = sandbox.get(QPLUGINS, ns, "scoped") or {}
        return (
            obj
            if obj.get("status", {}).get("region") == "eu-west-1" and condition(obj, "Ready", "True")
            else None
        )

    wait_for("the plugin rebuilt in the namespace's new region", moved, timeout=90)
    in_aws = [
        s for s, held in state(sandbox).items() for p in held.get("plugins", []) if p["application_id"] == app
    ]
    assert in_aws == [f"{ACCOUNT_A}/eu-west-1"], in_aws
    delete_all(sandbox, ns, QPLUGINS, ["scoped"])


def test_an_unassumable_role_is_reported_with_bounded_calls_and_fixing_it_converges(sandbox: Sandbox) -> None:
    """A role STS refuses: AssumeRoleFailed naming the role and AWS's words on every object, one
    AssumeRole per minute at most however many objects wait; the admin fixes the annotation and
    every object converges in the right account."""
    ns = new_namespace(sandbox, role=ROLE_UNASSUMABLE)
    app = new_application_id()
    names = [f"locked-{i}" for i in range(5)]
    since = log_position(sandbox)
    for name in names:
        apply(sandbox, qplugin(name, ns, applicationId=app))
    for name in names:
        got = wait_synced_false(sandbox, QPLUGINS, ns, name, "AssumeRoleFailed")
        assert (
            ROLE_UNASSUMABLE in got["message"]
            and "not authorized to perform: sts:AssumeRole" in got["message"]
        )

    time.sleep(20)  # a measured window: the objects wait on slow retries, the failure is remembered
    assumed = [r for r in operator_calls(sandbox, since) if r.get("assumedRole") == ROLE_UNASSUMABLE]
    assert 1 <= len(assumed) <= 2, [(r["time"], r["status"]) for r in assumed]
    assert all(r.get("error") == "AccessDenied" for r in assumed)
    assert not [r for r in operator_calls(sandbox, since) if r.get("service") == "qbusiness"]
    assert plugins(sandbox, app) == {}

    bind(sandbox, ns, role=ROLE_A)
    for name in names:
        done = sandbox.wait_condition(QPLUGINS, ns, name, "Ready", timeout=90)
        assert done["status"]["accountId"] == ACCOUNT_A
    assert sorted(plugins(sandbox, app)) == [ACCOUNT_A] and len(plugins(sandbox, app)[ACCOUNT_A]) == 5
    delete_all(sandbox, ns, QPLUGINS, names)


def test_credentials_expiring_every_20s_are_renewed_without_a_failed_reconcile(sandbox: Sandbox) -> None:
    """30 objects created and changed twice over about a minute while the role's credentials live
    20 s: they are renewed (several AssumeRole calls), no cycle ever fails (no Synced=False seen by
    a reader polling every half second, no Warning event), and there is no duplicate."""
    ns = new_namespace(sandbox, role=ROLE_B, external_id=EXTERNAL_ID_B)
    apps = [new_application_id(), new_application_id()]  # AWS allows 25 plugins per application
    names = [f"busy-{i:02d}" for i in range(30)]
    since = log_position(sandbox)
    with Watcher(sandbox, QPLUGINS, ns) as watcher:
        for i, name in enumerate(names):
            apply(sandbox, qplugin(name, ns, applicationId=apps[i % 2]))
        for name in names:
            sandbox.wait_condition(QPLUGINS, ns, name, "Ready", timeout=120)
        started = time.monotonic()
        for round_ in (1, 2):
            # Spread the run over several credential lifetimes (20 s each), however fast it converges.
            time.sleep(max(0.0, started + 21 * round_ - time.monotonic()))
            for name in names:
                sandbox.kubectl(
                    "patch",
                    "qplugin",
                    name,
                    "-n",
                    ns,
                    "--type=merge",
                    "-p",
                    json.dumps({"spec": {"tags": {"round": str(round_)}}}),
                )
            for name in names:
                sandbox.wait_condition(QPLUGINS, ns, name, "Ready", timeout=120)
    calls = operator_calls(sandbox, since)
    renewals = [r for r in calls if r.get("assumedRole") == ROLE_B and r["status"] == 200]
    span = calls[-1]["time"] - calls[0]["time"]
    assert span > 40, span
    assert len(renewals) >= 3, [r["time"] for r in renewals]
    assert watcher.looks > 20 and watcher.failures == [], watcher.failures[:5]
    warnings = [
        e
        for e in sandbox.kube("GET", f"/api/v1/namespaces/{ns}/events").get("items", [])
        if e.get("type") == "Warning"
    ]
    assert warnings == [], [(e.get("reason"), e.get("message")) for e in warnings][:5]
    made = [plugins(sandbox, app) for app in apps]
    assert [sorted(by_account) for by_account in made] == [[ACCOUNT_B], [ACCOUNT_B]]
    in_aws = [p["plugin_id"] for by_account in made for p in by_account[ACCOUNT_B]]
    recorded = [sandbox.get(QPLUGINS, ns, n)["status"]["pluginId"] for n in names]  # type: ignore[index]
    assert len(in_aws) == 30 and sorted(recorded) == sorted(in_aws)
    delete_all(sandbox, ns, QPLUGINS, names)


def console_plugin(sandbox: Sandbox, role: str, app: str) -> tuple[Any, dict[str, Any]]:
    """A plugin a team made itself, as `role` (outside the operator), built: (their client, it)."""
    team_script = as_role(sandbox, "qbusiness", role)
    made = team_script.create_plugin(
        applicationId=app,
        displayName="console-made",
        type="CUSTOM",
        authConfiguration={"noAuthConfiguration": {}},
        customPluginConfiguration={
            "description": "Orders API",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payload": OPENAPI},
        },
    )
    wait_for(
        "its build",
        lambda: (
            team_script.get_plugin(applicationId=app, pluginId=made["pluginId"])["buildStatus"] == "READY"
        ),
    )
    return team_script, made


def reach_by_arn(sandbox: Sandbox, manifest: dict[str, Any], namespace: str, arn: str) -> dict[str, Any]:
    """An object `reach-arn` in `namespace` asking to adopt `arn` (another account's plugin): refused,
    with no write. Its Synced condition."""
    by_arn = json.loads(json.dumps(manifest))
    by_arn["metadata"] = {
        "name": "reach-arn",
        "namespace": namespace,
        "annotations": {"q-operator.dev/adopt-id": arn},
    }
    apply(sandbox, by_arn)
    refused = wait_synced_false(sandbox, QPLUGINS, namespace, "reach-arn", "AdoptionNotAllowed")
    assert "never crosses accounts" in refused["message"]
    return refused


def test_adoption_only_where_allowed_and_never_across_accounts(sandbox: Sandbox) -> None:
    """A plugin a team made itself in account A: the adopt annotation is refused in a namespace that
    does not allow adoption (nothing written to AWS), honoured once the admin allows it; a namespace
    of account B can neither see it by ID nor name it by ARN."""
    app = new_application_id()
    team_script, made = console_plugin(sandbox, ROLE_A, app)
    ns = new_namespace(sandbox, role=ROLE_A)
    manifest = qplugin("taken", ns, applicationId=app, displayName="console-made")
    manifest["metadata"]["annotations"] = {"q-operator.dev/adopt-id": made["pluginId"]}
    since = log_position(sandbox)
    apply(sandbox, manifest)
    got = wait_synced_false(sandbox, QPLUGINS, ns, "taken", "AdoptionNotAllowed")
    assert "q-operator.dev/adoption=allowed" in got["message"]
    writes = [
        r
        for r in operator_calls(sandbox, since)
        if r.get("service") == "qbusiness" and r.get("method") != "GET"
    ]
    assert writes == [], writes
    assert (sandbox.get(QPLUGINS, ns, "taken") or {}).get("status", {}).get("pluginId") is None

    bind(sandbox, ns, role=ROLE_A, adoption="allowed")
    adopted = sandbox.wait_condition(QPLUGINS, ns, "taken", "Ready", timeout=60)
    assert adopted["status"]["pluginId"] == made["pluginId"] and adopted["status"]["accountId"] == ACCOUNT_A
    tags = team_script.list_tags_for_resource(resourceARN=made["pluginArn"])["tags"]
    assert {"key": "q-operator.dev/owner", "value": f"{ns}.taken.{adopted['metadata']['uid']}"} in tags

    other = new_namespace(sandbox, role=ROLE_B, external_id=EXTERNAL_ID_B, adoption="allowed")
    by_id = json.loads(json.dumps(manifest))
    by_id["metadata"] = {
        "name": "reach",
        "namespace": other,
        "annotations": {"q-operator.dev/adopt-id": made["pluginId"]},
    }
    apply(sandbox, by_id)
    wait_synced_false(sandbox, QPLUGINS, other, "reach", "AdoptTargetNotFound")
    refused = reach_by_arn(sandbox, manifest, other, made["pluginArn"])
    assert ACCOUNT_A in refused["message"]
    assert [p["plugin_id"] for p in plugins(sandbox, app).get(ACCOUNT_A, [])] == [made["pluginId"]]
    assert ACCOUNT_B not in plugins(sandbox, app)
    delete_all(sandbox, other, QPLUGINS, ["reach", "reach-arn"])
    delete_all(sandbox, ns, QPLUGINS, ["taken"])


def test_adoption_everywhere_allows_it_without_the_namespace_annotation_but_never_across_accounts(
    sandbox: Sandbox, restore_operator: None
) -> None:
    """--allow-adoption-everywhere (Helm value identity.allowAdoptionEverywhere): adopt-id works in a
    namespace no admin annotated; a resource of another account is still refused."""
    sandbox.start_operator("--allow-adoption-everywhere")
    app = new_application_id()
    _, made = console_plugin(sandbox, ROLE_A, app)
    ns = new_namespace(sandbox, role=ROLE_A)
    manifest = qplugin("taken", ns, applicationId=app, displayName="console-made")
    manifest["metadata"]["annotations"] = {"q-operator.dev/adopt-id": made["pluginId"]}
    apply(sandbox, manifest)
    adopted = sandbox.wait_condition(QPLUGINS, ns, "taken", "Ready", timeout=60)
    assert adopted["status"]["pluginId"] == made["pluginId"] and adopted["status"]["accountId"] == ACCOUNT_A

    other = new_namespace(sandbox, role=ROLE_B, external_id=EXTERNAL_ID_B)
    reach_by_arn(sandbox, manifest, other, made["pluginArn"])
    assert [p["plugin_id"] for p in plugins(sandbox, app).get(ACCOUNT_A, [])] == [made["pluginId"]]
    delete_all(sandbox, other, QPLUGINS, ["reach-arn"])
    delete_all(sandbox, ns, QPLUGINS, ["taken"])


def test_kill_9_during_creates_in_bound_namespaces_duplicates_nothing_in_any_account(
    sandbox: Sandbox, restore_operator: None
) -> None:
    """Every AWS answer is delayed 1.5 s, so creates have acted while the operator still waits; it
    is killed right then, with creates of every kind in flight in two namespaces of two accounts.
    After the restart each object owns exactly one resource, in its namespace's account."""
    account_of = {
        new_namespace(sandbox, role=ROLE_A): ACCOUNT_A,
        new_namespace(sandbox, role=ROLE_B, external_id=EXTERNAL_ID_B): ACCOUNT_B,
    }
    objs = [facts.manifest(f"k{i}", ns) for facts in TEST_KINDS for ns in account_of for i in range(2)]
    before = len(resources_by_account(sandbox))
    sandbox.aws("POST", "/_emulator/config", {"latency_ms": 1500})
    try:
        for obj in objs:
            apply(sandbox, obj)
        wait_for(
            "creates to land in AWS",
            lambda: len(resources_by_account(sandbox)) >= before + 3,
            timeout=60,
            interval=0.05,
        )
        sandbox.stop_operator(kill=True)
    finally:
        sandbox.aws("POST", "/_emulator/config", {"latency_ms": 0})
    sandbox.start_operator()
    owned: dict[str, set[tuple[str, str]]] = {account: set() for account in account_of.values()}
    for obj in objs:
        facts, ns, name = facts_of(obj), obj["metadata"]["namespace"], obj["metadata"]["name"]
        live = sandbox.wait_condition(facts.plural_path, ns, name, "Ready", timeout=120)
        assert live["status"]["accountId"] == account_of[ns]
        owned[account_of[ns]].add((facts.kind, live["status"][facts.info.id_field]))
    in_aws = resources_by_account(sandbox)
    for account in account_of.values():
        mine = {(r.kind, r.id) for acct, r in in_aws if acct == account}
        assert mine == owned[account], (
            f"account {account}: AWS holds {mine}, the objects own {owned[account]}"
        )
    for obj in objs:
        facts = facts_of(obj)
        delete_all(sandbox, obj["metadata"]["namespace"], facts.plural_path, [obj["metadata"]["name"]])


def resources_by_account(sandbox: Sandbox) -> list[tuple[str, AwsResource]]:
    """(account, resource) for every resource of every kind the stand-in holds."""
    return [
        (scope.split("/")[0], facts.resource(record))
        for scope, held in state(sandbox).items()
        for facts in TEST_KINDS
        for record in held.get(facts.state_key, [])
    ]
