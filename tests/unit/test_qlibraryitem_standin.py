"""The QLibraryItem adapter over real HTTP against the AWS stand-in: the wire format (the instance-id
header, RPC-style URIs, paging) and the stand-in's answers turn into the observations and kind errors
the engine expects."""

from __future__ import annotations

import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config

from q_operator.emulate.aws.testing import AwsHandle
from q_operator.kinds import base
from q_operator.kinds.qlibraryitem import KIND, QLibraryItemAdapter, QLibraryItemSpec

INSTANCE = "0f9a3c2e-1b4d-4c6e-8a7f-2d3e4f5a6b7c"
OWNER = base.Owner(uid="u-1", namespace="default", name="expense-helper")
TOKEN = base.ClientToken("unused")


def new_uuid() -> str:
    return str(uuid.uuid4())


@pytest.fixture
def qapps(aws: AwsHandle) -> Any:
    return boto3.client(
        "qapps",
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture
def adapter(qapps: Any) -> QLibraryItemAdapter:
    made: QLibraryItemAdapter = KIND.adapter_factory(qapps)  # type: ignore[assignment]
    return made


def spec(**overrides: Any) -> QLibraryItemSpec:
    fields: dict[str, Any] = {"instanceId": INSTANCE, "appId": new_uuid(), "appVersion": 1}
    fields.update(overrides)
    return QLibraryItemSpec.model_validate(fields)


def test_publish_recategorize_disable_verify_and_delete(adapter: QLibraryItemAdapter, qapps: Any) -> None:
    category = new_uuid()
    desired = spec(categories=[category], itemStatus="DISABLED", isVerified=True)
    created = adapter.create(desired, OWNER, TOKEN, base.Resolved())
    ref = created.ref
    assert ref["instanceId"] == INSTANCE

    seen = adapter.observe(desired, ref, OWNER, base.Resolved())
    assert seen.phase is base.Phase.READY
    assert seen.outputs["categories"] == [category]
    # itemStatus and isVerified are applied after the create
    assert set(seen.diff) == {"itemStatus", "isVerified"}

    adapter.update(desired, ref, seen, OWNER, base.Resolved())
    after = adapter.observe(desired, ref, OWNER, base.Resolved())
    assert after.up_to_date, after.diff
    assert (after.outputs["itemStatus"].upper(), after.outputs["isVerified"]) == ("DISABLED", True)

    recategorized = spec(appId=desired.appId, categories=[], itemStatus="DISABLED", isVerified=True)
    drift = adapter.observe(recategorized, ref, OWNER, base.Resolved())
    assert drift.diff == ("categories",)
    adapter.update(recategorized, ref, drift, OWNER, base.Resolved())
    assert adapter.observe(recategorized, ref, OWNER, base.Resolved()).up_to_date

    adapter.delete(desired, ref)
    assert adapter.observe(desired, ref, OWNER, base.Resolved()).phase is base.Phase.ABSENT
    adapter.delete(desired, ref)  # already gone: not an error


def test_find_matches_app_and_version_across_pages(adapter: QLibraryItemAdapter, qapps: Any) -> None:
    wanted = spec(appVersion=7)
    for _ in range(104):  # more than one page of 100
        qapps.create_library_item(instanceId=INSTANCE, appId=new_uuid(), appVersion=7, categories=[])
    qapps.create_library_item(instanceId=INSTANCE, appId=wanted.appId, appVersion=6, categories=[])
    assert adapter.find(wanted, OWNER) is None
    created = adapter.create(wanted, OWNER, TOKEN, base.Resolved())
    found = adapter.find(wanted, OWNER)
    assert found is not None
    assert found.ref == created.ref
    assert found.owner_mark is None
    assert found.created_at is not None


def test_version_bump_is_a_replacement(adapter: QLibraryItemAdapter) -> None:
    first = spec()
    ref = adapter.create(first, OWNER, TOKEN, base.Resolved()).ref
    bumped = spec(appId=first.appId, appVersion=2)
    assert adapter.observe(bumped, ref, OWNER, base.Resolved()).replace == ("appVersion",)


def test_category_missing_from_the_instance_is_not_found_naming_categories(
    adapter: QLibraryItemAdapter, qapps: Any
) -> None:
    known = new_uuid()
    qapps.batch_create_category(instanceId=INSTANCE, categories=[{"id": known, "title": "Finance"}])
    missing = new_uuid()
    with pytest.raises(base.NotFoundError) as caught:
        adapter.create(spec(categories=[known, missing]), OWNER, TOKEN, base.Resolved())
    assert caught.value.field == "categories"
    assert missing in str(caught.value)

    ref = adapter.create(spec(categories=[known]), OWNER, TOKEN, base.Resolved()).ref
    wrong = spec(categories=[missing])
    with pytest.raises(base.NotFoundError) as on_update:
        adapter.update(
            wrong, ref, base.Observation(base.Phase.READY, diff=("categories",)), OWNER, base.Resolved()
        )
    assert on_update.value.field == "categories"


def test_unknown_app_and_instance_are_not_found_naming_the_field(
    aws: AwsHandle, adapter: QLibraryItemAdapter
) -> None:
    aws.configure(known_apps=[new_uuid()], known_instances=[INSTANCE])
    with pytest.raises(base.NotFoundError) as app:
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert app.value.field == "appId"
    with pytest.raises(base.NotFoundError) as instance:
        adapter.find(spec(instanceId="another-instance"), OWNER)
    assert instance.value.field == "instanceId"
