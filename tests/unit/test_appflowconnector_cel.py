"""The CEL rules at the AppFlowConnector CRD root: the effective label (connectorLabel, else
metadata.name) never changes, and a missing label needs a name that fits AppFlow's label pattern.
Evaluated with cel-python as the API server would evaluate them: `self` on create, `self` and
`oldSelf` on update (rules that mention oldSelf run only on update)."""

from __future__ import annotations

from typing import Any

import celpy
import pytest

from q_operator.kinds.appflowconnector import KIND, ROOT_RULES

LAMBDA = {"lambda": {"lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:f"}}


def connector(name: str, label: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"connectorProvisioningConfig": LAMBDA, **spec}
    if label is not None:
        body["connectorLabel"] = label
    return {
        "apiVersion": "appflow.q-operator.dev/v1alpha1",
        "kind": "AppFlowConnector",
        "metadata": {"name": name, "namespace": "default"},
        "spec": body,
    }


def violations(new: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """The messages of the root rules the object breaks (create when `old` is None)."""
    env = celpy.Environment()
    broken = []
    for rule in ROOT_RULES:
        if old is None and "oldSelf" in rule["rule"]:
            continue  # transition rules do not run on create
        activation = {"self": celpy.json_to_cel(new)}
        if old is not None:
            activation["oldSelf"] = celpy.json_to_cel(old)
        if not bool(env.program(env.compile(rule["rule"])).evaluate(activation)):
            broken.append(rule["message"])
    return broken


def test_root_rules_are_the_kinds_root_validations() -> None:
    assert KIND.root_validations == ROOT_RULES
    assert all(rule["fieldPath"] == ".spec.connectorLabel" for rule in ROOT_RULES)


@pytest.mark.parametrize(
    "new",
    [
        pytest.param(connector("inventory-connector"), id="name as label"),
        pytest.param(connector("inventory.v2"), id="name with a dot as label"),
        pytest.param(connector("x", label="inventory"), id="one-letter name with an explicit label"),
    ],
)
def test_create_with_a_usable_label_is_accepted(new: dict[str, Any]) -> None:
    assert violations(new) == []


def test_create_without_label_whose_name_does_not_fit_is_refused() -> None:
    (message,) = violations(connector("x"))
    assert message.startswith("connectorLabel is required")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(connector("inv"), connector("inv", description="new"), id="other fields change"),
        pytest.param(
            connector("inv", label="a1"), connector("inv", label="a1", forceDelete=True), id="same label"
        ),
        pytest.param(connector("inv"), connector("inv", label="inv"), id="label made explicit, same value"),
        pytest.param(
            connector("inv", label="inv"), connector("inv"), id="explicit label equal to name dropped"
        ),
    ],
)
def test_update_keeping_the_effective_label_is_accepted(old: dict[str, Any], new: dict[str, Any]) -> None:
    assert violations(new, old) == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param(connector("inv", label="a1"), connector("inv", label="a2"), id="label changed"),
        pytest.param(
            connector("inv"), connector("inv", label="other"), id="label set to other than the name"
        ),
        pytest.param(connector("inv", label="a1"), connector("inv"), id="label dropped, name differs"),
    ],
)
def test_update_changing_the_effective_label_is_refused_as_immutable(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    (message,) = violations(new, old)
    assert message.startswith("connectorLabel is immutable: ")
