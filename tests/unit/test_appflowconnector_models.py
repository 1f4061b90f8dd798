"""The AppFlowConnector spec holds appflow's constraints and refuses what AWS would refuse, naming the
field; the CEL rules on tags refuse the same keys as the pydantic validator."""

from __future__ import annotations

from typing import Any

import celpy
import pytest
from pydantic import ValidationError

from q_operator.kinds import base
from q_operator.kinds.appflowconnector import KIND, TAG_RULES, AppFlowConnectorSpec, AppFlowConnectorStatus

LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:inventory"


def valid_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"connectorProvisioningConfig": {"lambda": {"lambdaArn": LAMBDA_ARN}}}
    spec.update(overrides)
    return spec


def refused_field(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        AppFlowConnectorSpec.model_validate(spec)
    return ".".join(str(part) for part in caught.value.errors()[0]["loc"])


def test_minimal_spec_defaults_label_type_tags_and_force_delete() -> None:
    spec = AppFlowConnectorSpec.model_validate(valid_spec())
    assert spec.connectorLabel is None  # the adapter falls back to metadata.name
    assert spec.connectorProvisioningType == "LAMBDA"
    assert spec.tags == {}
    assert spec.forceDelete is False
    assert spec.lambda_arn == LAMBDA_ARN


def test_full_spec_is_accepted_and_dumps_lambda_under_its_api_name() -> None:
    spec = AppFlowConnectorSpec.model_validate(
        valid_spec(
            connectorLabel="inventory_v2@acme#1.x-y",
            description="Inventory / stock levels = ok + more!",
            tags={"team": "data-platform", "cost:center/9": "4711 @ HQ"},
            forceDelete=True,
        )
    )
    dumped = spec.model_dump(by_alias=True)
    assert dumped["connectorProvisioningConfig"] == {"lambda": {"lambdaArn": LAMBDA_ARN}}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"connectorLabel": "x"}, "connectorLabel", id="label of one character"),
        pytest.param({"connectorLabel": "-inventory"}, "connectorLabel", id="label starting with a dash"),
        pytest.param({"connectorLabel": "has space"}, "connectorLabel", id="label with a space"),
        pytest.param({"connectorLabel": "a" * 257}, "connectorLabel", id="label over 256"),
        pytest.param({"description": "semi;colon"}, "description", id="description with a semicolon"),
        pytest.param({"description": "a" * 1025}, "description", id="description over 1024"),
        pytest.param(
            {"connectorProvisioningType": "HTTP"}, "connectorProvisioningType", id="type not LAMBDA"
        ),
        pytest.param(
            {
                "connectorProvisioningConfig": {
                    "lambda": {"lambdaArn": "arn:aws-cn:lambda:cn-north-1:1:function:f"}
                }
            },
            "connectorProvisioningConfig.lambda.lambdaArn",
            id="lambda arn outside partition aws",
        ),
        pytest.param(
            {
                "connectorProvisioningConfig": {
                    "lambda": {"lambdaArn": "arn:aws:lambda:" + "x" * 520 + ":1:f"}
                }
            },
            "connectorProvisioningConfig.lambda.lambdaArn",
            id="lambda arn over 512",
        ),
        pytest.param(
            {"connectorProvisioningConfig": {"lambda": {}}},
            "connectorProvisioningConfig.lambda.lambdaArn",
            id="lambda arn missing",
        ),
        pytest.param(
            {"connectorProvisioningConfig": {}}, "connectorProvisioningConfig.lambda", id="lambda missing"
        ),
        pytest.param({"tags": {"aws:team": "x"}}, "tags", id="tag key with aws: prefix"),
        pytest.param({"tags": {"team!": "x"}}, "tags", id="tag key with a character outside the pattern"),
        pytest.param({"tags": {"": "x"}}, "tags", id="empty tag key"),
        pytest.param({"tags": {"k" * 129: "x"}}, "tags", id="tag key over 128"),
        pytest.param({"tags": {base.OWNER_TAG: "x"}}, "tags", id="the operator's owner tag key"),
        pytest.param({"tags": {"q-operator.dev/x": "y"}}, "tags", id="a key under the operator's prefix"),
        pytest.param({"tags": {"team": "bang!"}}, "tags.team", id="tag value outside the pattern"),
        pytest.param({"tags": {"team": "v" * 257}}, "tags.team", id="tag value over 256"),
        pytest.param(
            {"tags": {f"k{i}": "v" for i in range(50)}}, "tags", id="50 tags leave no room for the owner tag"
        ),
        pytest.param({"forceDelete": "sometimes"}, "forceDelete", id="force delete not a boolean"),
        pytest.param({"connectorArn": "arn:aws:appflow:x"}, "connectorArn", id="unknown field"),
    ],
)
def test_invalid_spec_is_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    assert refused_field(valid_spec(**overrides)) == field


