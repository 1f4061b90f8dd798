"""qbusiness plugins through boto3: CRUD, asynchronous builds, failures, idempotency, tags, paging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from q_operator.emulate.aws.testing import AwsHandle
from q_operator.sandbox import wait_for
from tests.emulators.aws_support import ACCOUNT, error_code, new_id

NO_AUTH = {"noAuthConfiguration": {}}


@pytest.fixture()
def qb(client: Callable[..., Any]) -> Any:
    return client("qbusiness")


def create(qb: Any, app: str, name: str = "jira-plugin", **extra: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "applicationId": app,
        "displayName": name,
        "type": "JIRA",
        "authConfiguration": NO_AUTH,
        "serverUrl": "https://jira.example.com",
        **extra,
    }
    result: dict[str, Any] = qb.create_plugin(**params)
    return result


def build_status(qb: Any, app: str, plugin_id: str) -> str:
    return str(qb.get_plugin(applicationId=app, pluginId=plugin_id)["buildStatus"])


def test_create_builds_asynchronously_then_is_ready(qb: Any) -> None:
    app = new_id()
    created = create(qb, app)
    assert created["buildStatus"] == "CREATE_IN_PROGRESS"
    assert created["pluginArn"] == (
        f"arn:aws:qbusiness:us-east-1:{ACCOUNT}:application/{app}/plugin/{created['pluginId']}"
    )
    wait_for(
        "the build", lambda: build_status(qb, app, created["pluginId"]) == "READY", timeout=5, interval=0.02
    )
    got = qb.get_plugin(applicationId=app, pluginId=created["pluginId"])
    assert got["displayName"] == "jira-plugin"
    assert got["type"] == "JIRA"
    assert got["authConfiguration"] == NO_AUTH
    assert got["state"] == "ENABLED"
    assert got["createdAt"].timestamp() > 0


def test_update_rebuilds_and_changes_only_given_members(qb: Any) -> None:
    app = new_id()
    plugin = create(qb, app)["pluginId"]
    wait_for("the build", lambda: build_status(qb, app, plugin) == "READY", timeout=5, interval=0.02)
    qb.update_plugin(applicationId=app, pluginId=plugin, displayName="renamed", state="DISABLED")
    got = qb.get_plugin(applicationId=app, pluginId=plugin)
    assert got["buildStatus"] == "UPDATE_IN_PROGRESS"
    assert (got["displayName"], got["state"], got["serverUrl"]) == (
        "renamed",
        "DISABLED",
        "https://jira.example.com",
    )
    wait_for("the build", lambda: build_status(qb, app, plugin) == "READY", timeout=5, interval=0.02)


def test_update_while_building_is_a_conflict(qb: Any) -> None:
    app = new_id()
    plugin = create(qb, app)["pluginId"]
    with pytest.raises(ClientError) as raised:
        qb.update_plugin(applicationId=app, pluginId=plugin, displayName="other")
    assert error_code(raised.value) == "ConflictException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert raised.value.response["resourceId"] == plugin
    assert raised.value.response["resourceType"] == "Plugin"


def test_delete_goes_through_delete_in_progress_then_the_plugin_is_gone(qb: Any) -> None:
    app = new_id()
    plugin = create(qb, app)["pluginId"]
    wait_for("the build", lambda: build_status(qb, app, plugin) == "READY", timeout=5, interval=0.02)
    qb.delete_plugin(applicationId=app, pluginId=plugin)
    assert build_status(qb, app, plugin) == "DELETE_IN_PROGRESS"
    qb.delete_plugin(applicationId=app, pluginId=plugin)  # a repeated delete is accepted

    def gone() -> bool:
        try:
            qb.get_plugin(applicationId=app, pluginId=plugin)
        except ClientError as exc:
            return error_code(exc) == "ResourceNotFoundException"
        return False

    wait_for("the plugin to go", gone, timeout=5, interval=0.02)
    assert qb.list_plugins(applicationId=app)["plugins"] == []


@pytest.mark.parametrize("kind", ["CREATE", "UPDATE", "DELETE"])
def test_builds_can_be_made_to_fail(aws: AwsHandle, qb: Any, kind: str) -> None:
    app = new_id()
    aws.configure(fail_builds_matching="^doomed", fail_build_kinds=[kind])
    plugin = create(qb, app, name="doomed-plugin")["pluginId"]
    if kind != "CREATE":
        wait_for("the build", lambda: build_status(qb, app, plugin) == "READY", timeout=5, interval=0.02)
        if kind == "UPDATE":
            qb.update_plugin(applicationId=app, pluginId=plugin, serverUrl="https://other.example.com")
        else:
            qb.delete_plugin(applicationId=app, pluginId=plugin)
    wait_for("the build", lambda: build_status(qb, app, plugin) == f"{kind}_FAILED", timeout=5, interval=0.02)


def test_fail_next_builds_fails_that_many_builds_then_stops(aws: AwsHandle, qb: Any) -> None:
    app = new_id()
    aws.configure(fail_next_builds=1)
    first = create(qb, app, name="first")["pluginId"]
    second = create(qb, app, name="second")["pluginId"]
    wait_for("the build", lambda: build_status(qb, app, first) == "CREATE_FAILED", timeout=5, interval=0.02)
    wait_for("the build", lambda: build_status(qb, app, second) == "READY", timeout=5, interval=0.02)


def test_same_client_token_and_input_returns_the_first_result_and_creates_nothing(qb: Any) -> None:
    app = new_id()
    first = create(qb, app, clientToken="token-1")
    again = create(qb, app, clientToken="token-1")
    assert again["pluginId"] == first["pluginId"]
    assert len(qb.list_plugins(applicationId=app)["plugins"]) == 1


def test_same_client_token_with_different_input_is_a_conflict(qb: Any) -> None:
    app = new_id()
    create(qb, app, clientToken="token-1")
    with pytest.raises(ClientError) as raised:
        create(qb, app, name="another-name", clientToken="token-1")
    assert error_code(raised.value) == "ConflictException"
    assert len(qb.list_plugins(applicationId=app)["plugins"]) == 1


def test_tags_on_create_and_through_tag_untag_are_a_list_of_key_value(qb: Any) -> None:
    app = new_id()
    arn = create(qb, app, tags=[{"key": "q-operator.dev/owner", "value": "ns/name"}])["pluginArn"]
    qb.tag_resource(resourceARN=arn, tags=[{"key": "team", "value": "blue"}, {"key": "env", "value": "dev"}])
    qb.untag_resource(resourceARN=arn, tagKeys=["env", "absent"])
    assert qb.list_tags_for_resource(resourceARN=arn)["tags"] == [
        {"key": "q-operator.dev/owner", "value": "ns/name"},
        {"key": "team", "value": "blue"},
    ]


def test_tagging_an_unknown_arn_is_resource_not_found(qb: Any) -> None:
    arn = f"arn:aws:qbusiness:us-east-1:{ACCOUNT}:application/{new_id()}/plugin/{new_id()}"
    for call in (
        lambda: qb.tag_resource(resourceARN=arn, tags=[{"key": "a", "value": "b"}]),
        lambda: qb.untag_resource(resourceARN=arn, tagKeys=["a"]),
        lambda: qb.list_tags_for_resource(resourceARN=arn),
    ):
        with pytest.raises(ClientError) as raised:
            call()
        assert error_code(raised.value) == "ResourceNotFoundException"
        assert raised.value.response["resourceId"] == arn


def test_list_pages_with_max_results_and_next_token(qb: Any) -> None:
    app = new_id()
    made = [create(qb, app, name=f"p{i}")["pluginId"] for i in range(5)]
    first = qb.list_plugins(applicationId=app, maxResults=2)
    assert len(first["plugins"]) == 2 and first["nextToken"]
    pages = qb.get_paginator("list_plugins").paginate(applicationId=app, PaginationConfig={"PageSize": 2})
    seen = [p["pluginId"] for page in pages for p in page["plugins"]]
    assert seen == made


def test_unknown_plugin_is_resource_not_found_and_other_applications_are_separate(qb: Any) -> None:
    app = new_id()
    plugin = create(qb, app)["pluginId"]
    with pytest.raises(ClientError) as raised:
        qb.get_plugin(applicationId=new_id(), pluginId=plugin)
    assert error_code(raised.value) == "ResourceNotFoundException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert raised.value.response["resourceType"] == "Plugin"


def test_known_applications_make_others_not_found(aws: AwsHandle, qb: Any) -> None:
    known = new_id()
    aws.configure(known_applications=[known])
    create(qb, known)
    with pytest.raises(ClientError) as raised:
        create(qb, new_id())
    assert error_code(raised.value) == "ResourceNotFoundException"
    assert raised.value.response["resourceType"] == "Application"


def test_plugin_quota_answers_service_quota_exceeded(aws: AwsHandle, qb: Any) -> None:
    app = new_id()
    aws.configure(quotas={"plugins_per_application": 1})
    create(qb, app)
    with pytest.raises(ClientError) as raised:
        create(qb, app, name="second")
    assert error_code(raised.value) == "ServiceQuotaExceededException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402
    assert raised.value.response["resourceId"] == app


def test_access_denied_is_answered_for_configured_operations(aws: AwsHandle, qb: Any) -> None:
    aws.configure(access_denied=["qbusiness:DeletePlugin"])
    with pytest.raises(ClientError) as raised:
        qb.delete_plugin(applicationId=new_id(), pluginId=new_id())
    assert error_code(raised.value) == "AccessDeniedException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_regions_keep_separate_state(aws: AwsHandle, client: Callable[..., Any], qb: Any) -> None:
    app = new_id()
    plugin = create(qb, app)["pluginId"]
    west = client("qbusiness", region="us-west-2")
    assert west.list_plugins(applicationId=app)["plugins"] == []
    with pytest.raises(ClientError):
        west.get_plugin(applicationId=app, pluginId=plugin)
    assert aws.requests()[-1]["region"] == "us-west-2"


def test_plugin_type_metadata_lists_every_modelled_type(qb: Any) -> None:
    pages = qb.get_paginator("list_plugin_type_metadata").paginate(PaginationConfig={"PageSize": 5})
    types = [item["type"] for page in pages for item in page["items"]]
    assert len(types) == 17 and "CUSTOM" in types and "ASANA" in types
