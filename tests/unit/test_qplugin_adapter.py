"""The QPlugin adapter's pure pieces and its calls, against botocore's Stubber (no network).

The end-to-end behaviour (builds, retries, crash recovery) is proved against the stand-ins elsewhere;
here: phase mapping, diff and tag diff, union serialization, payload handling and which API members
each verb sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from q_operator.kinds import common, qplugin
from q_operator.kinds.base import OWNER_TAG, ClientToken, NotFoundError, Observation, Owner, Phase, Resolved
from q_operator.kinds.qplugin import PAYLOAD_HASH_TAG, QPluginAdapter, QPluginSpec

APP = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
PLUGIN = "0123abcd-0123-4567-89ab-0123456789ab"
ARN = f"arn:aws:qbusiness:us-east-1:123456789012:application/{APP}/plugin/{PLUGIN}"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf"
ROLE = "arn:aws:iam::123456789012:role/r"
PAYLOAD = "openapi: 3.0.0\ninfo: {title: W, version: '1'}\npaths: {}\n"
OWNER = Owner(uid="uid-1", namespace="default", name="weather")
REF = {"applicationId": APP, "pluginId": PLUGIN}
NOTHING = Resolved()
CREATED = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


def custom_spec(**changes: Any) -> QPluginSpec:
    data: dict[str, Any] = {
        "applicationId": APP,
        "displayName": "weather",
        "type": "CUSTOM",
        "authConfiguration": {"noAuthConfiguration": {}},
        "customPluginConfiguration": {
            "description": "Weather",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payload": PAYLOAD},
        },
        "tags": {"team": "a"},
    }
    data.update(changes)
    return QPluginSpec.model_validate(data)


def jira_spec(**changes: Any) -> QPluginSpec:
    data: dict[str, Any] = {
        "applicationId": APP,
        "displayName": "jira",
        "type": "JIRA_CLOUD",
        "serverUrl": "https://example.atlassian.net",
        "authConfiguration": {"basicAuthConfiguration": {"secretArn": SECRET, "roleArn": ROLE}},
    }
    data.update(changes)
    return QPluginSpec.model_validate(data)


def aws_plugin(spec: QPluginSpec, **changes: Any) -> dict[str, Any]:
    """GetPlugin's answer for a plugin that matches `spec` (payload not echoed)."""
    plugin: dict[str, Any] = {
        "applicationId": spec.applicationId,
        "pluginId": PLUGIN,
        "displayName": spec.displayName,
        "type": spec.type,
        "authConfiguration": spec.authConfiguration.to_api(),
        "buildStatus": "READY",
        "pluginArn": ARN,
        "state": "ENABLED",
        "createdAt": CREATED,
        "updatedAt": CREATED,
    }
    if spec.serverUrl:
        plugin["serverUrl"] = spec.serverUrl
    if spec.customPluginConfiguration:
        custom = spec.customPluginConfiguration
        plugin["customPluginConfiguration"] = {
            "description": custom.description,
            "apiSchemaType": custom.apiSchemaType,
        }
        if custom.apiSchema.s3:
            plugin["customPluginConfiguration"]["apiSchema"] = {"s3": custom.apiSchema.s3.model_dump()}
    plugin.update(changes)
    return plugin


def tags_of(spec: QPluginSpec, resolved: Resolved = NOTHING) -> dict[str, str]:
    return qplugin.desired_tags(spec, OWNER, resolved)


def diff_of(
    spec: QPluginSpec,
    plugin: dict[str, Any],
    tags: dict[str, str] | None = None,
    resolved: Resolved = NOTHING,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    current = tags_of(spec, resolved) if tags is None else tags
    return qplugin.compute_diff(spec, REF, plugin, current, OWNER, resolved)


# --- pure pieces -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build_status, phase",
    [
        ("READY", Phase.READY),
        ("CREATE_IN_PROGRESS", Phase.IN_PROGRESS),
        ("UPDATE_IN_PROGRESS", Phase.IN_PROGRESS),
        ("DELETE_IN_PROGRESS", Phase.IN_PROGRESS),
        ("CREATE_FAILED", Phase.FAILED),
        ("UPDATE_FAILED", Phase.FAILED),
        ("DELETE_FAILED", Phase.FAILED),
    ],
)
def test_build_status_maps_to_phase(build_status: str, phase: Phase) -> None:
    got, message = qplugin.phase_of(build_status)
    assert got is phase
    assert (build_status in message) == (phase is Phase.FAILED)


