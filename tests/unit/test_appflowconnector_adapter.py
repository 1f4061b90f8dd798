"""The AppFlowConnector adapter translates each verb into the right appflow calls (checked by
botocore's Stubber against the service model) and AppFlow's error codes into kind errors, never by
HTTP status (several of them are 400)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from q_operator.kinds import base
from q_operator.kinds.appflowconnector import (
    KIND,
    TAG_VALUE_MAX,
    TAG_VALUE_PATTERN,
    AppFlowConnectorAdapter,
    AppFlowConnectorSpec,
    effective_label,
    update_token,
)
from q_operator.kinds.common import owner_tag_value, seen_owner_mark, tag_changes

LABEL = "inventory-connector"
ARN = f"arn:aws:appflow:us-east-1:123456789012:connector/{LABEL}"
LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:inventory"
NEW_LAMBDA_ARN = "arn:aws:lambda:us-east-1:123456789012:function:inventory-v2"
REGISTERED = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
OWNER = base.Owner(uid="u-1", namespace="default", name=LABEL)
MARK = OWNER.mark
REF = {"connectorLabel": LABEL}
TOKEN = base.ClientToken("token-1")
DESCRIBE = {"connectorType": "CustomConnector", "connectorLabel": LABEL}


@pytest.fixture
def stubbed() -> Iterator[tuple[AppFlowConnectorAdapter, Stubber]]:
    client = boto3.client(
        "appflow", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stubber:
        yield KIND.adapter_factory(client), stubber  # type: ignore[misc]
        stubber.assert_no_pending_responses()


def spec(**overrides: Any) -> AppFlowConnectorSpec:
    fields: dict[str, Any] = {"connectorProvisioningConfig": {"lambda": {"lambdaArn": LAMBDA_ARN}}}
    fields.update(overrides)
    return AppFlowConnectorSpec.model_validate(fields)


def configuration(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "connectorType": "CustomConnector",
        "connectorLabel": LABEL,
        "connectorArn": ARN,
        "connectorProvisioningType": "LAMBDA",
        "connectorProvisioningConfig": {"lambda": {"lambdaArn": LAMBDA_ARN}},
        "registeredAt": REGISTERED,
        "registeredBy": "arn:aws:iam::123456789012:user/alice",
        "connectorVersion": "1.0",
    }
    config.update(overrides)
    return config


def error(stubber: Stubber, operation: str, code: str, status: int, message: str = "no") -> None:
    stubber.add_client_error(
        operation,
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        modeled_fields={"message": message},
    )


def describe(stubber: Stubber, tags: dict[str, str] | None = None, **config: Any) -> None:
    stubber.add_response("describe_connector", {"connectorConfiguration": configuration(**config)}, DESCRIBE)
    stubber.add_response(
        "list_tags_for_resource",
        {"tags": {base.OWNER_TAG: MARK} if tags is None else tags},
        {"resourceArn": ARN},
    )


def test_label_defaults_to_the_objects_name() -> None:
    assert effective_label(spec(), OWNER) == LABEL
    assert effective_label(spec(connectorLabel="explicit"), OWNER) == "explicit"


def test_observe_unregistered_connector_is_absent(stubbed: tuple[AppFlowConnectorAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    error(stubber, "describe_connector", "ResourceNotFoundException", 404)
    assert adapter.observe(spec(), REF, OWNER, base.Resolved()).phase is base.Phase.ABSENT


def test_observe_registered_connector_is_ready_with_json_outputs_and_owner_mark(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    describe(stubber, connectorDescription="Inventory")
    observation = adapter.observe(spec(description="Inventory"), REF, OWNER, base.Resolved())
    assert observation.phase is base.Phase.READY
    assert observation.up_to_date
    assert observation.owner_mark == MARK
    assert observation.outputs == {
        "connectorArn": ARN,
        "connectorLabel": LABEL,
        "lambdaArn": LAMBDA_ARN,
        "description": "Inventory",
        "registeredAt": "2026-11-23T10:00:00Z",
        "registeredBy": "arn:aws:iam::123456789012:user/alice",
        "connectorVersion": "1.0",
    }
    json.dumps(observation.outputs)


@pytest.mark.parametrize(
    ("desired", "aws", "tags", "diff"),
    [
        pytest.param(
            {"description": "new"},
            {"connectorDescription": "old"},
            None,
            ("description",),
            id="description differs",
        ),
        pytest.param(
            {"description": "new"}, {}, None, (), id="description AWS does not report is not compared"
        ),
        pytest.param({}, {"connectorDescription": "old"}, None, (), id="unset description is left alone"),
        pytest.param(
            {"connectorProvisioningConfig": {"lambda": {"lambdaArn": NEW_LAMBDA_ARN}}},
            {},
            None,
            ("connectorProvisioningConfig.lambda.lambdaArn",),
            id="lambda differs",
        ),
        pytest.param({"tags": {"team": "a"}}, {}, None, ("tags",), id="tag to add"),
        pytest.param({}, {}, {base.OWNER_TAG: MARK, "stale": "x"}, ("tags",), id="tag to remove"),
        pytest.param({}, {}, {}, ("tags",), id="owner tag missing after a crash before tagging"),
        pytest.param({"tags": {"team": "a"}}, {}, {base.OWNER_TAG: MARK, "team": "a"}, (), id="tags match"),
    ],
)
def test_observe_reports_in_place_differences(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
    desired: dict[str, Any],
    aws: dict[str, Any],
    tags: dict[str, str] | None,
    diff: tuple[str, ...],
) -> None:
    adapter, stubber = stubbed
    describe(stubber, tags, **aws)
    observation = adapter.observe(spec(**desired), REF, OWNER, base.Resolved())
    assert observation.diff == diff
    assert observation.replace == ()


def test_observe_reports_a_label_other_than_the_specs_as_replacement(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    describe(stubber)
    observation = adapter.observe(spec(connectorLabel="another-label"), REF, OWNER, base.Resolved())
    assert observation.replace == ("connectorLabel",)


def test_observe_passes_a_foreign_owner_mark_to_the_engine(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    describe(stubber, {base.OWNER_TAG: "other.ns.uid"})
    assert adapter.observe(spec(), REF, OWNER, base.Resolved()).owner_mark == "other.ns.uid"


def test_observe_connector_unregistered_between_describe_and_tags_is_absent(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response("describe_connector", {"connectorConfiguration": configuration()}, DESCRIBE)
    error(stubber, "list_tags_for_resource", "ResourceNotFoundException", 404)
    assert adapter.observe(spec(), REF, OWNER, base.Resolved()).phase is base.Phase.ABSENT


def test_find_by_label_reports_owner_and_registration_time(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    describe(stubber)
    found = adapter.find(spec(), OWNER)
    assert found == base.Found(ref=REF, owner_mark=MARK, created_at=REGISTERED)


def test_find_untagged_connector_has_no_owner_mark(stubbed: tuple[AppFlowConnectorAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    describe(stubber, {})
    found = adapter.find(spec(), OWNER)
    assert found is not None
    assert found.owner_mark is None


def test_find_unregistered_label_is_none(stubbed: tuple[AppFlowConnectorAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    error(stubber, "describe_connector", "ResourceNotFoundException", 404)
    assert adapter.find(spec(), OWNER) is None


def test_create_registers_with_the_token_then_tags_with_the_owner_tag(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "register_connector",
        {"connectorArn": ARN},
        {
            "connectorLabel": LABEL,
            "description": "Inventory",
            "connectorProvisioningType": "LAMBDA",
            "connectorProvisioningConfig": {"lambda": {"lambdaArn": LAMBDA_ARN}},
            "clientToken": TOKEN,
        },
    )
    stubber.add_response(
        "tag_resource", {}, {"resourceArn": ARN, "tags": {"team": "data", base.OWNER_TAG: MARK}}
    )
    created = adapter.create(
        spec(description="Inventory", tags={"team": "data"}), OWNER, TOKEN, base.Resolved()
    )
    assert created.ref == REF
    assert created.outputs["connectorArn"] == ARN
    json.dumps(created.outputs)


def test_create_with_explicit_label_registers_under_it(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "register_connector",
        {"connectorArn": ARN},
        {
            "connectorLabel": "explicit",
            "connectorProvisioningType": "LAMBDA",
            "connectorProvisioningConfig": ANY,
            "clientToken": TOKEN,
        },
    )
    stubber.add_response("tag_resource", {}, {"resourceArn": ARN, "tags": ANY})
    assert adapter.create(spec(connectorLabel="explicit"), OWNER, TOKEN, base.Resolved()).ref == {
        "connectorLabel": "explicit"
    }


def test_create_on_a_taken_label_raises_already_exists(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    error(stubber, "register_connector", "ConflictException", 409, "connector with given name already exists")
    with pytest.raises(base.AlreadyExists, match="already exists"):
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())


@pytest.mark.parametrize(
    ("code", "status"),
    [("ConnectorAuthenticationException", 401), ("ConnectorServerException", 400)],
)
def test_create_with_a_broken_lambda_raises_external_failure_with_aws_message(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber], code: str, status: int
) -> None:
    adapter, stubber = stubbed
    error(stubber, "register_connector", code, status, "lambda said: boom")
    with pytest.raises(base.ExternalFailure) as caught:
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert "lambda said: boom" in str(caught.value)
    assert code in str(caught.value)


def test_create_with_a_missing_lambda_raises_not_found_naming_the_lambda_arn(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    error(stubber, "register_connector", "ResourceNotFoundException", 404, "function does not exist")
    with pytest.raises(base.NotFoundError) as caught:
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert caught.value.field == "connectorProvisioningConfig.lambda.lambdaArn"
    assert LAMBDA_ARN in str(caught.value)


def test_create_validation_error_with_the_same_status_passes_through(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    # ValidationException and ConnectorServerException are both 400: only the code tells them apart.
    adapter, stubber = stubbed
    error(stubber, "register_connector", "ValidationException", 400, "bad label")
    with pytest.raises(ClientError) as caught:
        adapter.create(spec(), OWNER, TOKEN, base.Resolved())
    assert not isinstance(caught.value, base.KindError)


def observation(*diff: str, **outputs: Any) -> base.Observation:
    return base.Observation(
        phase=base.Phase.READY,
        diff=diff,
        outputs={"connectorArn": ARN, "lambdaArn": LAMBDA_ARN, "description": "old", **outputs},
    )


def test_update_re_registers_a_new_lambda_with_a_deterministic_token(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    desired = spec(description="new", connectorProvisioningConfig={"lambda": {"lambdaArn": NEW_LAMBDA_ARN}})
    seen = observation("description", "connectorProvisioningConfig.lambda.lambdaArn")
    token = update_token(LABEL, seen.outputs, desired)
    stubber.add_response(
        "update_connector_registration",
        {"connectorArn": ARN},
        {
            "connectorLabel": LABEL,
            "description": "new",
            "connectorProvisioningConfig": {"lambda": {"lambdaArn": NEW_LAMBDA_ARN}},
            "clientToken": token,
        },
    )
    adapter.update(desired, REF, seen, OWNER, base.Resolved())
    assert update_token(LABEL, seen.outputs, desired) == token  # a retry sends the same token


def test_update_token_differs_for_the_same_change_to_a_registration_made_again() -> None:
    """Unregistered and registered again under the same label (a deleted object created anew): the
    same change within AppFlow's 8 hours of replay must still be applied."""
    desired = spec(description="b")
    first = update_token(LABEL, {"lambdaArn": LAMBDA_ARN, "description": "a", "registeredAt": "t1"}, desired)
    again = update_token(LABEL, {"lambdaArn": LAMBDA_ARN, "description": "a", "registeredAt": "t2"}, desired)
    assert first != again


