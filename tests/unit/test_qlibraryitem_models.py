"""The QLibraryItem spec holds qapps' constraints and refuses what AWS would refuse, naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from q_operator.kinds.qlibraryitem import KIND, QLibraryItemSpec, QLibraryItemStatus

APP_ID = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
CATEGORY = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"


def valid_spec(**overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"instanceId": "instance-1", "appId": APP_ID, "appVersion": 1}
    spec.update(overrides)
    return spec


def refused_field(spec: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        QLibraryItemSpec.model_validate(spec)
    return ".".join(str(part) for part in caught.value.errors()[0]["loc"])


def test_minimal_spec_defaults_to_no_categories_and_leaves_status_and_verification_alone() -> None:
    spec = QLibraryItemSpec.model_validate(valid_spec())
    assert spec.categories == []
    assert spec.itemStatus is None
    assert spec.isVerified is None
    assert spec.deletionPolicy == "Delete"


def test_full_spec_is_accepted() -> None:
    spec = QLibraryItemSpec.model_validate(
        valid_spec(
            categories=[CATEGORY],
            itemStatus="DISABLED",
            isVerified=True,
            appVersion=2147483647,
            region="eu-west-1",
            deletionPolicy="Retain",
        )
    )
    assert spec.categories == [CATEGORY]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"instanceId": ""}, "instanceId", id="empty instance id"),
        pytest.param({"appId": "not-a-uuid"}, "appId", id="app id not a uuid"),
        pytest.param({"appId": APP_ID.upper()}, "appId", id="app id upper case hex"),
        pytest.param({"appId": APP_ID + "0"}, "appId", id="app id with trailing text (anchored)"),
        pytest.param({"appId": "7c1d2e3f-4a5b-1c6d-8e7f-9a0b1c2d3e4f"}, "appId", id="uuid version 1"),
        pytest.param({"appVersion": -1}, "appVersion", id="negative version"),
        pytest.param({"appVersion": 2147483648}, "appVersion", id="version above int32"),
        pytest.param({"categories": ["x"]}, "categories.0", id="category not a uuid"),
        pytest.param({"categories": [CATEGORY] * 2}, "categories", id="repeated category"),
        pytest.param(
            {
                "categories": [
                    CATEGORY,
                    APP_ID,
                    "1e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7",
                    "2e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7",
                ]
            },
            "categories",
            id="four categories",
        ),
        pytest.param({"itemStatus": "Published"}, "itemStatus", id="status spelled as AWS outputs it"),
        pytest.param({"itemStatus": "HIDDEN"}, "itemStatus", id="status outside the enum"),
        pytest.param({"tags": {"team": "a"}}, "tags", id="tags: a library item cannot carry any"),
        pytest.param({"deletionPolicy": "Orphan"}, "deletionPolicy", id="unknown deletion policy"),
    ],
)
def test_invalid_spec_is_refused_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    assert refused_field(valid_spec(**overrides)) == field


@pytest.mark.parametrize("missing", ["instanceId", "appId", "appVersion"])
def test_required_member_missing_is_refused_naming_it(missing: str) -> None:
    spec = valid_spec()
    del spec[missing]
    assert refused_field(spec) == missing


def test_status_keeps_aws_free_status_string_and_ignores_unknown_fields() -> None:
    status = QLibraryItemStatus.model_validate(
        {"itemStatus": "Published", "libraryItemId": "x", "ratingCount": 3, "somethingNew": 1}
    )
    assert status.itemStatus == "Published"
    assert status.ratingCount == 3


def test_kind_is_namespaced_under_qapps_group_with_short_name_qli() -> None:
    assert KIND.api_version == "qapps.q-operator.dev/v1alpha1"
    assert (KIND.plural, KIND.short_names, KIND.service) == ("qlibraryitems", ("qli",), "qapps")
    assert KIND.ref_fields == ("instanceId", "libraryItemId")
    # CreateLibraryItem has no client token: the engine must look before it creates.
    assert KIND.find_before_create is True
    assert [column.name for column in KIND.printer_columns] == [
        "Ready",
        "Status",
        "Item ID",
        "App Version",
        "Age",
    ]
