"""AppFlowConnector end to end: the real operator process against the real kube-apiserver and the AWS
stand-in.

Connector labels are unique per account and region, so each test registers under labels of its own
(the object's name, made unique per test) and reads AppFlow's side with boto3, as a user would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from q_operator.sandbox import Sandbox, condition, wait_for
from tests.kinds import APPFLOWCONNECTOR, APPFLOWCONNECTORS, appflowconnector, lambda_arn

from .helpers import allow_adoption, apply, calls, client, listed, wait_synced_false

AWS_ARGS = ["--build-seconds", "0.2"]
#: Library items and connectors have no build: poll right after a create or update, not after 1 s.
OPERATOR_ENV = {"Q_OPERATOR_POLL_MIN_SECONDS": "0.2"}
OWNER_TAG = "q-operator.dev/owner"


def _label(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _labels(sandbox: Sandbox) -> list[str]:
    """The labels of every registered custom connector, as ListConnectors shows them."""
    return [c["connectorLabel"] for c in listed(sandbox, APPFLOWCONNECTOR)]


def _describe(sandbox: Sandbox, label: str) -> dict[str, Any]:
    answer: dict[str, Any] = client(sandbox, "appflow").describe_connector(
        connectorType="CustomConnector", connectorLabel=label
    )["connectorConfiguration"]
    return answer


def _tags(sandbox: Sandbox, arn: str) -> dict[str, str]:
    tags: dict[str, str] = client(sandbox, "appflow").list_tags_for_resource(resourceArn=arn)["tags"]
    return tags


def _registered(sandbox: Sandbox, label: str) -> int:
    """How many registrations carry this label (AppFlow allows one; the stand-in's own record)."""
    state = sandbox.aws("GET", "/_emulator/state")
    return sum(
        1 for region in state.values() for c in region.get("connectors", []) if c.get("label") == label
    )


def _stays(what: str, probe: Callable[[], bool], seconds: float) -> None:
    """Assert `probe` holds throughout `seconds` (a bounded watch for something that must not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert probe(), f"no longer true: {what}"
        time.sleep(0.1)


def _register(sandbox: Sandbox, namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    apply(sandbox, appflowconnector(name, namespace, **spec))
    return sandbox.wait_condition(APPFLOWCONNECTORS, namespace, name, "Ready", timeout=30)


def test_register_reaches_ready_with_the_arn_aws_returned_and_the_owner_tag(
    sandbox: Sandbox, namespace: str
) -> None:
    name = _label("inventory")
    obj = _register(sandbox, namespace, name, tags={"team": "data"})
    described = _describe(sandbox, name)
    status = obj["status"]
    assert status["connectorArn"] == described["connectorArn"]
    assert status["connectorLabel"] == name == described["connectorLabel"]
    assert status["lambdaArn"] == lambda_arn(name)
    assert status["connectorVersion"] == described["connectorVersion"]
    assert status["registeredAt"] and status["registeredBy"]
    tags = _tags(sandbox, described["connectorArn"])
    assert tags["team"] == "data"
    assert tags[OWNER_TAG].startswith(f"{namespace}.{name}.")
    assert condition(obj, "Synced", "True")
    assert _registered(sandbox, name) == 1


def test_explicit_label_is_registered_instead_of_the_name(sandbox: Sandbox, namespace: str) -> None:
    label = _label("Explicit_Label")
    obj = _register(sandbox, namespace, "by-label", connectorLabel=label)
    assert obj["status"]["connectorLabel"] == label
    assert _describe(sandbox, label)["connectorArn"] == obj["status"]["connectorArn"]
    assert "by-label" not in _labels(sandbox)


def test_updating_the_lambda_keeps_the_registration_and_status_follows(
    sandbox: Sandbox, namespace: str
) -> None:
    name = _label("mover")
    obj = _register(sandbox, namespace, name)
    arn, version = obj["status"]["connectorArn"], obj["status"]["connectorVersion"]
    before = len(calls(sandbox, "UpdateConnectorRegistration"))
    registers = len(calls(sandbox, "RegisterConnector"))
    new_lambda = lambda_arn(f"{name}-v2")
    spec = {**obj["spec"], "connectorProvisioningConfig": {"lambda": {"lambdaArn": new_lambda}}}
    apply(sandbox, appflowconnector(name, namespace, **spec))
    obj = sandbox.wait_condition(APPFLOWCONNECTORS, namespace, name, "Ready", timeout=30)
    described = _describe(sandbox, name)
    assert described["connectorProvisioningConfig"]["lambda"]["lambdaArn"] == new_lambda
    assert obj["status"]["lambdaArn"] == new_lambda
    assert obj["status"]["connectorArn"] == described["connectorArn"] == arn
    assert obj["status"]["connectorVersion"] == described["connectorVersion"] != version
    assert len(calls(sandbox, "UpdateConnectorRegistration")) == before + 1
    assert len(calls(sandbox, "RegisterConnector")) == registers
    assert _registered(sandbox, name) == 1


def test_label_of_a_foreign_connector_is_refused_and_the_connector_left_alone(
    sandbox: Sandbox, namespace: str
) -> None:
    """Somebody registered the label by hand (no owner tag) just before the object was applied."""
    name = _label("taken")
    appflow = client(sandbox, "appflow")
    foreign_lambda = lambda_arn("someone-elses")
    arn = appflow.register_connector(
        connectorLabel=name,
        connectorProvisioningType="LAMBDA",
        connectorProvisioningConfig={"lambda": {"lambdaArn": foreign_lambda}},
    )["connectorArn"]
    apply(sandbox, appflowconnector(name, namespace))
    synced = wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, name, "AlreadyExists")
    assert name in synced["message"] and "adopt" in synced["message"]
    obj = sandbox.get(APPFLOWCONNECTORS, namespace, name) or {}
    assert condition(obj, "Ready", "False"), obj["status"]
    assert not obj["status"].get("connectorArn")
    assert _tags(sandbox, arn) == {}
    assert _describe(sandbox, name)["connectorProvisioningConfig"]["lambda"]["lambdaArn"] == foreign_lambda

    unregisters = len(calls(sandbox, "UnregisterConnector"))
    sandbox.kubectl("delete", "afc", name, "-n", namespace, "--wait=false")
    wait_for("the object to go", lambda: sandbox.get(APPFLOWCONNECTORS, namespace, name) is None, timeout=30)
    assert _describe(sandbox, name)["connectorArn"] == arn
    assert _tags(sandbox, arn) == {}
    assert len(calls(sandbox, "UnregisterConnector")) == unregisters
    appflow.unregister_connector(connectorLabel=name)


def test_foreign_connector_is_adopted_when_asked_and_brought_to_the_spec(
    sandbox: Sandbox, namespace: str
) -> None:
    name = _label("adopted")
    appflow = client(sandbox, "appflow")
    arn = appflow.register_connector(
        connectorLabel=name,
        connectorProvisioningType="LAMBDA",
        connectorProvisioningConfig={"lambda": {"lambdaArn": lambda_arn("old-function")}},
    )["connectorArn"]
    appflow.tag_resource(resourceArn=arn, tags={"stale": "yes"})
    manifest = appflowconnector(name, namespace, tags={"team": "data"})
    manifest["metadata"]["annotations"] = {"q-operator.dev/adopt-id": name}
    allow_adoption(sandbox, namespace)
    registers = len(calls(sandbox, "RegisterConnector"))
    apply(sandbox, manifest)
    obj = sandbox.wait_condition(APPFLOWCONNECTORS, namespace, name, "Ready", timeout=30)
    assert obj["status"]["connectorArn"] == arn
    assert _describe(sandbox, name)["connectorProvisioningConfig"]["lambda"]["lambdaArn"] == lambda_arn(name)
    tags = _tags(sandbox, arn)
    assert (
        tags["team"] == "data" and "stale" not in tags and tags[OWNER_TAG].startswith(f"{namespace}.{name}.")
    )
    assert len(calls(sandbox, "RegisterConnector")) == registers
    assert _registered(sandbox, name) == 1


def test_label_registered_by_another_object_is_refused_as_owned_by_another(
    sandbox: Sandbox, namespace: str
) -> None:
    label = _label("shared")
    first = _register(sandbox, namespace, "first", connectorLabel=label)
    apply(sandbox, appflowconnector("second", namespace, connectorLabel=label))
    synced = wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, "second", "OwnedByAnother")
    assert f"{namespace}.first." in synced["message"]
    assert _tags(sandbox, first["status"]["connectorArn"])[OWNER_TAG].startswith(f"{namespace}.first.")
    sandbox.kubectl("delete", "afc", "second", "-n", namespace, "--wait=false")
    wait_for(
        "the object to go", lambda: sandbox.get(APPFLOWCONNECTORS, namespace, "second") is None, timeout=30
    )
    assert _describe(sandbox, label)["connectorArn"] == first["status"]["connectorArn"]


def test_description_and_tags_follow_the_spec(sandbox: Sandbox, namespace: str) -> None:
    name = _label("described")
    obj = _register(sandbox, namespace, name, tags={"team": "a", "env": "dev"})
    arn = obj["status"]["connectorArn"]
    apply(sandbox, appflowconnector(name, namespace, description="Orders from the shop", tags={"team": "b"}))
    obj = sandbox.wait_condition(APPFLOWCONNECTORS, namespace, name, "Ready", timeout=30)
    assert _describe(sandbox, name)["connectorDescription"] == "Orders from the shop"
    assert obj["status"]["description"] == "Orders from the shop"
    tags = _tags(sandbox, arn)
    assert tags["team"] == "b" and "env" not in tags and OWNER_TAG in tags


def test_the_same_change_applies_again_to_a_connector_registered_anew(
    sandbox: Sandbox, namespace: str
) -> None:
    """An object deleted and created again under the same label makes a new registration; the same
    update as before must reach it (AppFlow replays a known update token for 8 hours)."""
    name = _label("again")
    for _ in range(2):
        _register(sandbox, namespace, name, description="first")
        apply(sandbox, appflowconnector(name, namespace, description="second"))
        sandbox.wait_condition(APPFLOWCONNECTORS, namespace, name, "Ready", timeout=30)
        assert _describe(sandbox, name)["connectorDescription"] == "second"
        sandbox.kubectl("delete", "afc", name, "-n", namespace)
        wait_for("unregistered", lambda: name not in _labels(sandbox), timeout=60)


def test_tag_key_the_schema_cannot_check_is_flagged_naming_spec_tags(
    sandbox: Sandbox, namespace: str
) -> None:
    """A CRD cannot constrain a map's key characters: the operator flags them, sending nothing."""
    name = _label("badtag")
    registers = len(calls(sandbox, "RegisterConnector"))
    apply(sandbox, appflowconnector(name, namespace, tags={"team!": "x"}))
    synced = wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, name, "InvalidSpec")
    assert "spec.tags" in synced["message"] and "team!" in synced["message"]
    assert len(calls(sandbox, "RegisterConnector")) == registers
    assert name not in _labels(sandbox)