def test_an_unknown_build_status_is_waited_on_not_failed() -> None:
    assert qplugin.phase_of("SOMETHING_NEW")[0] is Phase.IN_PROGRESS


def test_auth_union_serializes_only_the_member_set() -> None:
    assert custom_spec().authConfiguration.to_api() == {"noAuthConfiguration": {}}
    oauth = jira_spec(
        authConfiguration={"oAuth2ClientCredentialConfiguration": {"secretArn": SECRET, "roleArn": ROLE}}
    )
    assert oauth.authConfiguration.to_api() == {
        "oAuth2ClientCredentialConfiguration": {"secretArn": SECRET, "roleArn": ROLE}
    }


def test_custom_configuration_sends_the_resolved_configmap_payload() -> None:
    spec = custom_spec(
        customPluginConfiguration={
            "description": "Weather",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payloadFrom": {"configMapKeyRef": {"name": "cm", "key": "openapi.yaml"}}},
        }
    )
    resolved = Resolved(values={qplugin.PAYLOAD_FROM_PATH: PAYLOAD})
    api = qplugin.custom_config_to_api(spec, resolved)
    assert api == {
        "description": "Weather",
        "apiSchemaType": "OPEN_API_V3",
        "apiSchema": {"payload": PAYLOAD},
    }


def test_an_unresolved_configmap_payload_names_the_field() -> None:
    spec = custom_spec(
        customPluginConfiguration={
            "description": "Weather",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payloadFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        }
    )
    with pytest.raises(NotFoundError) as caught:
        qplugin.custom_config_to_api(spec, NOTHING)
    assert caught.value.field == "spec.customPluginConfiguration.apiSchema.payloadFrom"


def test_the_payload_never_shows_in_the_spec_repr() -> None:
    assert PAYLOAD not in repr(custom_spec())
    assert PAYLOAD not in str(custom_spec().model_dump())


def test_desired_tags_add_the_owner_mark_and_payload_hash() -> None:
    tags = tags_of(custom_spec())
    assert tags["team"] == "a"
    assert tags[OWNER_TAG] == OWNER.mark
    assert tags[PAYLOAD_HASH_TAG] == qplugin.payload_hash(PAYLOAD)
    assert PAYLOAD_HASH_TAG not in tags_of(jira_spec())


def test_tag_changes_set_changed_and_remove_missing_but_never_the_owner_tag() -> None:
    current = {"a": "1", "b": "2", "gone": "x", OWNER_TAG: "someone"}
    to_set, to_remove = common.tag_changes(current, {"a": "1", "b": "3", "new": ""})
    assert to_set == {"b": "3", "new": ""}
    assert to_remove == ["gone"]


@pytest.mark.parametrize(
    "reason, spec, plugin_changes, tags, expected",
    [
        ("in sync", jira_spec(), {}, None, ((), ())),
        ("renamed", jira_spec(displayName="jira2"), {"displayName": "jira"}, None, (("displayName",), ())),
        (
            "new server url",
            jira_spec(),
            {"serverUrl": "https://old.atlassian.net"},
            None,
            (("serverUrl",), ()),
        ),
        (
            "unset server url is not managed",
            custom_spec(),
            {"serverUrl": "https://x.example.com"},
            None,
            ((), ()),
        ),
        (
            "auth member switched",
            jira_spec(),
            {
                "authConfiguration": {
                    "oAuth2ClientCredentialConfiguration": {"secretArn": SECRET, "roleArn": ROLE}
                }
            },
            None,
            (("authConfiguration",), ()),
        ),
        ("state wanted", jira_spec(state="DISABLED"), {}, None, (("state",), ())),
        ("unset state is not managed", jira_spec(), {"state": "DISABLED"}, None, ((), ())),
        ("type changed", jira_spec(), {"type": "JIRA"}, None, ((), ("type",))),
        ("application changed", jira_spec(), {"applicationId": "b" * 36}, None, ((), ("applicationId",))),
        ("tag missing", jira_spec(tags={"team": "a"}), {}, {OWNER_TAG: OWNER.mark}, (("tags",), ())),
        ("foreign tag present", jira_spec(), {}, {OWNER_TAG: OWNER.mark, "x": "y"}, (("tags",), ())),
    ],
)
def test_diff(
    reason: str,
    spec: QPluginSpec,
    plugin_changes: dict[str, Any],
    tags: dict[str, str] | None,
    expected: tuple[tuple[str, ...], tuple[str, ...]],
) -> None:
    assert diff_of(spec, aws_plugin(spec, **plugin_changes), tags) == expected, reason


