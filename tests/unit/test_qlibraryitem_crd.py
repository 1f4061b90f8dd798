"""The QLibraryItem CRD: the sample applies cleanly, and the CRD refuses at apply time what the model
refuses, naming the field (tags included: a library item cannot carry any)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from q_operator import crdgen
from q_operator.kinds.qlibraryitem import KIND, QLibraryItemSpec
from tests.unit.crdcheck import openapi_schema, rejections

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "qlibraryitem-published.yaml"
CATEGORY = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"


def crd() -> dict[str, Any]:
    return crdgen.crd_for(KIND)


def sample() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SAMPLE.read_text())
    return loaded


def test_sample_is_a_published_verified_item_in_a_category_that_model_and_crd_accept() -> None:
    obj = sample()
    assert (obj["apiVersion"], obj["kind"]) == (KIND.api_version, KIND.kind)
    spec = QLibraryItemSpec.model_validate(obj["spec"])
    assert (spec.itemStatus, spec.isVerified, len(spec.categories)) == ("PUBLISHED", True, 1)
    assert rejections(crd(), obj) == []


def test_crd_has_no_tags_field_and_refuses_unknown_fields() -> None:
    spec = openapi_schema(crd())["properties"]["spec"]
    assert "tags" not in spec["properties"]
    assert "additionalProperties" not in spec and not spec.get("x-kubernetes-preserve-unknown-fields")


def test_crd_columns_show_readiness_aws_status_item_and_version() -> None:
    columns = {c["name"]: c for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Status"]["jsonPath"] == ".status.itemStatus"
    assert columns["Item ID"]["jsonPath"] == ".status.libraryItemId"
    assert (columns["App Version"]["jsonPath"], columns["App Version"]["type"]) == (
        ".spec.appVersion",
        "integer",
    )


def test_categories_are_a_set_so_the_api_server_refuses_a_repeated_id() -> None:
    categories = openapi_schema(crd())["properties"]["spec"]["properties"]["categories"]
    assert categories["x-kubernetes-list-type"] == "set"
    obj = copy.deepcopy(sample())
    obj["spec"]["categories"] = [CATEGORY, CATEGORY]
    with pytest.raises(ValueError, match="repeat"):
        QLibraryItemSpec.model_validate(obj["spec"])


INVALID_CASES = [
    ("tags", {"tags": {"team": "a"}}, "spec.tags"),
    ("empty instance id", {"instanceId": ""}, "spec.instanceId"),
    ("app id not a uuid", {"appId": "my-app"}, "spec.appId"),
    ("negative app version", {"appVersion": -1}, "spec.appVersion"),
    ("app version above int32", {"appVersion": 2**31}, "spec.appVersion"),
    ("category not a uuid", {"categories": ["finance"]}, "spec.categories"),
    (
        "four categories",
        {"categories": [CATEGORY.replace("3e", p, 1) for p in ("1e", "2e", "3e", "4e")]},
        "spec.categories",
    ),
    ("status outside the enum", {"itemStatus": "Published"}, "spec.itemStatus"),
    ("isVerified not a boolean", {"isVerified": "yes"}, "spec.isVerified"),
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
        QLibraryItemSpec.model_validate(obj["spec"])