def test_broken_lambda_is_reported_with_aws_message_retried_with_backoff_then_converges(
    sandbox: Sandbox, namespace: str
) -> None:
    """AppFlow cannot read a broken connector Lambda: AWS's message on the object, and one retry
    after a back-off of 4-8 s (no hot loop; later steps grow, see the engine's unit tests). The
    function is fixed meanwhile, not the spec: that retry registers it, unaided."""
    name = _label("flaky")
    broken = lambda_arn(name)
    sandbox.aws("POST", "/_emulator/config", {"broken_lambdas": {broken: "server"}})
    try:
        start = len(calls(sandbox, "RegisterConnector"))
        apply(sandbox, appflowconnector(name, namespace))
        synced = wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, name, "ExternalFailure")
        assert "ConnectorServerException" in synced["message"]
        assert f"Connector Lambda {broken} failed" in synced["message"]  # AWS's own words
        obj = sandbox.get(APPFLOWCONNECTORS, namespace, name) or {}
        assert condition(obj, "Ready", "False")
        _stays(
            "no retry within the first 2 s",
            lambda: len(calls(sandbox, "RegisterConnector")) == start + 1,
            2.0,
        )
    finally:
        sandbox.aws("POST", "/_emulator/config", {"broken_lambdas": {}})
    obj = sandbox.wait_condition(APPFLOWCONNECTORS, namespace, name, "Ready", timeout=20)
    failed, registered = calls(sandbox, "RegisterConnector")[start:]
    assert failed.get("error") == "ConnectorServerException" and registered["status"] == 200
    gap = registered["time"] - failed["time"]
    assert 3.5 <= gap <= 11, f"retried after {gap:.1f}s: back-off from its first step, not inflated"
    assert obj["status"]["connectorArn"] == _describe(sandbox, name)["connectorArn"]
    assert _registered(sandbox, name) == 1