def test_update_token_differs_when_changing_back_to_an_earlier_state() -> None:
    a = spec(description="a")
    b = spec(description="b")
    to_b = update_token(LABEL, {"lambdaArn": LAMBDA_ARN, "description": "a"}, b)
    back_to_a = update_token(LABEL, {"lambdaArn": LAMBDA_ARN, "description": "b"}, a)
    first_a = update_token(LABEL, {"lambdaArn": LAMBDA_ARN, "description": "x"}, a)
    assert len({to_b, back_to_a, first_a}) == 3
    assert all(1 <= len(token) <= 256 and token.isascii() for token in (to_b, back_to_a, first_a))


@pytest.mark.parametrize(
    ("code", "status"),
    [("ConnectorAuthenticationException", 401), ("ConnectorServerException", 400)],
)
def test_update_with_a_broken_lambda_raises_external_failure(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber], code: str, status: int
) -> None:
    # RegisterConnector and UpdateConnectorRegistration are the only calls that answer these codes
    # (botocore's model): the engine's error table does not know them.
    adapter, stubber = stubbed
    error(stubber, "update_connector_registration", code, status, "timeout in lambda")
    with pytest.raises(base.ExternalFailure, match="timeout in lambda"):
        adapter.update(
            spec(), REF, observation("connectorProvisioningConfig.lambda.lambdaArn"), OWNER, base.Resolved()
        )


