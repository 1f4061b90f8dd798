"""The QLibraryItem adapter translates each verb into the right qapps calls (checked by botocore's
Stubber against the service model) and AWS's answers into observations and kind errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from q_operator.kinds import base
from q_operator.kinds.qlibraryitem import KIND, QLibraryItemAdapter, QLibraryItemSpec

INSTANCE = "instance-1"
APP_ID = "7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
ITEM_ID = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
CAT_A = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"
CAT_B = "4e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"
CREATED = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
OWNER = base.Owner(uid="u-1", namespace="default", name="expense-helper")
REF = {"instanceId": INSTANCE, "libraryItemId": ITEM_ID}
TOKEN = base.ClientToken("token-1")


@pytest.fixture
def stubbed() -> Iterator[tuple[QLibraryItemAdapter, Stubber]]:
    client = boto3.client(
        "qapps", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stubber:
        yield KIND.adapter_factory(client), stubber  # type: ignore[misc]
        stubber.assert_no_pending_responses()


def spec(**overrides: Any) -> QLibraryItemSpec:
    fields: dict[str, Any] = {"instanceId": INSTANCE, "appId": APP_ID, "appVersion": 1}
    fields.update(overrides)
    return QLibraryItemSpec.model_validate(fields)


def item(**overrides: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "libraryItemId": ITEM_ID,
        "appId": APP_ID,
        "appVersion": 1,
        "categories": [],
        "status": "Published",
        "createdAt": CREATED,
        "createdBy": "alice",
        "ratingCount": 0,
        "isVerified": False,
        "userCount": 4,
    }
    view.update(overrides)
    return view


def category(category_id: str) -> dict[str, Any]:
    return {"id": category_id, "title": "Finance"}


def not_found(stubber: Stubber, operation: str, resource_id: str, resource_type: str) -> None:
    message = f"{resource_type} {resource_id} not found"
    stubber.add_client_error(
        operation,
        service_error_code="ResourceNotFoundException",
        service_message=message,
        http_status_code=404,
        modeled_fields={"message": message, "resourceId": resource_id, "resourceType": resource_type},
    )


def test_observe_missing_item_is_absent(stubbed: tuple[QLibraryItemAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "get_library_item", ITEM_ID, "LibraryItem")
    assert adapter.observe(spec(), REF, OWNER, base.Resolved()).phase is base.Phase.ABSENT


def test_observe_existing_item_is_ready_with_json_outputs(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "get_library_item",
        item(categories=[category(CAT_A)], updatedAt=CREATED, updatedBy="bob"),
        {"instanceId": INSTANCE, "libraryItemId": ITEM_ID},
    )
    observation = adapter.observe(spec(categories=[CAT_A]), REF, OWNER, base.Resolved())
    assert observation.phase is base.Phase.READY
    assert observation.up_to_date
    assert observation.owner_mark is None
    assert observation.outputs == {
        "instanceId": INSTANCE,
        "libraryItemId": ITEM_ID,
        "appId": APP_ID,
        "appVersion": 1,
        "itemStatus": "Published",
        "isVerified": False,
        "ratingCount": 0,
        "userCount": 4,
        "createdAt": "2026-11-23T10:00:00Z",
        "createdBy": "alice",
        "updatedAt": "2026-11-23T10:00:00Z",
        "updatedBy": "bob",
        "categories": [CAT_A],
    }
    json.dumps(observation.outputs)  # status must be JSON-serializable


@pytest.mark.parametrize(
    ("desired", "aws", "diff"),
    [
        pytest.param(
            {"categories": [CAT_B, CAT_A]},
            {"categories": [category(CAT_A), category(CAT_B)]},
            (),
            id="categories compare as sets",
        ),
        pytest.param({"categories": [CAT_A]}, {"categories": []}, ("categories",), id="category added"),
        pytest.param({}, {"categories": [category(CAT_A)]}, ("categories",), id="category removed"),
        pytest.param(
            {"itemStatus": "PUBLISHED"}, {"status": "Published"}, (), id="status compares case-insensitively"
        ),
        pytest.param({"itemStatus": "DISABLED"}, {"status": "Published"}, ("itemStatus",), id="disable"),
        pytest.param({}, {"status": "Disabled"}, (), id="unset status is left alone"),
        pytest.param({"isVerified": True}, {"isVerified": False}, ("isVerified",), id="verify"),
        pytest.param({"isVerified": False}, {}, (), id="absent isVerified reads as false"),
        pytest.param({}, {"isVerified": True}, (), id="unset isVerified is left alone"),
    ],
)
def test_observe_reports_in_place_differences(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
    desired: dict[str, Any],
    aws: dict[str, Any],
    diff: tuple[str, ...],
) -> None:
    adapter, stubber = stubbed
    view = item(**aws)
    if "isVerified" not in aws and desired.get("isVerified") is False:
        del view["isVerified"]
    stubber.add_response("get_library_item", view)
    observation = adapter.observe(spec(**desired), REF, OWNER, base.Resolved())
    assert observation.diff == diff
    assert observation.replace == ()


@pytest.mark.parametrize(
    ("desired", "ref", "replace"),
    [
        pytest.param({"appVersion": 2}, REF, ("appVersion",), id="version bump"),
        pytest.param({"appId": "8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"}, REF, ("appId",), id="other app"),
        pytest.param({"instanceId": "instance-2"}, REF, ("instanceId",), id="other instance"),
    ],
)
def test_observe_reports_what_only_a_replacement_can_change(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
    desired: dict[str, Any],
    ref: dict[str, str],
    replace: tuple[str, ...],
) -> None:
    adapter, stubber = stubbed
    # The item is read where the ref says it is, even when the spec now names another instance.
    stubber.add_response("get_library_item", item(), {"instanceId": INSTANCE, "libraryItemId": ITEM_ID})
    observation = adapter.observe(spec(**desired), ref, OWNER, base.Resolved())
    assert observation.replace == replace
    assert not observation.up_to_date


def test_create_sends_app_version_and_categories_without_token(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "create_library_item",
        {
            "libraryItemId": ITEM_ID,
            "status": "Published",
            "createdAt": CREATED,
            "createdBy": "alice",
            "ratingCount": 0,
        },
        {"instanceId": INSTANCE, "appId": APP_ID, "appVersion": 1, "categories": [CAT_A]},
    )
    created = adapter.create(spec(categories=[CAT_A], itemStatus="DISABLED"), OWNER, TOKEN, base.Resolved())
    assert created.ref == REF
    assert created.outputs["libraryItemId"] == ITEM_ID
    assert created.outputs["appVersion"] == 1
    assert created.outputs["categories"] == [CAT_A]
    assert created.outputs["createdAt"] == "2026-11-23T10:00:00Z"
    json.dumps(created.outputs)


def test_create_with_unknown_category_raises_not_found_naming_categories(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "create_library_item", CAT_B, "Category")
    with pytest.raises(base.NotFoundError) as caught:
        adapter.create(spec(categories=[CAT_A, CAT_B]), OWNER, TOKEN, base.Resolved())
    assert caught.value.field == "categories"
    assert CAT_B in str(caught.value)
    assert INSTANCE in str(caught.value)


def test_create_with_unknown_app_raises_not_found_naming_app_id(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "create_library_item", APP_ID, "QApp")
    with pytest.raises(base.NotFoundError) as caught:
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert caught.value.field == "appId"


def test_create_in_unknown_instance_raises_not_found_naming_instance_id(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "create_library_item", INSTANCE, "Instance")
    with pytest.raises(base.NotFoundError) as caught:
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert caught.value.field == "instanceId"


def test_create_passes_other_errors_through_unchanged(stubbed: tuple[QLibraryItemAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "create_library_item",
        service_error_code="ThrottlingException",
        http_status_code=429,
        modeled_fields={
            "message": "slow down",
            "serviceCode": "qapps",
            "quotaCode": "q",
            "retryAfterSeconds": 7,
        },
    )
    with pytest.raises(ClientError) as caught:
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert caught.value.response["retryAfterSeconds"] == 7


def test_find_pages_through_the_library_and_matches_app_and_version(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    older = datetime(2026, 1, 1, tzinfo=UTC)
    other_version = item(libraryItemId="2a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", appVersion=2)
    stubber.add_response(
        "list_library_items",
        {"libraryItems": [other_version], "nextToken": "page-2"},
        {"instanceId": INSTANCE, "limit": 100},
    )
    stubber.add_response(
        "list_library_items",
        {
            "libraryItems": [
                item(libraryItemId="3a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", createdAt=older),
                item(),
            ]
        },
        {"instanceId": INSTANCE, "limit": 100, "nextToken": "page-2"},
    )
    found = adapter.find(spec(), OWNER)
    assert found is not None
    # the newest match: after a crash mid-create, ours is the newest
    assert found.ref == REF
    assert found.owner_mark is None
    assert found.created_at == CREATED


def test_find_without_a_match_is_none(stubbed: tuple[QLibraryItemAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "list_library_items", {"libraryItems": [item(appVersion=2)]}, {"instanceId": INSTANCE, "limit": 100}
    )
    assert adapter.find(spec(), OWNER) is None


def test_find_in_unknown_instance_raises_not_found_naming_instance_id(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "list_library_items", INSTANCE, "Instance")
    with pytest.raises(base.NotFoundError) as caught:
        adapter.find(spec(), OWNER)
    assert caught.value.field == "instanceId"


def observation(*diff: str) -> base.Observation:
    return base.Observation(phase=base.Phase.READY, diff=diff)


def test_update_changes_only_what_differs(stubbed: tuple[QLibraryItemAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    stubber.add_response("update_library_item", item(status="Disabled"), {**REF, "status": "DISABLED"})
    adapter.update(
        spec(itemStatus="DISABLED", categories=[CAT_A]),
        REF,
        observation("itemStatus"),
        OWNER,
        base.Resolved(),
    )


def test_update_sends_categories_and_status_in_one_call_and_verification_in_another(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "update_library_item", item(status="Published"), {**REF, "status": "PUBLISHED", "categories": [CAT_A]}
    )
    stubber.add_response("update_library_item_metadata", {}, {**REF, "isVerified": True})
    desired = spec(itemStatus="PUBLISHED", categories=[CAT_A], isVerified=True)
    adapter.update(
        desired, REF, observation("categories", "itemStatus", "isVerified"), OWNER, base.Resolved()
    )


def test_update_can_clear_all_categories(stubbed: tuple[QLibraryItemAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    stubber.add_response("update_library_item", item(), {**REF, "categories": []})
    adapter.update(spec(), REF, observation("categories"), OWNER, base.Resolved())


def test_update_with_unknown_category_raises_not_found_naming_categories(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "update_library_item", CAT_B, "Category")
    with pytest.raises(base.NotFoundError) as caught:
        adapter.update(spec(categories=[CAT_B]), REF, observation("categories"), OWNER, base.Resolved())
    assert caught.value.field == "categories"


def test_delete_deletes_the_item_and_an_already_deleted_item_is_not_an_error(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response("delete_library_item", {}, REF)
    not_found(stubber, "delete_library_item", ITEM_ID, "LibraryItem")
    adapter.delete(spec(), REF)
    adapter.delete(spec(), REF)


def test_delete_passes_access_denied_through(stubbed: tuple[QLibraryItemAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error(
        "delete_library_item", service_error_code="AccessDeniedException", http_status_code=403
    )
    with pytest.raises(ClientError):
        adapter.delete(spec(), REF)


def test_ref_for_adoption_is_the_spec_instance_and_the_given_item(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    adapter, _ = stubbed
    assert adapter.ref_for_id(spec(), ITEM_ID) == REF


def test_find_many_lists_each_library_once_and_a_failed_listing_answers_only_its_instance(
    stubbed: tuple[QLibraryItemAdapter, Stubber],
) -> None:
    """The engine asks the looks of many creates at once: one listing per instance answers them all."""
    adapter, stubber = stubbed
    other_app = "8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
    stubber.add_response(
        "list_library_items", {"libraryItems": [item()]}, {"instanceId": INSTANCE, "limit": 100}
    )
    not_found(stubber, "list_library_items", "instance-2", "Instance")
    specs = [
        spec(),
        spec(appId=other_app),
        spec(instanceId="instance-2"),
        spec(appVersion=2),
        spec(instanceId="instance-2", appId=other_app),
    ]
    answers = adapter.find_many(specs, [OWNER] * len(specs))
    assert isinstance(answers[0], base.Found) and answers[0].ref == REF
    assert answers[1] is None and answers[3] is None
    for failed in (answers[2], answers[4]):
        assert isinstance(failed, base.NotFoundError) and failed.field == "instanceId"
        assert "instance-2" in str(failed)
