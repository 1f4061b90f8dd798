"""appflow custom connectors through boto3: labels, Lambda troubles, idempotency, tags, paging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from q_operator.emulate.aws.testing import AwsHandle
from tests.emulators.aws_support import ACCOUNT, LAMBDA_ARN, error_code

OTHER_LAMBDA = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:other"


@pytest.fixture()
def af(client: Callable[..., Any]) -> Any:
    return client("appflow")


def register(af: Any, label: str = "my-connector", lambda_arn: str = LAMBDA_ARN, **extra: Any) -> str:
    result = af.register_connector(
        connectorLabel=label,
        connectorProvisioningType="LAMBDA",
        connectorProvisioningConfig={"lambda": {"lambdaArn": lambda_arn}},
        **extra,
    )
    return str(result["connectorArn"])


def code_of(call: Callable[[], Any]) -> tuple[str, int]:
    with pytest.raises(ClientError) as raised:
        call()
    return error_code(raised.value), raised.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_register_then_describe_returns_the_registration(af: Any) -> None:
    arn = register(af, description="reads tickets")
    assert arn == f"arn:aws:appflow:us-east-1:{ACCOUNT}:connector/my-connector"
    config = af.describe_connector(connectorType="CustomConnector", connectorLabel="my-connector")[
        "connectorConfiguration"
    ]
    assert config["connectorArn"] == arn
    assert config["connectorLabel"] == "my-connector"
    assert config["connectorProvisioningConfig"] == {"lambda": {"lambdaArn": LAMBDA_ARN}}
    assert config["connectorDescription"] == "reads tickets"
    assert config["registeredBy"] and config["connectorVersion"]
    assert config["registeredAt"].timestamp() > 0


def test_update_changes_lambda_and_description_and_bumps_the_version(af: Any) -> None:
    register(af)
    before = af.describe_connector(connectorType="CustomConnector", connectorLabel="my-connector")
    af.update_connector_registration(
        connectorLabel="my-connector",
        description="new lambda",
        connectorProvisioningConfig={"lambda": {"lambdaArn": OTHER_LAMBDA}},
    )
    after = af.describe_connector(connectorType="CustomConnector", connectorLabel="my-connector")
    config = after["connectorConfiguration"]
    assert config["connectorProvisioningConfig"]["lambda"]["lambdaArn"] == OTHER_LAMBDA
    assert config["connectorDescription"] == "new lambda"
    assert config["connectorVersion"] != before["connectorConfiguration"]["connectorVersion"]


def test_a_label_is_unique_per_region(af: Any, client: Callable[..., Any]) -> None:
    register(af)
    with pytest.raises(ClientError) as raised:
        register(af)
    assert error_code(raised.value) == "ConflictException"
    assert "given name already exists" in raised.value.response["Error"]["Message"]
    register(client("appflow", region="eu-west-1"))


def test_unknown_labels_are_resource_not_found(af: Any) -> None:
    assert code_of(lambda: af.unregister_connector(connectorLabel="nope")) == (
        "ResourceNotFoundException",
        404,
    )
    assert code_of(lambda: af.describe_connector(connectorType="CustomConnector", connectorLabel="nope"))[
        0
    ] == ("ResourceNotFoundException")
    assert code_of(lambda: af.update_connector_registration(connectorLabel="nope"))[0] == (
        "ResourceNotFoundException"
    )


def test_unregister_in_use_is_a_conflict_unless_forced(aws: AwsHandle, af: Any) -> None:
    register(af)
    aws.configure(connectors_in_use=["my-connector"])
    assert code_of(lambda: af.unregister_connector(connectorLabel="my-connector")) == (
        "ConflictException",
        409,
    )
    af.unregister_connector(connectorLabel="my-connector", forceDelete=True)
    assert af.list_connectors()["connectors"] == []


@pytest.mark.parametrize(
    "failure,code,status",
    [
        ("authentication", "ConnectorAuthenticationException", 401),
        ("server", "ConnectorServerException", 400),
    ],
)
def test_a_broken_lambda_fails_register_and_update(
    aws: AwsHandle, af: Any, failure: str, code: str, status: int
) -> None:
    register(af)
    aws.configure(broken_lambdas={OTHER_LAMBDA: failure})
    assert code_of(lambda: register(af, label="second", lambda_arn=OTHER_LAMBDA)) == (code, status)
    update = {"lambda": {"lambdaArn": OTHER_LAMBDA}}
    assert code_of(
        lambda: af.update_connector_registration(
            connectorLabel="my-connector", connectorProvisioningConfig=update
        )
    ) == (code, status)


def test_known_lambdas_make_others_not_found(aws: AwsHandle, af: Any) -> None:
    aws.configure(known_lambdas=[LAMBDA_ARN])
    register(af)
    assert (
        code_of(lambda: register(af, label="other", lambda_arn=OTHER_LAMBDA))[0]
        == "ResourceNotFoundException"
    )


def test_same_client_token_and_input_returns_the_first_arn(af: Any) -> None:
    first = register(af, clientToken="token-1")
    assert register(af, clientToken="token-1") == first
    assert len(af.list_connectors()["connectors"]) == 1


def test_same_client_token_with_different_input_is_a_conflict(af: Any) -> None:
    register(af, clientToken="token-1")
    assert code_of(lambda: register(af, label="other", clientToken="token-1")) == ("ConflictException", 409)
    assert len(af.list_connectors()["connectors"]) == 1


def test_tags_are_a_map_on_the_connector_arn(af: Any) -> None:
    arn = register(af)
    af.tag_resource(resourceArn=arn, tags={"q-operator.dev/owner": "ns.name", "team": "blue"})
    af.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert af.list_tags_for_resource(resourceArn=arn)["tags"] == {"q-operator.dev/owner": "ns.name"}
    unknown = f"arn:aws:appflow:us-east-1:{ACCOUNT}:connector/unknown"
    assert code_of(lambda: af.list_tags_for_resource(resourceArn=unknown))[0] == "ResourceNotFoundException"


def test_list_connectors_pages_by_hand_with_next_token(af: Any) -> None:
    labels = [f"connector-{i}" for i in range(5)]
    for label in labels:
        register(af, label=label)
    seen: list[str] = []
    token: str | None = None
    while True:
        page = af.list_connectors(maxResults=2, **({"nextToken": token} if token else {}))
        seen += [c["connectorLabel"] for c in page["connectors"]]
        assert "connectorArn" not in page["connectors"][0]
        token = page.get("nextToken")
        if not token:
            break
    assert seen == labels


def test_connector_quota_answers_service_quota_exceeded(aws: AwsHandle, af: Any) -> None:
    aws.configure(quotas={"connectors_per_region": 1})
    register(af)
    assert code_of(lambda: register(af, label="second")) == ("ServiceQuotaExceededException", 402)


def test_access_denied_and_throttling_are_the_modelled_errors(aws: AwsHandle, af: Any) -> None:
    aws.configure(access_denied=["RegisterConnector"], throttle={"appflow:ListConnectors": 1})
    assert code_of(lambda: register(af)) == ("AccessDeniedException", 403)
    af.list_connectors()
    assert code_of(lambda: af.list_connectors()) == ("ThrottlingException", 429)


def test_a_connector_holds_at_most_fifty_tags(af: Any) -> None:
    arn = register(af)
    af.tag_resource(resourceArn=arn, tags={f"key{i}": "v" for i in range(50)})
    assert code_of(lambda: af.tag_resource(resourceArn=arn, tags={"one-more": "v"})) == (
        "ValidationException",
        400,
    )
    af.tag_resource(resourceArn=arn, tags={"key0": "changed"})
