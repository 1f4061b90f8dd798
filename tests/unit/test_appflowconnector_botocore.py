"""AppFlowConnector's models hold the same constraints as botocore's appflow model
(tests/unit/botocorecheck.py), and the check notices an AWS API change."""

from __future__ import annotations

import pytest

from q_operator.kinds import appflowconnector
from q_operator.kinds.appflowconnector import AppFlowConnectorSpec
from tests.unit.botocorecheck import (
    Binding,
    changed_service_model,
    check,
    members,
    service_model,
    unbound_fields,
)

AF = "appflow"
FLOW_LAMBDA = "connectorProvisioningConfig.lambda"

BINDINGS: list[Binding] = [
    # AppFlowConnector spec ↔ RegisterConnectorRequest: clientToken is the engine's; tags go through
    # TagResource and forceDelete through UnregisterConnector. botocore requires nothing, but a
    # connector cannot register without its Lambda, so the model requires the provisioning config.
    Binding(
        AppFlowConnectorSpec,
        "",
        AF,
        "RegisterConnectorRequest",
        ignore_members=members("clientToken"),
        extra_members=members("region", "deletionPolicy", "tags", "forceDelete"),
        extra_required=members("connectorProvisioningConfig"),
    ),
    Binding(AppFlowConnectorSpec, "connectorLabel", AF, "RegisterConnectorRequest.connectorLabel"),
    Binding(AppFlowConnectorSpec, "description", AF, "RegisterConnectorRequest.description"),
    Binding(
        AppFlowConnectorSpec,
        "connectorProvisioningType",
        AF,
        "RegisterConnectorRequest.connectorProvisioningType",
    ),
    Binding(
        AppFlowConnectorSpec,
        "connectorProvisioningConfig",
        AF,
        "RegisterConnectorRequest.connectorProvisioningConfig",
        extra_required=members("lambda"),
        check_required=False,
    ),
    Binding(AppFlowConnectorSpec, FLOW_LAMBDA, AF, "LambdaConnectorProvisioningConfig"),
    Binding(
        AppFlowConnectorSpec, f"{FLOW_LAMBDA}.lambdaArn", AF, "LambdaConnectorProvisioningConfig.lambdaArn"
    ),
    Binding(AppFlowConnectorSpec, "forceDelete", AF, "UnregisterConnectorRequest.forceDelete"),
    # One of AppFlow's 50 tags is the operator's owner tag. The keys' pattern has a lookahead, which a
    # CRD cannot hold: test_appflow_tag_key_rules_match_botocore below checks them.
    Binding(
        AppFlowConnectorSpec, "tags", AF, "TagResourceRequest.tags", reserved_entries=1, check_required=False
    ),
    Binding(AppFlowConnectorSpec, "tags{value}", AF, "TagValue"),
]


@pytest.mark.parametrize("binding", BINDINGS, ids=lambda b: b.id)
def test_model_field_matches_botocore(binding: Binding) -> None:
    assert check(binding, service_model(AF)) == []


def test_every_spec_field_is_bound_to_botocore() -> None:
    assert unbound_fields(AppFlowConnectorSpec, BINDINGS) == []


def test_appflow_tag_key_rules_match_botocore() -> None:
    tag_key = service_model(AF).shape_for("TagKey").metadata
    assert tag_key["pattern"] == appflowconnector.TAG_KEY_AWS_PATTERN
    assert tag_key["pattern"].replace("(?!aws:)", "") == appflowconnector.TAG_KEY_PATTERN
    assert (tag_key["min"], tag_key["max"]) == (1, appflowconnector.TAG_KEY_MAX)


def test_a_longer_connector_label_in_botocore_fails_the_check() -> None:
    model = changed_service_model(AF, lambda shapes: shapes["ConnectorLabel"].update(max=512))
    binding = next(b for b in BINDINGS if b.path == "connectorLabel")
    assert any("max length" in p for p in check(binding, model))