def test_provisioning_config_is_required() -> None:
    assert refused_field({}) == "connectorProvisioningConfig"


def cel_accepts(rule: str, value: Any) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    return bool(program.evaluate({"self": celpy.json_to_cel(value)}))


@pytest.mark.parametrize(
    ("tags", "cel_valid", "model_valid"),
    [
        pytest.param(
            {"team": "a", "cost-center/9": "b", "a.b_c:d=e+f": ""}, True, True, id="keys inside the pattern"
        ),
        pytest.param({"aws:team": "x"}, False, False, id="aws: prefix"),
        pytest.param({"": "x"}, False, False, id="empty key"),
        pytest.param({"k" * 129: "x"}, False, False, id="key over 128"),
        pytest.param({base.OWNER_TAG: "x"}, False, False, id="owner tag key"),
        pytest.param({"q-operator.dev/other": "x"}, False, False, id="key under the operator's prefix"),
        # No regex over map keys in CEL (its cost cannot be bounded): the operator's model flags it.
        pytest.param({"team!": "x"}, True, False, id="character outside the pattern: model only"),
    ],
)
def test_cel_tag_rules_and_the_model(tags: dict[str, str], cel_valid: bool, model_valid: bool) -> None:
    assert all(cel_accepts(rule["rule"], tags) for rule in TAG_RULES) is cel_valid
    try:
        AppFlowConnectorSpec.model_validate(valid_spec(tags=tags))
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted is model_valid


def test_cel_tag_rules_have_constant_cost_per_key() -> None:
    """The API server refuses a CRD whose rules' estimated cost is over budget; map keys have no
    maxLength, so no rule may scan a key (matches, contains, endsWith)."""
    for rule in TAG_RULES:
        assert not any(scan in rule["rule"] for scan in (".matches(", ".contains(", ".endsWith(")), rule


def test_tag_rules_are_in_the_tags_schema() -> None:
    schema = AppFlowConnectorSpec.model_json_schema(by_alias=True)
    assert schema["properties"]["tags"]["x-kubernetes-validations"] == [dict(rule) for rule in TAG_RULES]
    # The schema a CRD is made of carries no lookahead (RE2 has none) and names lambda by its API name.
    assert "(?!" not in str(schema)
    assert "lambda" in schema["$defs"]["ConnectorProvisioningConfig"]["properties"]


def test_status_ignores_unknown_fields() -> None:
    status = AppFlowConnectorStatus.model_validate({"connectorArn": "arn", "connectorVersion": "1.0", "x": 1})
    assert status.connectorVersion == "1.0"


def test_kind_is_namespaced_under_appflow_group_with_short_name_afc() -> None:
    assert KIND.api_version == "appflow.q-operator.dev/v1alpha1"
    assert (KIND.plural, KIND.short_names, KIND.service) == ("appflowconnectors", ("afc",), "appflow")
    assert KIND.ref_fields == ("connectorLabel",)
    assert KIND.find_before_create is False  # RegisterConnector has a client token
    columns = {column.name: column for column in KIND.printer_columns}
    assert list(columns) == ["Ready", "Label", "Version", "ARN", "Age"]
    assert columns["ARN"].priority == 1
