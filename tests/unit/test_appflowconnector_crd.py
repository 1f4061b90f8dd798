"""The AppFlowConnector CRD: the sample applies cleanly, the label rules sit at the CRD root, and the CRD
refuses at apply time what the model refuses, naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from q_operator import crdgen
from q_operator.kinds.appflowconnector import KIND, ROOT_RULES, AppFlowConnectorSpec
from tests.unit.crdcheck import openapi_schema, rejections

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "appflowconnector-lambda.yaml"


def crd() -> dict[str, Any]:
    return crdgen.crd_for(KIND)


def sample() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    return loaded


def test_sample_is_a_tagged_lambda_connector_that_model_and_crd_accept() -> None:
    obj = sample()
    assert (obj["apiVersion"], obj["kind"]) == (KIND.api_version, KIND.kind)
    spec = AppFlowConnectorSpec.model_validate(obj["spec"])
    assert spec.tags
    assert spec.connectorLabel is None  # registered under metadata.name
    assert rejections(crd(), obj) == []


def test_label_rules_are_at_the_crd_root() -> None:
    assert openapi_schema(crd())["x-kubernetes-validations"] == [dict(rule) for rule in ROOT_RULES]


def test_crd_lets_the_label_be_absent_and_lists_arn_only_in_wide_output() -> None:
    spec = openapi_schema(crd())["properties"]["spec"]
    assert "connectorLabel" in spec["properties"]
    assert spec["required"] == ["connectorProvisioningConfig"]
    columns = {c["name"]: c for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["ARN"]["priority"] == 1
    assert columns["Version"]["jsonPath"] == ".status.connectorVersion"


def test_crd_refuses_a_missing_label_when_the_name_cannot_be_one() -> None:
    obj = copy.deepcopy(sample())
    obj["metadata"]["name"] = "x"
    errors = rejections(crd(), obj)
    assert any(e.startswith("spec.connectorLabel") and "connectorLabel is required" in e for e in errors), (
        errors
    )
    obj["spec"]["connectorLabel"] = "inventory"
    assert rejections(crd(), obj) == []


INVALID_CASES = [
    ("label of one character", {"connectorLabel": "x"}, "spec.connectorLabel"),
    ("label with a space", {"connectorLabel": "my connector"}, "spec.connectorLabel"),
    ("label over 256", {"connectorLabel": "a" * 257}, "spec.connectorLabel"),
    ("description with a semicolon", {"description": "a;b"}, "spec.description"),
    ("description over 1024", {"description": "d" * 1025}, "spec.description"),
    ("provisioning type not LAMBDA", {"connectorProvisioningType": "HTTP"}, "spec.connectorProvisioningType"),
    (
        "lambda arn outside partition aws",
        {
            "connectorProvisioningConfig": {
                "lambda": {"lambdaArn": "arn:aws-cn:lambda:cn-north-1:1:function:f"}
            }
        },
        "spec.connectorProvisioningConfig.lambda.lambdaArn",
    ),
    ("lambda missing", {"connectorProvisioningConfig": {}}, "spec.connectorProvisioningConfig"),
    ("tag key with aws: prefix", {"tags": {"aws:team": "a"}}, "spec.tags"),
    ("tag key over 128", {"tags": {"k" * 129: "a"}}, "spec.tags"),
    ("owner tag key", {"tags": {"q-operator.dev/owner": "me"}}, "spec.tags"),
    ("tag value outside the pattern", {"tags": {"team": "a!"}}, "spec.tags.team"),
    ("too many tags", {"tags": {f"k{i}": "v" for i in range(50)}}, "spec.tags"),
    ("forceDelete not a boolean", {"forceDelete": "yes"}, "spec.forceDelete"),
    ("unknown field", {"connectorArn": "arn:aws:appflow:us-east-1:1:connector/x"}, "spec.connectorArn"),
]


@pytest.mark.parametrize(("name", "changes", "field"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES])
def test_crd_and_model_refuse_invalid_input_naming_the_field(
    name: str, changes: dict[str, Any], field: str
) -> None:
    obj = copy.deepcopy(sample())
    obj["spec"].update(changes)
    errors = rejections(crd(), obj)
    assert any(e.startswith(field) for e in errors), errors
    with pytest.raises(ValueError):
        AppFlowConnectorSpec.model_validate(obj["spec"])
