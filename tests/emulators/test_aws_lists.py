"""List calls as an operator that observes by List pages relies on them: the model's summary members,
paging followed to the end (also across creates, deletes and throttled pages), the page-size bounds
of the model, which calls move updatedAt, and the plugins-per-application quota."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from q_operator.emulate.aws.server import parse_args
from q_operator.emulate.aws.testing import AwsHandle
from q_operator.sandbox import wait_for
from tests.emulators.aws_support import LAMBDA_ARN, error_code

NO_AUTH = {"noAuthConfiguration": {}}
INSTANCE = "instance-1"


def summary_members(service: str, operation: str, list_member: str) -> set[str]:
    model = botocore.session.get_session().get_service_model(service)
    return set(model.operation_model(operation).output_shape.members[list_member].member.members)


def raw_items(client: Any, operation: str, list_member: str, **params: Any) -> list[dict[str, Any]]:
    """The list as it came over the wire (boto3 would drop members the model does not have)."""
    seen: list[bytes] = []

    def keep(http_response: Any, **_: Any) -> None:
        seen.append(http_response.content)

    event = f"after-call.{client.meta.service_model.service_name}.{operation}"
    client.meta.events.register(event, keep)
    try:
        getattr(client, botocore.xform_name(operation))(**params)
    finally:
        client.meta.events.unregister(event, keep)
    items: list[dict[str, Any]] = json.loads(seen[0])[list_member]
    return items


def plugin(qb: Any, app: str, name: str = "jira") -> str:
    return str(
        qb.create_plugin(applicationId=app, displayName=name, type="JIRA", authConfiguration=NO_AUTH)[
            "pluginId"
        ]
    )


def item(qa: Any) -> str:
    made = qa.create_library_item(instanceId=INSTANCE, appId=str(uuid.uuid4()), appVersion=1, categories=[])
    return str(made["libraryItemId"])


def connector(af: Any, label: str) -> str:
    config = {"lambda": {"lambdaArn": LAMBDA_ARN}}
    return str(
        af.register_connector(connectorLabel=label, connectorProvisioningConfig=config)["connectorArn"]
    )


def test_list_plugins_answers_exactly_the_plugin_summary(aws: AwsHandle) -> None:
    qb = aws.client("qbusiness")
    app = str(uuid.uuid4())
    qb.create_plugin(
        applicationId=app,
        displayName="jira",
        type="JIRA",
        authConfiguration=NO_AUTH,
        serverUrl="https://j.example",
    )
    (entry,) = raw_items(qb, "ListPlugins", "plugins", applicationId=app)
    assert set(entry) == summary_members("qbusiness", "ListPlugins", "plugins")


def test_list_library_items_answers_the_library_item_member(aws: AwsHandle) -> None:
    qa = aws.client("qapps")
    item(qa)
    (entry,) = raw_items(qa, "ListLibraryItems", "libraryItems", instanceId=INSTANCE)
    assert set(entry) == summary_members("qapps", "ListLibraryItems", "libraryItems")


def test_list_connectors_answers_the_connector_detail(aws: AwsHandle) -> None:
    af = aws.client("appflow")
    af.register_connector(
        connectorLabel="c1",
        description="reads",
        connectorProvisioningConfig={"lambda": {"lambdaArn": LAMBDA_ARN}},
    )
    (entry,) = raw_items(af, "ListConnectors", "connectors")
    # applicationType is left out: AppFlow does not say what it holds for a custom connector.
    assert set(entry) == summary_members("appflow", "ListConnectors", "connectors") - {"applicationType"}


def pages(
    call: Callable[..., dict[str, Any]], member: str, size_name: str, **params: Any
) -> Iterator[list[Any]]:
    token = None
    while True:
        answer = call(**params, **{size_name: 2}, **({"nextToken": token} if token else {}))
        yield answer[member]
        token = answer.get("nextToken")
        if not token:
            return


def test_paging_survives_creates_and_deletes_between_pages(aws: AwsHandle) -> None:
    """A token names the last item returned, so nothing repeats or is skipped when the list moves."""
    af = aws.client("appflow")
    labels = [f"c{i}" for i in range(7)]
    for label in labels:
        connector(af, label)
    seen: list[str] = []
    for number, found in enumerate(pages(af.list_connectors, "connectors", "maxResults")):
        seen.extend(c["connectorLabel"] for c in found)
        if number == 0:
            af.unregister_connector(connectorLabel="c0")  # already listed
            af.unregister_connector(connectorLabel="c5")  # not listed yet
            connector(af, "late")
    assert seen == ["c0", "c1", "c2", "c3", "c4", "c6", "late"]


@pytest.mark.parametrize(
    "service,operation,member,size_name,params",
    [
        ("qbusiness", "list_plugins", "plugins", "maxResults", {"applicationId": "A"}),
        ("qapps", "list_library_items", "libraryItems", "limit", {"instanceId": INSTANCE}),
        ("appflow", "list_connectors", "connectors", "maxResults", {}),
    ],
)
def test_paging_reaches_the_end_of_every_list(
    aws: AwsHandle, service: str, operation: str, member: str, size_name: str, params: dict[str, Any]
) -> None:
    client = aws.client(service)
    app = str(uuid.uuid4())
    params = {k: app if v == "A" else v for k, v in params.items()}
    make = {
        "qbusiness": lambda i: plugin(client, app, f"p{i}"),
        "qapps": lambda i: item(client),
        "appflow": lambda i: connector(client, f"c{i}"),
    }[service]
    made = [make(i) for i in range(5)]
    listed = [
        entry for found in pages(getattr(client, operation), member, size_name, **params) for entry in found
    ]
    key = {"qbusiness": "pluginId", "qapps": "libraryItemId", "appflow": "connectorLabel"}[service]
    ids = [entry[key] for entry in listed]
    assert ids == (made if service != "appflow" else [f"c{i}" for i in range(5)])


@pytest.mark.parametrize(
    "service,operation,size_name,high,params",
    [
        ("qbusiness", "list_plugins", "maxResults", 50, {"applicationId": str(uuid.uuid4())}),
        ("qapps", "list_library_items", "limit", 100, {"instanceId": INSTANCE}),
        ("appflow", "list_connectors", "maxResults", 100, {}),
    ],
)
def test_page_sizes_are_bounded_as_the_model_says(
    aws: AwsHandle, service: str, operation: str, size_name: str, high: int, params: dict[str, Any]
) -> None:
    call = getattr(aws.client(service, parameter_validation=False), operation)
    call(**params, **{size_name: high})
    for bad in (0, high + 1):
        with pytest.raises(ClientError) as raised:
            call(**params, **{size_name: bad})
        assert error_code(raised.value) == "ValidationException"
        assert f"Value at '{size_name}'" in raised.value.response["Error"]["Message"]


def test_a_throttled_page_is_retried_with_its_token_and_paging_resumes(aws: AwsHandle) -> None:
    qb = aws.client("qbusiness")
    app = str(uuid.uuid4())
    made = [plugin(qb, app, f"p{i}") for i in range(6)]
    aws.configure(throttle={"ListPlugins": 4})
    seen: list[str] = []
    throttled = 0
    token: str | None = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            answer = qb.list_plugins(
                applicationId=app, maxResults=1, **({"nextToken": token} if token else {})
            )
        except ClientError as exc:
            assert error_code(exc) == "ThrottlingException"
            throttled += 1
            continue  # same token again
        seen.extend(p["pluginId"] for p in answer["plugins"])
        token = answer.get("nextToken")
        if not token:
            break
    assert seen == made
    assert throttled > 0


def test_update_plugin_moves_updated_at_and_nothing_else_does(aws: AwsHandle) -> None:
    qb = aws.client("qbusiness")
    app = str(uuid.uuid4())
    plugin_id = plugin(qb, app)
    ids = {"applicationId": app, "pluginId": plugin_id}
    first = qb.get_plugin(**ids)
    assert first["updatedAt"] == first["createdAt"]
    wait_for("the build READY", lambda: qb.get_plugin(**ids)["buildStatus"] == "READY")
    qb.tag_resource(resourceARN=first["pluginArn"], tags=[{"key": "team", "value": "a"}])
    ready = qb.get_plugin(**ids)
    assert ready["updatedAt"] == first["updatedAt"]  # neither the build's end nor tags move it
    qb.update_plugin(state="DISABLED", **ids)
    updated = qb.get_plugin(**ids)
    assert updated["updatedAt"] > first["updatedAt"]
    (summary,) = qb.list_plugins(applicationId=app)["plugins"]
    assert (summary["updatedAt"], summary["state"]) == (updated["updatedAt"], "DISABLED")


def test_library_item_updates_move_updated_at_but_reviews_do_not(aws: AwsHandle) -> None:
    qa = aws.client("qapps")
    item_id = item(qa)
    ids = {"instanceId": INSTANCE, "libraryItemId": item_id}
    first = qa.get_library_item(**ids)
    assert first["updatedAt"] == first["createdAt"]
    qa.associate_library_item_review(**ids)
    assert qa.get_library_item(**ids)["updatedAt"] == first["updatedAt"]
    wait_for(
        "the clock past the first updatedAt", lambda: time.time() > first["updatedAt"].timestamp() + 0.01
    )
    qa.update_library_item_metadata(isVerified=True, **ids)
    verified = qa.get_library_item(**ids)
    assert verified["updatedAt"] > first["updatedAt"]
    wait_for(
        "the clock past the verified updatedAt",
        lambda: time.time() > verified["updatedAt"].timestamp() + 0.01,
    )
    qa.update_library_item(status="DISABLED", **ids)
    (summary,) = qa.list_library_items(instanceId=INSTANCE)["libraryItems"]
    assert summary["updatedAt"] > verified["updatedAt"] and summary["status"] == "DISABLED"


def test_a_connector_update_moves_its_version_not_its_registration_time(aws: AwsHandle) -> None:
    af = aws.client("appflow")
    connector(af, "c1")
    (before,) = af.list_connectors()["connectors"]
    af.update_connector_registration(connectorLabel="c1", description="v2")
    (after,) = af.list_connectors()["connectors"]
    assert after["registeredAt"] == before["registeredAt"]
    assert after["connectorVersion"] != before["connectorVersion"]
    assert after["connectorDescription"] == "v2"


def test_the_plugin_quota_is_25_per_application_and_settable(aws: AwsHandle) -> None:
    qb = aws.client("qbusiness")
    app = str(uuid.uuid4())
    for i in range(25):
        plugin(qb, app, f"p{i}")
    with pytest.raises(ClientError) as raised:
        plugin(qb, app, "p25")
    assert error_code(raised.value) == "ServiceQuotaExceededException"
    plugin(qb, str(uuid.uuid4()), "other-application")
    aws.configure(quotas={"plugins_per_application": 26})
    plugin(qb, app, "p25")
    settings, _ = parse_args(["--plugins-per-application", "1000"])
    assert settings.to_json()["quotas"]["plugins_per_application"] == 1000
    assert parse_args([])[0].to_json()["quotas"]["plugins_per_application"] == 25
