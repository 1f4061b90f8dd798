"""One home for the per-kind facts of the tests.

What a kind *is* (its names, plural path, ID and ARN status fields, AWS service, IAM actions, sample)
comes from `q_operator.registry`; this module adds only what the tests need and the registry has no
business knowing: a valid spec to start from, a change AWS applies in place, how the AWS stand-in's
state shows the kind's resources, the operations the reliability suite and the bench aim at, the
out-of-band calls a user would make with boto3, and the specs its CRD refuses and the fields
`kubectl explain` must describe. The end-to-end suite, the reliability suite and the
bench all read it; a new kind adds one `KindFacts` entry (and its functions) here.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from q_operator.kinds.base import OWNER_TAG, KindInfo
from q_operator.registry import KINDS

ACCOUNT_ID = "123456789012"
APPLICATION_ID = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"
INSTANCE_ID = "0f9a3c2e-1b4d-4c6e-8a7f-2d3e4f5a6b7c"
CATEGORY_ID = "3e4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7"
OPENAPI = json.dumps(
    {
        "openapi": "3.0.0",
        "info": {"title": "Orders", "version": "1.0"},
        "paths": {
            "/orders": {"get": {"operationId": "listOrders", "responses": {"200": {"description": "ok"}}}}
        },
    }
)
#: The reliability suite's OpenAPI document (its operationId differs; kept so its runs stay comparable).
RELIABILITY_OPENAPI = json.dumps(
    {
        "openapi": "3.0.0",
        "info": {"title": "Orders", "version": "1.0"},
        "paths": {"/orders": {"get": {"operationId": "list", "responses": {"200": {"description": "ok"}}}}},
    }
)
LAMBDA_PREFIX = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:"

Spec = dict[str, Any]
Manifest = dict[str, Any]


@dataclass(frozen=True)
class AwsResource:
    """One resource the AWS stand-in holds, in the terms the tests compare (see `KindFacts.resource`)."""

    kind: str
    id: str
    owner_tag: str | None
    #: the key under which the service knows it apart from its ID (see `KindFacts.natural_key`).
    natural_key: tuple[str, ...]
    detail: str
    #: the members a spec sets that the audit compares (see `KindFacts.desired`).
    fields: Mapping[str, Any] = field(default_factory=dict)
    arn: str | None = None
    #: when AWS made it (the stand-in's clock, seconds since the epoch).
    created_at: float = 0.0
    #: the AWS account it lives in (the stand-in keeps each account's state apart).
    account: str = ACCOUNT_ID


@dataclass(frozen=True)
class Clash:
    """Two namespaces asking for one AWS resource (the reliability suite's name-clash scenario)."""

    #: spec overrides that make two objects ask for the same resource; `label` tells rounds apart.
    spec: Callable[[str], Spec]
    #: what the second object ends as: "Ready" (it gets a resource of its own) or the refusal reason.
    second: str
    #: how many of two racing objects may end Ready.
    winners: tuple[int, ...]


@dataclass(frozen=True)
class Refused:
    """A spec the CRD refuses at apply time (its schema or a CEL rule), and what the API server's answer
    must say: the user learns the field from kubectl, and nothing reaches the operator or AWS."""

    what: str
    #: spec overrides, as `KindFacts.manifest` takes them (None removes a field).
    spec: Mapping[str, Any]
    #: what the refusal must contain, the field's path first.
    says: tuple[str, ...]
    #: the object's name, when the name is what a rule is about.
    name: str = "refused"


@dataclass(frozen=True)
class KindFacts:
    """A registered kind plus what only the tests need to know about it."""

    info: KindInfo[Any, Any]
    #: a valid spec for `name` in `namespace`, reproducible from the two and unique to them: the
    #: reliability suite's and the registry-wide end-to-end tests' starting point.
    spec: Callable[[str, str], Spec]
    #: a spec change AWS applies in place (an update, never a replacement); `round_` varies it.
    change: Callable[[Spec, str, int], None]
    #: the key of the kind's resources in each region of the AWS stand-in's /_emulator/state.
    state_key: str
    #: one record of that list, as an AwsResource.
    resource: Callable[[Mapping[str, Any]], AwsResource]
    #: the natural key of the resource an object asks for, as `AwsResource.natural_key` spells it.
    natural_key: Callable[[Mapping[str, Any]], tuple[str, ...]]
    #: what the AWS resource of a Ready object must show, in `AwsResource.fields` terms.
    desired: Callable[[Spec], dict[str, Any]]
    #: API operations (as the stand-in logs them) that create, update and delete the resource.
    create_op: str
    update_op: str
    delete_op: str
    #: AWS calls of one observe (a drift check).
    observe_calls: int
    #: the operations of one observe, and the List call a sweep makes (list mode), as the stand-in logs them.
    observe_ops: tuple[str, ...]
    list_op: str
    #: the fewest AWS calls that take one object from `kubectl apply` to Ready with no fault.
    min_create_calls: int
    #: whether AWS builds the resource asynchronously (the stand-in's --build-seconds applies).
    builds: bool
    #: calls per second AWS allows, per operation ("service:Operation"), for the bench.
    quotas: Mapping[str, float]
    #: an out-of-band change and deletion, made with boto3 as a user would (client, status).
    change_by_hand: Callable[[Any, Mapping[str, Any]], None]
    delete_by_hand: Callable[[Any, Mapping[str, Any]], None]
    #: create the resource a spec describes with boto3, as a user would; returns its ID (id_field).
    make_by_hand: Callable[[Any, Spec], str]
    #: every resource under a parent (the List call's members), listed with boto3 as a user would,
    #: page by page to the end: (client, parent) -> the List call's summaries.
    list_by_hand: Callable[[Any, Mapping[str, Any]], list[dict[str, Any]]]
    #: AWS stand-in settings under which the kind's dependency does not exist, and their reset.
    missing_dependency: Mapping[str, Any]
    dependency_reset: Mapping[str, Any]
    #: stand-in settings that make deletes of objects named `pattern` fail for a while, and whether
    #: the object then shows Synced=False/DeleteFailed (a failed delete build) rather than a 5xx.
    failing_delete: Callable[[str], dict[str, Any]]
    delete_failed_reason: bool
    #: stand-in settings that undo `failing_delete` (injected faults run out by themselves).
    failing_delete_reset: Mapping[str, Any]
    clash: Clash
    #: two rounds of changes for the permission proof: an in-place change plus a tag, then tags removed.
    permission_changes: tuple[Spec, Spec]
    #: the bench's i-th object in `namespace`, as (name, spec).
    bench_object: Callable[[str, int], tuple[str, Spec]]
    #: specs the kind's own schema and CEL rules refuse at apply (the end-to-end suite adds the rules
    #: every kind shares: deletionPolicy, unknown fields, the reserved tag prefix).
    refused: tuple[Refused, ...]
    #: fields of the kind's own whose `kubectl explain` must hold a word, as (path, word); the
    #: end-to-end suite adds the fields every kind shares.
    explained: tuple[tuple[str, str], ...]
    #: the spec field whose value names the AWS resource uniquely in its account and region, and
    #: defaults to metadata.name (None: the kind has none).
    name_field: str | None = None
    #: inputs the CRD schema cannot refuse but the model does, or edge cases worth trying first, for the
    #: bad-input property test: lists of (what, path, value) mutations.
    bad_input_examples: tuple[list[tuple[str, tuple[str, ...], Any]], ...] = ()
    #: a spec change AWS cannot apply in place, so the engine replaces the resource (a new one, then
    #: the old one deleted); None when every change of the kind is made in place.
    replacement: Callable[[Spec], None] | None = None

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def plural_path(self) -> str:
        return self.info.plural_path

    @property
    def short(self) -> str:
        return self.info.short_names[0]

    @property
    def tagged(self) -> bool:
        """Whether the resource carries tags (and so the owner mark)."""
        return "tags" in self.info.spec_model.model_fields

    def manifest(self, name: str, namespace: str, **spec: Any) -> Manifest:
        """A valid object; `spec` overrides or adds fields (None removes one)."""
        return build(self.info, name, namespace, self.spec(name, namespace), spec)

    def resources(self, state: Mapping[str, Any]) -> list[AwsResource]:
        """The kind's resources in the AWS stand-in's state (keyed "<account>/<region>"), in every
        account and region."""
        return [
            dataclasses.replace(self.resource(r), account=scope.split("/")[0])
            for scope, held in state.items()
            for r in held.get(self.state_key, [])
        ]


def build(
    info: KindInfo[Any, Any], name: str, namespace: str, body: Spec, changes: Mapping[str, Any]
) -> Manifest:
    """An object of `info`'s kind: `body` with `changes` applied (None removes a field)."""
    spec = dict(body)
    for key, value in changes.items():
        if value is None:
            spec.pop(key, None)
        else:
            spec[key] = value
    return {
        "apiVersion": info.api_version,
        "kind": info.kind,
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def application_for(namespace: str) -> str:
    """One Q Business application per namespace: the plugin quota is per application."""
    return _uuid("application", namespace)


def instance_for(namespace: str) -> str:
    return _uuid("instance", namespace)


def _owner(record: Mapping[str, Any]) -> str | None:
    tag: str | None = (record.get("tags") or {}).get(OWNER_TAG)
    return tag


def _registry(kind: str) -> KindInfo[Any, Any]:
    return next(k for k in KINDS if k.kind == kind)


# ---------------------------------------------------------------------------------------------------
# QPlugin

QPLUGIN_INFO = _registry("QPlugin")
QPLUGINS = QPLUGIN_INFO.plural_path


def qplugin(name: str, namespace: str, **spec: Any) -> Manifest:
    """A valid custom plugin with an inline OpenAPI schema and no auth; `spec` overrides fields."""
    body: Spec = {
        "applicationId": APPLICATION_ID,
        "displayName": name,
        "type": "CUSTOM",
        "authConfiguration": {"noAuthConfiguration": {}},
        "customPluginConfiguration": {
            "description": "Orders API",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payload": OPENAPI},
        },
    }
    return build(QPLUGIN_INFO, name, namespace, body, spec)


def _plugin_spec(name: str, namespace: str) -> Spec:
    return {
        "applicationId": application_for(namespace),
        "displayName": name,
        "type": "CUSTOM",
        "authConfiguration": {"noAuthConfiguration": {}},
        "customPluginConfiguration": {
            "description": "Orders API",
            "apiSchemaType": "OPEN_API_V3",
            "apiSchema": {"payload": RELIABILITY_OPENAPI},
        },
    }


def _plugin(record: Mapping[str, Any]) -> AwsResource:
    name = record["params"].get("displayName")
    return AwsResource(
        "QPlugin",
        record["plugin_id"],
        _owner(record),
        (record["application_id"], str(name)),
        f"plugin {record['plugin_id'][:8]} {name} {record['build_status']}",
        {"displayName": name},
        record.get("arn"),
        float(record.get("created_at", 0.0)),
    )


def _make_plugin(client: Any, spec: Spec) -> str:
    made = client.create_plugin(
        applicationId=spec["applicationId"],
        displayName=spec["displayName"],
        type=spec["type"],
        authConfiguration=spec["authConfiguration"],
        customPluginConfiguration=spec["customPluginConfiguration"],
    )
    return str(made["pluginId"])


def _list_plugins(client: Any, parent: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for page in client.get_paginator("list_plugins").paginate(**parent):
        found.extend(page["plugins"])
    return found


#: AWS allows 25 plugins per Q Business application (the stand-in too): the bench spreads them.
PLUGINS_PER_APPLICATION = 25


def _bench_plugin(namespace: str, i: int) -> tuple[str, Spec]:
    seed = sum(namespace.encode()) << 16
    application = str(uuid.UUID(int=(0xA0 << 120) + seed + i // PLUGINS_PER_APPLICATION))
    name = f"p{i:04d}"
    return name, qplugin(name, namespace, applicationId=application)["spec"]


BASIC_AUTH = {
    "secretArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT_ID}:secret:s",
    "roleArn": f"arn:aws:iam::{ACCOUNT_ID}:role/r",
}

QPLUGIN = KindFacts(
    info=QPLUGIN_INFO,
    spec=_plugin_spec,
    change=lambda spec, name, round_: spec.update(displayName=f"{name}-v{round_ + 1}"),
    state_key="plugins",
    resource=_plugin,
    natural_key=lambda obj: (str(obj["spec"].get("applicationId")), str(obj["spec"].get("displayName"))),
    desired=lambda spec: {"displayName": spec.get("displayName")},
    create_op="CreatePlugin",
    update_op="UpdatePlugin",
    delete_op="DeletePlugin",
    observe_calls=2,  # GetPlugin + ListTagsForResource
    observe_ops=("GetPlugin", "ListTagsForResource"),
    list_op="ListPlugins",
    min_create_calls=3,  # CreatePlugin, then GetPlugin + ListTagsForResource once built
    builds=True,
    quotas={
        "qbusiness:CreatePlugin": 10,
        "qbusiness:GetPlugin": 20,
        "qbusiness:ListTagsForResource": 20,
        "qbusiness:ListPlugins": 10,
        "qbusiness:UpdatePlugin": 10,
        "qbusiness:DeletePlugin": 10,
        "qbusiness:TagResource": 10,
        "qbusiness:UntagResource": 10,
    },
    change_by_hand=lambda client, status: client.update_plugin(
        applicationId=status["applicationId"], pluginId=status["pluginId"], displayName="changed-by-hand"
    ),
    delete_by_hand=lambda client, status: client.delete_plugin(
        applicationId=status["applicationId"], pluginId=status["pluginId"]
    ),
    make_by_hand=_make_plugin,
    list_by_hand=_list_plugins,
    missing_dependency={"known_applications": ["00000000-0000-4000-8000-000000000000"]},
    dependency_reset={"known_applications": None},
    failing_delete=lambda pattern: {"fail_builds_matching": pattern, "fail_build_kinds": ["DELETE"]},
    delete_failed_reason=True,
    failing_delete_reset={"fail_builds_matching": None, "fail_build_kinds": ["CREATE", "UPDATE", "DELETE"]},
    clash=Clash(
        spec=lambda label: {
            "applicationId": "c0ffee00-0000-4000-8000-000000000001",
            "displayName": f"{label}-plugin",
        },
        second="Ready",
        winners=(2,),
    ),
    permission_changes=(
        {"spec": {"displayName": "renamed", "tags": {"changed-by": "permissions-test"}}},
        {"spec": {"tags": None}},
    ),
    bench_object=_bench_plugin,
    refused=(
        Refused("a display name with a space", {"displayName": "has space"}, ("spec.displayName",)),
        Refused(
            "two auth members",
            {"authConfiguration": {"noAuthConfiguration": {}, "basicAuthConfiguration": BASIC_AUTH}},
            ("spec.authConfiguration", "exactly one of"),
        ),
    ),
    explained=(
        ("spec.authConfiguration", "exactly one"),
        ("spec.customPluginConfiguration.apiSchema.payloadFrom", "ConfigMap"),
        ("status.buildStatus", "build"),
    ),
    bad_input_examples=(
        [],
        [("valid", ("state",), "DISABLED")],
        [("second-member", ("authConfiguration", "basicAuthConfiguration"), BASIC_AUTH)],
    ),
    # A plugin cannot move to another application (nor change its type): a new plugin there.
    replacement=lambda spec: spec.update(applicationId=_uuid("replacement", str(spec["applicationId"]))),
)


# ---------------------------------------------------------------------------------------------------
# QLibraryItem

QLIBRARYITEM_INFO = _registry("QLibraryItem")
QLIBRARYITEMS = QLIBRARYITEM_INFO.plural_path


def new_instance_id() -> str:
    """A fresh Q Business instance per test: library items and categories are scoped by instance."""
    return str(uuid.uuid4())


def qlibraryitem(name: str, namespace: str, **spec: Any) -> Manifest:
    """A valid library item publishing version 1 of a fresh app; `spec` overrides fields."""
    body: Spec = {"instanceId": INSTANCE_ID, "appId": str(uuid.uuid4()), "appVersion": 1}
    return build(QLIBRARYITEM_INFO, name, namespace, body, spec)


def _item_spec(name: str, namespace: str) -> Spec:
    return {
        "instanceId": instance_for(namespace),
        "appId": _uuid("app", namespace, name),
        "appVersion": 1,
        "categories": [],
        "itemStatus": "PUBLISHED",
    }


def _item(record: Mapping[str, Any]) -> AwsResource:
    return AwsResource(
        "QLibraryItem",
        record["library_item_id"],
        None,
        (record["instance_id"], record["app_id"], str(record["app_version"])),
        f"library item {record['library_item_id'][:8]} app {record['app_id'][:8]} v{record['app_version']}",
        {"categories": sorted(record["categories"]), "status": str(record["status"]).casefold()},
        None,
        float(record.get("created_at", 0.0)),
    )


def _item_desired(spec: Spec) -> dict[str, Any]:
    wanted: dict[str, Any] = {"categories": sorted(spec.get("categories") or [])}
    if spec.get("itemStatus"):
        wanted["status"] = str(spec["itemStatus"]).casefold()
    return wanted


def _make_item(client: Any, spec: Spec) -> str:
    made = client.create_library_item(
        instanceId=spec["instanceId"],
        appId=spec["appId"],
        appVersion=spec["appVersion"],
        categories=spec.get("categories") or [],
    )
    return str(made["libraryItemId"])


def _list_items(client: Any, parent: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    pages = client.get_paginator("list_library_items").paginate(**parent, PaginationConfig={"PageSize": 100})
    for page in pages:
        found.extend(page["libraryItems"])
    return found


#: Library items per Q Apps instance in the bench: a look before a create (find_before_create) lists
#: the whole library (the looks asked at once share one listing, engine/looks.py), so the bench spreads
#: its items over several instances as a real account's libraries would be.
ITEMS_PER_INSTANCE = 100


def _bench_item(namespace: str, i: int) -> tuple[str, Spec]:
    block = i // ITEMS_PER_INSTANCE
    instance = INSTANCE_ID if block == 0 else _uuid("instance", namespace, str(block))
    return f"li{i:04d}", {
        "instanceId": instance,
        "appId": str(uuid.UUID(int=(0xB0 << 120) + i, version=4)),
        "appVersion": 1,
        "categories": [CATEGORY_ID],
        # managed, so that a status changed by hand (change_by_hand) is drift to correct
        "itemStatus": "PUBLISHED",
    }


def _item_delete_fails(pattern: str) -> dict[str, Any]:
    return {
        "inject": [{"operation": "qapps:DeleteLibraryItem", "error": "InternalServerException", "count": 3}]
    }


QLIBRARYITEM = KindFacts(
    info=QLIBRARYITEM_INFO,
    spec=_item_spec,
    change=lambda spec, name, round_: spec.update(categories=[_uuid("cat", name, str(round_))]),
    state_key="libraryItems",
    resource=_item,
    natural_key=lambda obj: (
        str(obj["spec"].get("instanceId")),
        str(obj["spec"].get("appId")),
        str(obj["spec"].get("appVersion")),
    ),
    desired=_item_desired,
    create_op="CreateLibraryItem",
    update_op="UpdateLibraryItem",
    delete_op="DeleteLibraryItem",
    observe_calls=1,  # GetLibraryItem
    observe_ops=("GetLibraryItem",),
    list_op="ListLibraryItems",
    # ListLibraryItems (the look before the intent: looks asked at once share it), CreateLibraryItem,
    # GetLibraryItem
    min_create_calls=3,
    builds=False,
    quotas={
        "qapps:CreateLibraryItem": 10,
        "qapps:GetLibraryItem": 20,
        "qapps:ListLibraryItems": 10,
        "qapps:UpdateLibraryItem": 10,
        "qapps:DeleteLibraryItem": 10,
    },
    change_by_hand=lambda client, status: client.update_library_item(
        instanceId=status["instanceId"], libraryItemId=status["libraryItemId"], status="DISABLED"
    ),
    delete_by_hand=lambda client, status: client.delete_library_item(
        instanceId=status["instanceId"], libraryItemId=status["libraryItemId"]
    ),
    make_by_hand=_make_item,
    list_by_hand=_list_items,
    missing_dependency={"known_apps": ["00000000-0000-4000-8000-000000000000"]},
    dependency_reset={"known_apps": None},
    failing_delete=_item_delete_fails,
    delete_failed_reason=False,
    failing_delete_reset={},
    clash=Clash(
        spec=lambda label: {
            "instanceId": "shared-instance",
            "appId": "c0ffee00-0000-4000-8000-000000000002"
            if label == "shared"
            else "c0ffee00-0000-4000-8000-000000000003",
        },
        second="AlreadyExists",
        # One winner, or two items when both creates ran before either could see the other's (the API
        # allows that); never one item held by both (the audit counts that as a duplicate).
        winners=(1, 2),
    ),
    permission_changes=(
        {"spec": {"isVerified": False}},
        {"spec": {"categories": [], "itemStatus": "DISABLED"}},
    ),
    bench_object=_bench_item,
    refused=(
        Refused("an app ID that is no UUID", {"appId": "not-a-uuid"}, ("spec.appId",)),
        Refused(
            "tags, which a library item has not", {"tags": {"team": "a"}}, ("unknown field", "spec.tags")
        ),
        Refused("an item status outside the enum", {"itemStatus": "HIDDEN"}, ("spec.itemStatus",)),
        Refused("a negative app version", {"appVersion": -1}, ("spec.appVersion",)),
        Refused(
            "four categories (at most three)",
            {"categories": [_uuid("category", str(i)) for i in range(4)]},
            ("spec.categories",),
        ),
    ),
    explained=(("spec.appVersion", "version"),),
    bad_input_examples=(
        [("valid", ("isVerified",), True)],
        [("invalid", ("appVersion",), -1)],
    ),
    # No qapps call changes an item's app, version or instance: publishing the next version is a new item.
    replacement=lambda spec: spec.update(appVersion=int(spec["appVersion"]) + 1),
)


# ---------------------------------------------------------------------------------------------------
# AppFlowConnector

APPFLOWCONNECTOR_INFO = _registry("AppFlowConnector")
APPFLOWCONNECTORS = APPFLOWCONNECTOR_INFO.plural_path


def lambda_arn(function: str) -> str:
    return LAMBDA_PREFIX + function


def appflowconnector(name: str, namespace: str, function: str | None = None, **spec: Any) -> Manifest:
    """A valid Lambda connector registered under its name (no connectorLabel); `spec` overrides fields."""
    body: Spec = {
        "description": f"{name} records",
        "connectorProvisioningType": "LAMBDA",
        "connectorProvisioningConfig": {"lambda": {"lambdaArn": lambda_arn(function or name)}},
    }
    return build(APPFLOWCONNECTOR_INFO, name, namespace, body, spec)


def _connector_spec(name: str, namespace: str) -> Spec:
    return {
        "connectorLabel": f"{namespace}-{name}",
        "description": f"connector {name}",
        "connectorProvisioningConfig": {"lambda": {"lambdaArn": LAMBDA_PREFIX + "ok"}},
        "tags": {"team": "reliability"},
    }


def _connector(record: Mapping[str, Any]) -> AwsResource:
    return AwsResource(
        "AppFlowConnector",
        record["label"],
        _owner(record),
        (record["label"],),
        f"connector {record['label']}",
        {"description": record.get("description")},
        record.get("arn"),
        float(record.get("registered_at", 0.0)),
    )


def _make_connector(client: Any, spec: Spec) -> str:
    client.register_connector(
        connectorLabel=spec["connectorLabel"],
        connectorProvisioningType=spec.get("connectorProvisioningType", "LAMBDA"),
        connectorProvisioningConfig=spec["connectorProvisioningConfig"],
    )
    return str(spec["connectorLabel"])


def _list_connectors(client: Any, parent: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {**parent, "maxResults": 100}
    while True:
        page = client.list_connectors(**kwargs)
        found.extend(page["connectors"])
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


def _bench_connector(namespace: str, i: int) -> tuple[str, Spec]:
    return f"{namespace}-c{i:04d}", {
        # managed, so that a description changed by hand (change_by_hand) is drift to correct
        "description": f"bench connector {i}",
        "connectorProvisioningType": "LAMBDA",
        "connectorProvisioningConfig": {"lambda": {"lambdaArn": lambda_arn(f"conn-{i}")}},
    }


def _connector_delete_fails(pattern: str) -> dict[str, Any]:
    return {
        "inject": [
            {"operation": "appflow:UnregisterConnector", "error": "InternalServerException", "count": 3}
        ]
    }


APPFLOWCONNECTOR = KindFacts(
    info=APPFLOWCONNECTOR_INFO,
    spec=_connector_spec,
    change=lambda spec, name, round_: spec.update(description=f"connector {name} v{round_ + 1}"),
    state_key="connectors",
    resource=_connector,
    natural_key=lambda obj: (str(obj["spec"].get("connectorLabel") or obj["metadata"]["name"]),),
    desired=lambda spec: {"description": spec.get("description")} if spec.get("description") else {},
    create_op="RegisterConnector",
    update_op="UpdateConnectorRegistration",
    delete_op="UnregisterConnector",
    observe_calls=2,  # DescribeConnector + ListTagsForResource
    observe_ops=("DescribeConnector", "ListTagsForResource"),
    list_op="ListConnectors",
    min_create_calls=4,  # RegisterConnector + TagResource, DescribeConnector + ListTagsForResource
    builds=False,
    quotas={
        "appflow:RegisterConnector": 10,
        "appflow:DescribeConnector": 20,
        "appflow:ListTagsForResource": 20,
        "appflow:TagResource": 10,
        "appflow:UnregisterConnector": 10,
    },
    change_by_hand=lambda client, status: client.update_connector_registration(
        connectorLabel=status["connectorLabel"], description="changed by hand"
    ),
    delete_by_hand=lambda client, status: client.unregister_connector(
        connectorLabel=status["connectorLabel"]
    ),
    make_by_hand=_make_connector,
    list_by_hand=_list_connectors,
    missing_dependency={"known_lambdas": [LAMBDA_PREFIX + "other"]},
    dependency_reset={"known_lambdas": None},
    failing_delete=_connector_delete_fails,
    delete_failed_reason=False,
    failing_delete_reset={},
    clash=Clash(
        spec=lambda label: {"connectorLabel": f"{label}-label"}, second="OwnedByAnother", winners=(1,)
    ),
    permission_changes=(
        {"spec": {"description": "changed by the permissions test", "tags": {"changed-by": "test"}}},
        {"spec": {"tags": None}},
    ),
    bench_object=_bench_connector,
    refused=(
        Refused(
            "a Lambda outside the aws partition",
            {
                "connectorProvisioningConfig": {
                    "lambda": {"lambdaArn": "arn:aws-cn:lambda:cn-north-1:1:function:x"}
                }
            },
            ("spec.connectorProvisioningConfig.lambda.lambdaArn",),
        ),
        Refused(
            "a provisioning type AppFlow lacks",
            {"connectorProvisioningType": "HTTP"},
            ("spec.connectorProvisioningType",),
        ),
        Refused(
            "no label and a name that cannot be one",
            {"connectorLabel": None},
            ("spec.connectorLabel", "connectorLabel is required"),
            name="x",
        ),
    ),
    explained=(("spec.connectorLabel", "label"),),
    name_field="connectorLabel",
    bad_input_examples=(
        [("invalid", ("tags",), {"bad key!": "v"})],
        [("invalid", ("tags",), {"x" * 20 + " y": "v"})],
        [("delete", ("description",), None)],
    ),
)


# ---------------------------------------------------------------------------------------------------

#: The KindFacts written above, by kind: the registry, not a list here, says which kinds there are.
WRITTEN: dict[str, KindFacts] = {
    value.kind: value for value in list(globals().values()) if isinstance(value, KindFacts)
}
#: Every registered kind's facts, in the registry's order (tests/unit/test_registry.py fails when a
#: registered kind has none).
TEST_KINDS: tuple[KindFacts, ...] = tuple(WRITTEN[kind.kind] for kind in KINDS if kind.kind in WRITTEN)
BY_KIND: dict[str, KindFacts] = {facts.kind: facts for facts in TEST_KINDS}


def facts_of(obj_or_kind: Mapping[str, Any] | str) -> KindFacts:
    """The facts of a kind, by name or from an object."""
    kind = obj_or_kind if isinstance(obj_or_kind, str) else str(obj_or_kind.get("kind"))
    return BY_KIND[kind]


def manifest(kind: str, name: str, namespace: str, **spec: Any) -> Manifest:
    """A valid object of `kind` (see `KindFacts.spec`); `spec` overrides or adds fields (None removes)."""
    return BY_KIND[kind].manifest(name, namespace, **spec)


def changed(obj: Mapping[str, Any], round_: int = 1) -> Manifest:
    """The same object with a spec change AWS can apply in place (an update, not a replacement)."""
    out: Manifest = json.loads(json.dumps(obj))
    facts_of(out).change(out["spec"], out["metadata"]["name"], round_)
    return out


def aws_resources(state: Mapping[str, Any]) -> list[AwsResource]:
    """Every resource of every kind the AWS stand-in holds, in every account and region."""
    return [r for facts in TEST_KINDS for r in facts.resources(state)]


def merged_settings(*settings: Mapping[str, Any]) -> dict[str, Any]:
    """AWS stand-in settings of several kinds as one /_emulator/config body (fault lists joined)."""
    out: dict[str, Any] = {}
    for one in settings:
        for key, value in one.items():
            if key == "inject" and key in out:
                out[key] = [*out[key], *value]
            else:
                out[key] = value
    return out