def test_update_to_a_missing_lambda_raises_not_found_naming_the_lambda_arn(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    error(
        stubber, "update_connector_registration", "ResourceNotFoundException", 404, f"No Lambda {LAMBDA_ARN}"
    )
    with pytest.raises(base.NotFoundError) as caught:
        adapter.update(
            spec(), REF, observation("connectorProvisioningConfig.lambda.lambdaArn"), OWNER, base.Resolved()
        )
    assert caught.value.field == "connectorProvisioningConfig.lambda.lambdaArn"


def test_update_of_a_vanished_connector_passes_not_found_through(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    error(stubber, "update_connector_registration", "ResourceNotFoundException", 404, "connector not found")
    with pytest.raises(ClientError):
        adapter.update(spec(), REF, observation("description"), OWNER, base.Resolved())


def test_update_tags_sets_and_removes_but_keeps_the_owner_tag(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response(
        "list_tags_for_resource",
        {"tags": {base.OWNER_TAG: MARK, "team": "old", "stale": "x"}},
        {"resourceArn": ARN},
    )
    stubber.add_response("tag_resource", {}, {"resourceArn": ARN, "tags": {"team": "new"}})
    stubber.add_response("untag_resource", {}, {"resourceArn": ARN, "tagKeys": ["stale"]})
    adapter.update(spec(tags={"team": "new"}), REF, observation("tags"), OWNER, base.Resolved())


def test_tag_changes_never_remove_the_owner_tag() -> None:
    assert tag_changes({base.OWNER_TAG: "someone", "a": "1"}, {}) == ({}, ["a"])
    assert tag_changes({}, {base.OWNER_TAG: MARK}) == ({base.OWNER_TAG: MARK}, [])


def test_delete_passes_force_delete_and_already_gone_is_not_an_error(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    stubber.add_response("unregister_connector", {}, {"connectorLabel": LABEL, "forceDelete": True})
    error(stubber, "unregister_connector", "ResourceNotFoundException", 404)
    adapter.delete(spec(forceDelete=True), REF)
    adapter.delete(spec(forceDelete=True), REF)


def test_delete_while_in_use_raises_in_use_with_aws_message(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    error(stubber, "unregister_connector", "ConflictException", 409, "used by connector profile crm")
    with pytest.raises(base.InUse) as caught:
        adapter.delete(spec(), REF)
    assert "used by connector profile crm" in str(caught.value)
    assert "forceDelete" in str(caught.value)


def test_ref_for_adoption_is_the_given_label(stubbed: tuple[AppFlowConnectorAdapter, Stubber]) -> None:
    adapter, _ = stubbed
    assert adapter.ref_for_id(spec(), "someone-elses") == {"connectorLabel": "someone-elses"}


LONG_OWNER = base.Owner(uid="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", namespace="n" * 63, name="x" * 253)


def test_a_long_owner_mark_is_shortened_to_fit_a_tag_and_still_recognised() -> None:
    value = owner_tag_value(LONG_OWNER)
    assert len(LONG_OWNER.mark) > TAG_VALUE_MAX >= len(value)
    assert LONG_OWNER.uid in value and re.fullmatch(TAG_VALUE_PATTERN, value)
    assert seen_owner_mark(value, LONG_OWNER) == LONG_OWNER.mark
    assert seen_owner_mark("other.mark.uid", LONG_OWNER) == "other.mark.uid"
    assert owner_tag_value(OWNER) == OWNER.mark


def test_a_long_owner_is_tagged_with_the_shortened_mark_and_found_as_its_own(
    stubbed: tuple[AppFlowConnectorAdapter, Stubber],
) -> None:
    """A 253-character name in a 63-character namespace: the owner mark alone is over AppFlow's
    256-character tag value limit, so TagResource would be refused with the full mark."""
    adapter, stubber = stubbed
    stubber.add_response("register_connector", {"connectorArn": ARN})
    stubber.add_response(
        "tag_resource", {}, {"resourceArn": ARN, "tags": {base.OWNER_TAG: owner_tag_value(LONG_OWNER)}}
    )
    adapter.create(spec(connectorLabel=LABEL), LONG_OWNER, TOKEN, base.Resolved())
    describe(stubber, {base.OWNER_TAG: owner_tag_value(LONG_OWNER)})
    found = adapter.find(spec(connectorLabel=LABEL), LONG_OWNER)
    assert found is not None and found.owner_mark == LONG_OWNER.mark
