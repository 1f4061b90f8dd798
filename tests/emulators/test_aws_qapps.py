"""qapps library items through boto3: the instance-id header, categories, views, paging, errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from q_operator.emulate.aws.testing import AwsHandle
from tests.emulators.aws_support import error_code, new_id

INSTANCE = "instance-1"


@pytest.fixture()
def qa(client: Callable[..., Any]) -> Any:
    return client("qapps")


def create(qa: Any, categories: list[str] | None = None, instance: str = INSTANCE, **extra: Any) -> str:
    result = qa.create_library_item(
        instanceId=instance,
        appId=extra.pop("appId", new_id()),
        appVersion=1,
        categories=categories or [],
        **extra,
    )
    return str(result["libraryItemId"])


def test_create_answers_the_create_view_and_get_the_library_item_view(qa: Any) -> None:
    app = new_id()
    created = qa.create_library_item(instanceId=INSTANCE, appId=app, appVersion=3, categories=[])
    assert created["status"] == "PUBLISHED"
    assert created["ratingCount"] == 0 and created["isVerified"] is False
    assert "appId" not in created
    got = qa.get_library_item(instanceId=INSTANCE, libraryItemId=created["libraryItemId"])
    assert (got["appId"], got["appVersion"], got["categories"]) == (app, 3, [])
    assert got["createdAt"] == created["createdAt"]
    assert got["createdAt"].tzinfo is not None  # iso8601 on the wire, as the model says


def test_the_instance_id_header_scopes_items(qa: Any) -> None:
    item = create(qa)
    with pytest.raises(ClientError) as raised:
        qa.get_library_item(instanceId="another-instance", libraryItemId=item)
    assert error_code(raised.value) == "ResourceNotFoundException"
    assert raised.value.response["resourceId"] == item


def test_update_sets_status_and_categories_and_metadata_sets_is_verified(qa: Any) -> None:
    item = create(qa)
    category = new_id()
    view = qa.update_library_item(
        instanceId=INSTANCE, libraryItemId=item, status="DISABLED", categories=[category]
    )
    assert view["status"] == "DISABLED"
    assert [c["id"] for c in view["categories"]] == [category]
    qa.update_library_item_metadata(instanceId=INSTANCE, libraryItemId=item, isVerified=True)
    assert qa.get_library_item(instanceId=INSTANCE, libraryItemId=item)["isVerified"] is True


def test_delete_removes_the_item(qa: Any) -> None:
    item = create(qa)
    qa.delete_library_item(instanceId=INSTANCE, libraryItemId=item)
    with pytest.raises(ClientError) as raised:
        qa.delete_library_item(instanceId=INSTANCE, libraryItemId=item)
    assert error_code(raised.value) == "ResourceNotFoundException"


def test_get_with_another_app_id_is_not_found(qa: Any) -> None:
    item = create(qa)
    with pytest.raises(ClientError) as raised:
        qa.get_library_item(instanceId=INSTANCE, libraryItemId=item, appId=new_id())
    assert error_code(raised.value) == "ResourceNotFoundException"


def test_created_categories_are_listed_and_then_required(qa: Any) -> None:
    sales = new_id()
    qa.batch_create_category(
        instanceId=INSTANCE, categories=[{"id": sales, "title": "Sales", "color": "#abc"}]
    )
    listed = qa.list_categories(instanceId=INSTANCE)["categories"]
    assert listed == [{"id": sales, "title": "Sales", "color": "#abc", "appCount": 0}]
    item = create(qa, categories=[sales])
    view = qa.get_library_item(instanceId=INSTANCE, libraryItemId=item)
    assert view["categories"] == [{"id": sales, "title": "Sales", "color": "#abc", "appCount": 1}]
    unknown = new_id()
    with pytest.raises(ClientError) as raised:
        create(qa, categories=[unknown])
    assert error_code(raised.value) == "ResourceNotFoundException"
    assert raised.value.response["resourceId"] == unknown
    assert unknown in raised.value.response["Error"]["Message"]


def test_an_instance_without_categories_accepts_any_category_id(qa: Any) -> None:
    category = new_id()
    item = create(qa, categories=[category], instance="fresh-instance")
    view = qa.get_library_item(instanceId="fresh-instance", libraryItemId=item)
    assert view["categories"][0]["id"] == category


def test_creating_an_existing_category_is_a_conflict(qa: Any) -> None:
    category = new_id()
    qa.batch_create_category(instanceId=INSTANCE, categories=[{"id": category, "title": "One"}])
    with pytest.raises(ClientError) as raised:
        qa.batch_create_category(instanceId=INSTANCE, categories=[{"id": category, "title": "Two"}])
    assert error_code(raised.value) == "ConflictException"
    assert raised.value.response["resourceId"] == category


def test_list_pages_with_limit_and_filters_by_category(qa: Any) -> None:
    tagged = new_id()
    made = [create(qa, categories=[tagged] if i % 2 else []) for i in range(5)]
    pages = qa.get_paginator("list_library_items").paginate(
        instanceId=INSTANCE, PaginationConfig={"PageSize": 2}
    )
    assert [i["libraryItemId"] for page in pages for i in page["libraryItems"]] == made
    first = qa.list_library_items(instanceId=INSTANCE, limit=2)
    assert len(first["libraryItems"]) == 2 and first["nextToken"]
    filtered = qa.list_library_items(instanceId=INSTANCE, categoryId=tagged)["libraryItems"]
    assert [i["libraryItemId"] for i in filtered] == [made[1], made[3]]


def test_known_instances_and_apps_make_others_not_found(aws: AwsHandle, qa: Any) -> None:
    app = new_id()
    aws.configure(known_instances=[INSTANCE], known_apps=[app])
    create(qa, appId=app)
    with pytest.raises(ClientError) as raised:
        create(qa, instance="unknown-instance", appId=app)
    assert raised.value.response["resourceType"] == "Instance"
    with pytest.raises(ClientError) as raised:
        create(qa, appId=new_id())
    assert error_code(raised.value) == "ResourceNotFoundException"
    assert raised.value.response["resourceType"] == "QApp"


def test_library_item_quota_answers_service_quota_exceeded_with_quota_fields(aws: AwsHandle, qa: Any) -> None:
    aws.configure(quotas={"library_items_per_instance": 1})
    create(qa)
    with pytest.raises(ClientError) as raised:
        create(qa)
    response = raised.value.response
    assert error_code(raised.value) == "ServiceQuotaExceededException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert {"resourceId", "resourceType", "serviceCode", "quotaCode"} <= set(response)


def test_throttling_answers_429_with_retry_after_seconds(aws: AwsHandle, qa: Any) -> None:
    aws.configure(throttle={"ListLibraryItems": 0.5})
    qa.list_library_items(instanceId=INSTANCE)
    with pytest.raises(ClientError) as raised:
        qa.list_library_items(instanceId=INSTANCE)
    response = raised.value.response
    assert error_code(raised.value) == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "2"
    assert response["retryAfterSeconds"] == 2
    assert response["serviceCode"] == "qapps" and response["quotaCode"]


def test_internal_errors_carry_retry_after_seconds(aws: AwsHandle, qa: Any) -> None:
    aws.configure(fail_rate=1.0)
    with pytest.raises(ClientError) as raised:
        qa.list_categories(instanceId=INSTANCE)
    assert error_code(raised.value) == "InternalServerException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert raised.value.response["retryAfterSeconds"] == 1


def test_injected_unauthorized_answers_401(aws: AwsHandle, qa: Any) -> None:
    aws.configure(inject=[{"operation": "qapps:CreateLibraryItem", "error": "UnauthorizedException"}])
    with pytest.raises(ClientError) as raised:
        create(qa)
    assert error_code(raised.value) == "UnauthorizedException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    create(qa)  # the rule was for one call


def test_categories_can_be_updated_and_deleted_which_takes_them_off_items(qa: Any) -> None:
    sales, support = new_id(), new_id()
    qa.batch_create_category(
        instanceId=INSTANCE, categories=[{"id": sales, "title": "Sales"}, {"id": support, "title": "Support"}]
    )
    item = create(qa, categories=[sales, support])
    qa.batch_update_category(
        instanceId=INSTANCE, categories=[{"id": sales, "title": "Revenue", "color": "#fff"}]
    )
    qa.batch_delete_category(instanceId=INSTANCE, categories=[support])
    assert qa.list_categories(instanceId=INSTANCE)["categories"] == [
        {"id": sales, "title": "Revenue", "color": "#fff", "appCount": 1}
    ]
    assert [c["id"] for c in qa.get_library_item(instanceId=INSTANCE, libraryItemId=item)["categories"]] == [
        sales
    ]
    with pytest.raises(ClientError) as raised:
        qa.batch_delete_category(instanceId=INSTANCE, categories=[support])
    assert error_code(raised.value) == "ResourceNotFoundException"


def test_reviews_count_per_caller(qa: Any, client: Callable[..., Any]) -> None:
    item = create(qa)
    qa.associate_library_item_review(instanceId=INSTANCE, libraryItemId=item)
    qa.associate_library_item_review(instanceId=INSTANCE, libraryItemId=item)
    view = qa.get_library_item(instanceId=INSTANCE, libraryItemId=item)
    assert (view["ratingCount"], view["isRatedByUser"]) == (1, True)
    qa.disassociate_library_item_review(instanceId=INSTANCE, libraryItemId=item)
    view = qa.get_library_item(instanceId=INSTANCE, libraryItemId=item)
    assert (view["ratingCount"], view["isRatedByUser"]) == (0, False)