def test_moving_to_a_lambda_that_fails_authentication_keeps_the_working_registration(
    sandbox: Sandbox, namespace: str
) -> None:
    """UpdateConnectorRegistration answers 401 ConnectorAuthenticationException: reported with AWS's
    words and the registration keeps its working Lambda. Reverting the spec, or moving on to another
    working Lambda, is acted on at once, not after the back-off (4 s or more)."""
    name = _label("guarded")
    obj = _register(sandbox, namespace, name)
    spec = obj["spec"]
    working, broken, other = lambda_arn(name), lambda_arn(f"{name}-locked"), lambda_arn(f"{name}-v2")

    def with_lambda(arn: str) -> dict[str, Any]:
        return appflowconnector(
            name, namespace, **{**spec, "connectorProvisioningConfig": {"lambda": {"lambdaArn": arn}}}
        )

    sandbox.aws("POST", "/_emulator/config", {"broken_lambdas": {broken: "authentication"}})
    try:
        for fix in (working, other):
            apply(sandbox, with_lambda(broken))
            synced = wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, name, "ExternalFailure")
            assert "ConnectorAuthenticationException" in synced["message"] and broken in synced["message"]
            lambda_now = _describe(sandbox, name)["connectorProvisioningConfig"]["lambda"]["lambdaArn"]
            assert lambda_now != broken
            apply(sandbox, with_lambda(fix))
            obj = sandbox.wait_condition(APPFLOWCONNECTORS, namespace, name, "Ready", timeout=3)
            assert obj["status"]["lambdaArn"] == fix and condition(obj, "Synced", "True")
    finally:
        sandbox.aws("POST", "/_emulator/config", {"broken_lambdas": {}})
    assert _describe(sandbox, name)["connectorProvisioningConfig"]["lambda"]["lambdaArn"] == other