def test_a_changed_payload_is_noticed_through_the_hash_tag_when_aws_does_not_echo_it() -> None:
    spec = custom_spec()
    old_tags = {**tags_of(spec), PAYLOAD_HASH_TAG: qplugin.payload_hash("old document")}
    assert diff_of(spec, aws_plugin(spec), old_tags) == (("customPluginConfiguration", "tags"), ())


def test_an_echoed_payload_is_compared_directly() -> None:
    spec = custom_spec()
    echoed = aws_plugin(spec)
    echoed["customPluginConfiguration"]["apiSchema"] = {"payload": PAYLOAD}
    assert diff_of(spec, echoed) == ((), ())
    echoed["customPluginConfiguration"]["apiSchema"] = {"payload": "other"}
    assert diff_of(spec, echoed)[0] == ("customPluginConfiguration",)


def test_an_adopted_plugin_without_hash_gets_its_payload_sent_once() -> None:
    spec = custom_spec()
    tags = {k: v for k, v in tags_of(spec).items() if k != PAYLOAD_HASH_TAG}
    assert "customPluginConfiguration" in diff_of(spec, aws_plugin(spec), tags)[0]


def test_a_configmap_change_reaches_the_diff() -> None:
    spec = custom_spec(
        customPluginConfiguration={
            "description": "Weather",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payloadFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        }
    )
    before = Resolved(values={qplugin.PAYLOAD_FROM_PATH: PAYLOAD})
    after = Resolved(values={qplugin.PAYLOAD_FROM_PATH: PAYLOAD + "# edited\n"})
    tags_then = tags_of(spec, before)
    assert diff_of(spec, aws_plugin(spec), tags_then, before) == ((), ())
    assert "customPluginConfiguration" in diff_of(spec, aws_plugin(spec), tags_then, after)[0]


def test_an_unresolved_configmap_payload_is_not_compared_so_deletion_never_waits_on_it() -> None:
    """While deleting, the engine resolves nothing (the ConfigMap may already be gone): observe must
    still work, comparing everything but the payload."""
    spec = custom_spec(
        customPluginConfiguration={
            "description": "Weather",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payloadFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}},
        }
    )
    resolved = Resolved(values={qplugin.PAYLOAD_FROM_PATH: PAYLOAD})
    tags_then = tags_of(spec, resolved)
    assert diff_of(spec, aws_plugin(spec), tags_then, NOTHING) == ((), ())
    renamed = aws_plugin(spec, displayName="other")
    assert diff_of(spec, renamed, tags_then, NOTHING)[0] == ("displayName",)


def test_outputs_are_strings_with_rfc3339_times() -> None:
    spec = jira_spec()
    outputs = qplugin.outputs_of(aws_plugin(spec), REF)
    assert outputs == {
        "applicationId": APP,
        "pluginId": PLUGIN,
        "pluginArn": ARN,
        "buildStatus": "READY",
        "state": "ENABLED",
        "createdAt": "2026-11-23T10:00:00Z",
        "updatedAt": "2026-11-23T10:00:00Z",
    }


# --- calls, against the Stubber --------------------------------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[QPluginAdapter, Stubber]]:
    client = boto3.client(
        "qbusiness", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    )
    with Stubber(client) as stubber:
        yield QPluginAdapter(client), stubber
        stubber.assert_no_pending_responses()


def not_found(stubber: Stubber, operation: str, resource_type: str, resource_id: str) -> None:
    stubber.add_client_error(
        operation,
        service_error_code="ResourceNotFoundException",
        http_status_code=404,
        modeled_fields={"message": "not found", "resourceId": resource_id, "resourceType": resource_type},
    )


