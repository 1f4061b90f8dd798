"""Each account has its own state: the same names live side by side in two accounts, and one account's
credentials can neither see, list, change nor delete the other's resources.

What the other account gets is what AWS answers: a call naming a resource by its id or label looks it
up in the caller's own account, so it is ResourceNotFoundException; a call naming it by ARN is
authorized against that ARN first, and with no resource-based policy on these resources IAM denies
it: AccessDeniedException.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from q_operator.emulate.aws.testing import AwsHandle
from tests.emulators.aws_support import ACCOUNT, LAMBDA_ARN, error_code

ROLE_A = "arn:aws:iam::111122223333:role/team-a"
ROLE_B = "arn:aws:iam::444455556666:role/team-b"
APP = str(uuid.uuid4())
INSTANCE = "instance-1"
NO_AUTH = {"noAuthConfiguration": {}}


@pytest.fixture()
def tenants(aws: AwsHandle) -> tuple[Callable[[str], Any], Callable[[str], Any]]:
    """Client factories for two accounts, through AssumeRole."""
    aws.configure(assumable_roles=[ROLE_A, ROLE_B])
    sts = aws.client("sts")
    creds_a = sts.assume_role(RoleArn=ROLE_A, RoleSessionName="ns-a")["Credentials"]
    creds_b = sts.assume_role(RoleArn=ROLE_B, RoleSessionName="ns-b")["Credentials"]
    return (
        lambda service: aws.client(service, credentials=creds_a),
        lambda service: aws.client(service, credentials=creds_b),
    )


def code_of(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as raised:
        call()
    return error_code(raised.value)


def test_same_plugin_names_in_two_accounts_are_two_plugins(
    aws: AwsHandle, tenants: tuple[Callable[[str], Any], Callable[[str], Any]]
) -> None:
    a, b = (t("qbusiness") for t in tenants)
    plugin = {"applicationId": APP, "displayName": "jira", "type": "JIRA", "authConfiguration": NO_AUTH}
    in_a = a.create_plugin(clientToken="same-token", **plugin)
    in_b = b.create_plugin(clientToken="same-token", **plugin)  # tokens are per account too
    assert in_a["pluginId"] != in_b["pluginId"]
    assert ":111122223333:" in in_a["pluginArn"] and ":444455556666:" in in_b["pluginArn"]
    assert [p["pluginId"] for p in a.list_plugins(applicationId=APP)["plugins"]] == [in_a["pluginId"]]
    assert [p["pluginId"] for p in b.list_plugins(applicationId=APP)["plugins"]] == [in_b["pluginId"]]
    ids = {"applicationId": APP, "pluginId": in_a["pluginId"]}
    assert code_of(lambda: b.get_plugin(**ids)) == "ResourceNotFoundException"
    assert code_of(lambda: b.update_plugin(displayName="taken", **ids)) == "ResourceNotFoundException"
    assert code_of(lambda: b.delete_plugin(**ids)) == "ResourceNotFoundException"
    arn = in_a["pluginArn"]
    assert code_of(lambda: b.list_tags_for_resource(resourceARN=arn)) == "AccessDeniedException"
    assert code_of(lambda: b.tag_resource(resourceARN=arn, tags=[{"key": "k", "value": "v"}])) == (
        "AccessDeniedException"
    )
    assert code_of(lambda: b.untag_resource(resourceARN=arn, tagKeys=["k"])) == "AccessDeniedException"
    assert a.get_plugin(**ids)["displayName"] == "jira"  # untouched
    base = aws.client("qbusiness")  # the default account sees neither
    assert base.list_plugins(applicationId=APP)["plugins"] == []
    state = aws.state()
    assert {k for k, v in state.items() if v["plugins"]} == {
        "111122223333/us-east-1",
        "444455556666/us-east-1",
    }


def test_same_library_items_in_two_accounts_are_two_items(
    tenants: tuple[Callable[[str], Any], Callable[[str], Any]],
) -> None:
    a, b = (t("qapps") for t in tenants)
    app_id = str(uuid.uuid4())
    item_a = a.create_library_item(instanceId=INSTANCE, appId=app_id, appVersion=1, categories=[])[
        "libraryItemId"
    ]
    item_b = b.create_library_item(instanceId=INSTANCE, appId=app_id, appVersion=1, categories=[])[
        "libraryItemId"
    ]
    assert [i["libraryItemId"] for i in a.list_library_items(instanceId=INSTANCE)["libraryItems"]] == [item_a]
    assert [i["libraryItemId"] for i in b.list_library_items(instanceId=INSTANCE)["libraryItems"]] == [item_b]
    ids = {"instanceId": INSTANCE, "libraryItemId": item_a}
    assert code_of(lambda: b.get_library_item(**ids)) == "ResourceNotFoundException"
    assert code_of(lambda: b.update_library_item(status="DISABLED", **ids)) == "ResourceNotFoundException"
    assert code_of(lambda: b.delete_library_item(**ids)) == "ResourceNotFoundException"
    assert a.get_library_item(**ids)["status"] == "PUBLISHED"
    assert a.get_library_item(**ids)["createdBy"].endswith(":ns-a")


def test_same_connector_label_in_two_accounts_is_two_connectors(
    tenants: tuple[Callable[[str], Any], Callable[[str], Any]],
) -> None:
    a, b = (t("appflow") for t in tenants)
    config = {"lambda": {"lambdaArn": LAMBDA_ARN}}
    arn_a = a.register_connector(connectorLabel="inventory", connectorProvisioningConfig=config)[
        "connectorArn"
    ]
    arn_b = b.register_connector(connectorLabel="inventory", connectorProvisioningConfig=config)[
        "connectorArn"
    ]
    assert arn_a == "arn:aws:appflow:us-east-1:111122223333:connector/inventory"
    assert arn_b == "arn:aws:appflow:us-east-1:444455556666:connector/inventory"
    b.unregister_connector(connectorLabel="inventory")
    assert [c["connectorLabel"] for c in a.list_connectors()["connectors"]] == ["inventory"]
    assert b.list_connectors()["connectors"] == []
    assert code_of(
        lambda: b.describe_connector(connectorType="CustomConnector", connectorLabel="inventory")
    ) == ("ResourceNotFoundException")
    assert code_of(lambda: b.update_connector_registration(connectorLabel="inventory", description="x")) == (
        "ResourceNotFoundException"
    )
    assert code_of(lambda: b.unregister_connector(connectorLabel="inventory")) == "ResourceNotFoundException"
    assert code_of(lambda: b.tag_resource(resourceArn=arn_a, tags={"k": "v"})) == "AccessDeniedException"
    assert code_of(lambda: b.list_tags_for_resource(resourceArn=arn_a)) == "AccessDeniedException"
    assert (
        a.describe_connector(connectorType="CustomConnector", connectorLabel="inventory")[
            "connectorConfiguration"
        ]["connectorArn"]
        == arn_a
    )


def test_base_credentials_act_in_the_default_account(aws: AwsHandle) -> None:
    arn = aws.client("appflow").register_connector(
        connectorLabel="c1", connectorProvisioningConfig={"lambda": {"lambdaArn": LAMBDA_ARN}}
    )["connectorArn"]
    assert f":{ACCOUNT}:" in arn
    assert aws.requests()[-1]["account"] == ACCOUNT


def test_rate_limits_are_per_account(
    aws: AwsHandle, tenants: tuple[Callable[[str], Any], Callable[[str], Any]]
) -> None:
    a, b = (t("appflow") for t in tenants)
    aws.configure(throttle={"ListConnectors": 1})
    a.list_connectors()
    b.list_connectors()  # its own bucket: AWS's quotas are per account
    assert code_of(a.list_connectors) == "ThrottlingException"
