"""The AppFlowConnector adapter over real HTTP against the AWS stand-in: register and tag, update the
Lambda, label clashes, broken and missing Lambdas, unregistering while in use."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from q_operator.emulate.aws.testing import AwsHandle
from q_operator.kinds import base
from q_operator.kinds.appflowconnector import KIND, AppFlowConnectorAdapter, AppFlowConnectorSpec

LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:inventory"
LAMBDA_V2 = "arn:aws:lambda:us-east-1:123456789012:function:inventory-v2"
OWNER = base.Owner(uid="u-1", namespace="default", name="inventory")
OTHER = base.Owner(uid="u-2", namespace="team-b", name="inventory")
REF = {"connectorLabel": "inventory"}
TOKEN = base.ClientToken("register-token-1")


@pytest.fixture
def adapter(aws: AwsHandle) -> AppFlowConnectorAdapter:
    client = boto3.client(
        "appflow",
        endpoint_url=aws.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )
    made: AppFlowConnectorAdapter = KIND.adapter_factory(client)  # type: ignore[assignment]
    return made


def spec(lambda_arn: str = LAMBDA, **overrides: Any) -> AppFlowConnectorSpec:
    fields: dict[str, Any] = {"connectorProvisioningConfig": {"lambda": {"lambdaArn": lambda_arn}}}
    fields.update(overrides)
    return AppFlowConnectorSpec.model_validate(fields)


def observe(adapter: AppFlowConnectorAdapter, desired: AppFlowConnectorSpec) -> base.Observation:
    return adapter.observe(desired, REF, OWNER, base.Resolved())


def test_register_tag_update_lambda_and_unregister(adapter: AppFlowConnectorAdapter) -> None:
    desired = spec(description="Inventory records", tags={"team": "data"})
    created = adapter.create(desired, OWNER, TOKEN, base.Resolved())
    assert created.ref == REF  # the label defaults to the object's name

    seen = observe(adapter, desired)
    assert seen.phase is base.Phase.READY
    assert seen.up_to_date, seen.diff
    assert seen.owner_mark == OWNER.mark
    assert seen.outputs["lambdaArn"] == LAMBDA
    assert seen.outputs["description"] == "Inventory records"

    moved = spec(LAMBDA_V2, description="Inventory v2", tags={"team": "platform"})
    drift = observe(adapter, moved)
    assert set(drift.diff) == {"description", "connectorProvisioningConfig.lambda.lambdaArn", "tags"}
    adapter.update(moved, REF, drift, OWNER, base.Resolved())
    after = observe(adapter, moved)
    assert after.up_to_date, after.diff
    assert after.outputs["lambdaArn"] == LAMBDA_V2
    assert after.owner_mark == OWNER.mark
    assert after.outputs["connectorVersion"] != seen.outputs["connectorVersion"]

    adapter.delete(moved, REF)
    assert observe(adapter, moved).phase is base.Phase.ABSENT
    adapter.delete(moved, REF)  # already gone: not an error


def test_a_retried_register_with_the_same_token_is_the_same_connector(
    adapter: AppFlowConnectorAdapter,
) -> None:
    # AppFlow keeps a clientToken 8 hours: a retry after a crash replays instead of clashing.
    first = adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    again = adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert again.outputs["connectorArn"] == first.outputs["connectorArn"]
    assert observe(adapter, spec()).owner_mark == OWNER.mark


def test_label_taken_by_a_foreign_connector_is_already_exists_and_found_with_its_mark(
    adapter: AppFlowConnectorAdapter,
) -> None:
    adapter.create(spec(), OTHER, base.ClientToken("someone-elses"), base.Resolved())
    with pytest.raises(base.AlreadyExists):
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    found = adapter.find(spec(), OWNER)
    assert found is not None
    assert found.owner_mark == OTHER.mark
    assert found.created_at is not None


@pytest.mark.parametrize("failure", ["authentication", "server"])
def test_broken_lambda_is_external_failure_with_aws_message(
    aws: AwsHandle, adapter: AppFlowConnectorAdapter, failure: str
) -> None:
    aws.configure(broken_lambdas={LAMBDA: failure})
    with pytest.raises(base.ExternalFailure) as caught:
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert LAMBDA in str(caught.value)


def test_missing_lambda_is_not_found_naming_the_lambda_arn(
    aws: AwsHandle, adapter: AppFlowConnectorAdapter
) -> None:
    aws.configure(known_lambdas=[LAMBDA])
    adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    with pytest.raises(base.NotFoundError) as on_update:
        moved = spec(LAMBDA_V2)
        adapter.update(moved, REF, observe(adapter, moved), OWNER, base.Resolved())
    assert on_update.value.field == "connectorProvisioningConfig.lambda.lambdaArn"
    with pytest.raises(base.NotFoundError) as on_create:
        adapter.create(
            spec(LAMBDA_V2, connectorLabel="other"), OWNER, base.ClientToken("t2"), base.Resolved()
        )
    assert on_create.value.field == "connectorProvisioningConfig.lambda.lambdaArn"


def test_unregister_in_use_is_in_use_unless_forced(aws: AwsHandle, adapter: AppFlowConnectorAdapter) -> None:
    adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    aws.configure(connectors_in_use=["inventory"])
    with pytest.raises(base.InUse) as caught:
        adapter.delete(spec(), REF)
    assert "in use" in str(caught.value)
    adapter.delete(spec(forceDelete=True), REF)
    assert observe(adapter, spec()).phase is base.Phase.ABSENT


def test_invalid_label_is_refused_by_aws_as_a_validation_error(adapter: AppFlowConnectorAdapter) -> None:
    # The CRD refuses this at apply time; should it get through, AWS's ValidationException names it.
    one_letter = base.Owner(uid="u-3", namespace="default", name="x")
    with pytest.raises(ClientError) as caught:
        adapter.create(spec(), one_letter, TOKEN, base.Resolved())
    assert caught.value.response["Error"]["Code"] == "ValidationException"