def test_observe_reports_absent_when_get_plugin_says_not_found(
    stubbed: tuple[QPluginAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "get_plugin", "PLUGIN", PLUGIN)
    assert adapter.observe(jira_spec(), REF, OWNER, NOTHING).phase is Phase.ABSENT


def test_observe_reads_plugin_and_tags(stubbed: tuple[QPluginAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    spec = jira_spec(tags={"team": "a"})
    stubber.add_response("get_plugin", aws_plugin(spec), {"applicationId": APP, "pluginId": PLUGIN})
    stubber.add_response(
        "list_tags_for_resource", {"tags": qplugin.tags_to_api(tags_of(spec))}, {"resourceARN": ARN}
    )
    seen = adapter.observe(spec, REF, OWNER, NOTHING)
    assert seen.phase is Phase.READY and seen.up_to_date
    assert seen.owner_mark == OWNER.mark
    assert seen.outputs["pluginArn"] == ARN


def test_observe_mid_build_reads_no_tags_and_says_the_mark_is_unread(
    stubbed: tuple[QPluginAdapter, Stubber],
) -> None:
    """A bulk apply polls each build several times; the engine only waits meanwhile, so the poll is
    one GetPlugin (the Stubber fails on any call it was not given)."""
    adapter, stubber = stubbed
    spec = jira_spec()
    stubber.add_response("get_plugin", aws_plugin(spec, buildStatus="CREATE_IN_PROGRESS"), None)
    seen = adapter.observe(spec, REF, OWNER, NOTHING)
    assert seen.phase is Phase.IN_PROGRESS and seen.owner_mark is None and not seen.owner_mark_read
    assert seen.outputs["pluginArn"] == ARN


def test_observe_of_a_failed_build_carries_a_message_without_the_payload(
    stubbed: tuple[QPluginAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    spec = custom_spec()
    stubber.add_response("get_plugin", aws_plugin(spec, buildStatus="CREATE_FAILED"), None)
    stubber.add_response("list_tags_for_resource", {"tags": qplugin.tags_to_api(tags_of(spec))}, None)
    seen = adapter.observe(spec, REF, OWNER, NOTHING)
    assert seen.phase is Phase.FAILED and "CREATE_FAILED" in seen.message
    assert PAYLOAD not in repr(seen)


def test_create_sends_token_tags_and_config_but_not_state(stubbed: tuple[QPluginAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    spec = custom_spec(state="DISABLED")
    stubber.add_response(
        "create_plugin",
        {"pluginId": PLUGIN, "pluginArn": ARN, "buildStatus": "CREATE_IN_PROGRESS"},
        {
            "applicationId": APP,
            "displayName": "weather",
            "type": "CUSTOM",
            "authConfiguration": {"noAuthConfiguration": {}},
            "customPluginConfiguration": {
                "description": "Weather",
                "apiSchemaType": "OPEN_API_V3",
                "apiSchema": {"payload": PAYLOAD},
            },
            "tags": qplugin.tags_to_api(tags_of(spec)),
            "clientToken": "token-1",
        },
    )
    created = adapter.create(spec, OWNER, ClientToken("token-1"), NOTHING)
    assert created.ref == REF
    assert created.outputs == {
        "applicationId": APP,
        "pluginId": PLUGIN,
        "pluginArn": ARN,
        "buildStatus": "CREATE_IN_PROGRESS",
    }


def test_create_in_a_missing_application_names_application_id(
    stubbed: tuple[QPluginAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "create_plugin", "APPLICATION", APP)
    with pytest.raises(NotFoundError) as caught:
        adapter.create(jira_spec(), OWNER, ClientToken("t"), NOTHING)
    assert caught.value.field == "applicationId"


def test_other_errors_pass_through_unchanged(stubbed: tuple[QPluginAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    stubber.add_client_error("create_plugin", service_error_code="ThrottlingException", http_status_code=429)
    with pytest.raises(ClientError) as caught:
        adapter.create(jira_spec(), OWNER, ClientToken("t"), NOTHING)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"


def test_update_sends_only_the_diffed_members_and_tag_changes(
    stubbed: tuple[QPluginAdapter, Stubber],
) -> None:
    adapter, stubber = stubbed
    spec = jira_spec(displayName="jira2", state="DISABLED", tags={"team": "b"})
    seen = Observation(phase=Phase.READY, outputs={"pluginArn": ARN}, diff=("displayName", "state", "tags"))
    stubber.add_response(
        "update_plugin",
        {},
        {"applicationId": APP, "pluginId": PLUGIN, "displayName": "jira2", "state": "DISABLED"},
    )
    stubber.add_response(
        "list_tags_for_resource",
        {
            "tags": [
                {"key": OWNER_TAG, "value": OWNER.mark},
                {"key": "team", "value": "a"},
                {"key": "x", "value": ""},
            ]
        },
        {"resourceARN": ARN},
    )
    stubber.add_response("tag_resource", {}, {"resourceARN": ARN, "tags": [{"key": "team", "value": "b"}]})
    stubber.add_response("untag_resource", {}, {"resourceARN": ARN, "tagKeys": ["x"]})
    adapter.update(spec, REF, seen, OWNER, NOTHING)


def test_update_with_only_tags_does_not_call_update_plugin(stubbed: tuple[QPluginAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    spec = jira_spec()
    seen = Observation(phase=Phase.READY, outputs={"pluginArn": ARN}, diff=("tags",))
    stubber.add_response("list_tags_for_resource", {"tags": []}, {"resourceARN": ARN})
    stubber.add_response(
        "tag_resource", {}, {"resourceARN": ARN, "tags": [{"key": OWNER_TAG, "value": OWNER.mark}]}
    )
    adapter.update(spec, REF, seen, OWNER, NOTHING)


def test_delete_of_a_plugin_already_gone_is_done(stubbed: tuple[QPluginAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "delete_plugin", "PLUGIN", PLUGIN)
    adapter.delete(jira_spec(), REF)


def test_find_returns_only_the_plugin_marked_as_ours(stubbed: tuple[QPluginAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    spec = jira_spec()
    other = "ffffffff-0123-4567-89ab-0123456789ab"
    old = "eeeeeeee-0123-4567-89ab-0123456789ab"
    owner = Owner(uid="uid-1", namespace="default", name="weather", create_pending_since=CREATED)
    summary = {"displayName": "jira", "type": "JIRA_CLOUD", "buildStatus": "READY"}
    stubber.add_response(
        "list_plugins",
        {
            "plugins": [
                {**summary, "pluginId": old, "createdAt": CREATED - timedelta(hours=1)},
                {**summary, "pluginId": other, "createdAt": CREATED},
            ],
            "nextToken": "page2",
        },
        {"applicationId": APP, "maxResults": 50},
    )
    other_arn = ARN.replace(PLUGIN, other)
    stubber.add_response("get_plugin", aws_plugin(spec, pluginId=other, pluginArn=other_arn), None)
    stubber.add_response("list_tags_for_resource", {"tags": [{"key": OWNER_TAG, "value": "x.y.z"}]}, None)
    stubber.add_response(
        "list_plugins",
        {"plugins": [{**summary, "pluginId": PLUGIN, "createdAt": CREATED + timedelta(seconds=1)}]},
        {"applicationId": APP, "maxResults": 50, "nextToken": "page2"},
    )
    stubber.add_response("get_plugin", aws_plugin(spec), {"applicationId": APP, "pluginId": PLUGIN})
    stubber.add_response("list_tags_for_resource", {"tags": [{"key": OWNER_TAG, "value": owner.mark}]}, None)
    found = adapter.find(spec, owner)
    assert found is not None
    assert found.ref == REF and found.owner_mark == owner.mark


def test_find_in_a_missing_application_names_application_id(stubbed: tuple[QPluginAdapter, Stubber]) -> None:
    adapter, stubber = stubbed
    not_found(stubber, "list_plugins", "APPLICATION", APP)
    with pytest.raises(NotFoundError):
        adapter.find(jira_spec(), OWNER)


def test_ref_for_id_uses_the_spec_application() -> None:
    assert QPluginAdapter(client=None).ref_for_id(jira_spec(), PLUGIN) == REF  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes",
    [
        {"type": "JIRA_CLOUD", "serverUrl": "https://example.atlassian.net"},  # root rule
        {
            "customPluginConfiguration": {
                "description": "d",
                "apiSchemaType": "OPEN_API_V3",
                "apiSchema": {"payload": PAYLOAD, "s3": {"bucket": "abc", "key": "k"}},
            }
        },
        {
            "customPluginConfiguration": {
                "description": "",
                "apiSchemaType": "OPEN_API_V3",
                "apiSchema": {"payload": PAYLOAD},
            }
        },
    ],
)
def test_validation_errors_never_quote_the_payload(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as caught:
        custom_spec(**changes)
    assert PAYLOAD not in str(caught.value)
    assert "openapi" not in str(caught.value)


def test_json_dumps_show_a_payload_digest_that_changes_with_the_document() -> None:
    dumped = custom_spec().model_dump_json()
    assert PAYLOAD not in dumped
    assert qplugin.payload_hash(PAYLOAD) in dumped
    other = custom_spec(
        customPluginConfiguration={
            "description": "Weather",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payload": PAYLOAD + "# v2\n"},
        }
    )
    assert other.model_dump(mode="json") != custom_spec().model_dump(mode="json")


def test_find_skips_a_marked_plugin_of_another_type(stubbed: tuple[QPluginAdapter, Stubber]) -> None:
    """While a type change replaces a plugin, the old one carries the same owner mark."""
    adapter, stubber = stubbed
    spec = jira_spec()
    stubber.add_response(
        "list_plugins",
        {"plugins": [{"pluginId": PLUGIN, "displayName": "jira", "type": "JIRA", "createdAt": CREATED}]},
        {"applicationId": APP, "maxResults": 50},
    )
    assert adapter.find(spec, OWNER) is None