def test_lambda_appflow_cannot_find_is_flagged_naming_the_field(sandbox: Sandbox, namespace: str) -> None:
    name = _label("nolambda")
    sandbox.aws("POST", "/_emulator/config", {"known_lambdas": [lambda_arn("some-other-function")]})
    try:
        apply(sandbox, appflowconnector(name, namespace))
        synced = wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, name, "DependencyNotFound")
    finally:
        sandbox.aws("POST", "/_emulator/config", {"known_lambdas": None})
    assert "spec.connectorProvisioningConfig.lambda.lambdaArn" in synced["message"]
    assert lambda_arn(name) in synced["message"]
    assert name not in _labels(sandbox)


def test_delete_while_in_use_waits_slowly_then_force_delete_unregisters(
    sandbox: Sandbox, namespace: str
) -> None:
    """AppFlow refuses to unregister a connector that profiles use: InUse, retried only every minute
    or so. Setting forceDelete on the object being deleted is acted on at once, not after that wait."""
    name = _label("busy")
    _register(sandbox, namespace, name)
    sandbox.aws("POST", "/_emulator/config", {"connectors_in_use": [name]})
    try:
        start = len(calls(sandbox, "UnregisterConnector"))
        sandbox.kubectl("delete", "afc", name, "-n", namespace, "--wait=false")
        synced = wait_synced_false(sandbox, APPFLOWCONNECTORS, namespace, name, "InUse")
        assert (
            "forceDelete" in synced["message"]
            and "in use by one or more connector profiles" in synced["message"]
        )
        assert _registered(sandbox, name) == 1
        _stays(
            "one refused unregistration, no hot loop",
            lambda: len(calls(sandbox, "UnregisterConnector")) == start + 1,
            3.0,
        )
        obj = sandbox.get(APPFLOWCONNECTORS, namespace, name) or {}
        apply(sandbox, appflowconnector(name, namespace, **{**obj["spec"], "forceDelete": True}))
        wait_for(
            "the object to go", lambda: sandbox.get(APPFLOWCONNECTORS, namespace, name) is None, timeout=20
        )
    finally:
        sandbox.aws("POST", "/_emulator/config", {"connectors_in_use": []})
    attempts = calls(sandbox, "UnregisterConnector")[start:]
    assert [a["status"] for a in attempts] == [409, 200] or [a.get("error") for a in attempts][:1] == [
        "ConflictException"
    ]
    assert attempts[-1]["status"] == 200 and _registered(sandbox, name) == 0
    assert len(attempts) == 2


def test_force_delete_unregisters_a_connector_in_use(sandbox: Sandbox, namespace: str) -> None:
    name = _label("forced")
    _register(sandbox, namespace, name, forceDelete=True)
    sandbox.aws("POST", "/_emulator/config", {"connectors_in_use": [name]})
    try:
        sandbox.kubectl("delete", "afc", name, "-n", namespace, "--wait=false")
        wait_for(
            "the object to go", lambda: sandbox.get(APPFLOWCONNECTORS, namespace, name) is None, timeout=30
        )
    finally:
        sandbox.aws("POST", "/_emulator/config", {"connectors_in_use": []})
    assert name not in _labels(sandbox)


def test_changing_the_label_is_refused_at_apply(sandbox: Sandbox, namespace: str) -> None:
    """The label is the registration's identity: a CEL rule comparing old and new refuses a change,
    and the stored object keeps the label it had (here: its name)."""
    name = _label("fixed")
    _register(sandbox, namespace, name)
    registers = len(calls(sandbox, "RegisterConnector"))
    out = apply(sandbox, appflowconnector(name, namespace, connectorLabel=f"{name}-renamed"), check=False)
    assert "spec.connectorLabel" in out and "connectorLabel is immutable" in out
    obj = sandbox.get(APPFLOWCONNECTORS, namespace, name) or {}
    assert "connectorLabel" not in obj["spec"]
    assert len(calls(sandbox, "RegisterConnector")) == registers
