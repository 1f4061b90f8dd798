"""The kinds' models hold the same constraints as botocore's service models, so an AWS API change
(a new plugin type, a longer name, a changed pattern) makes this test fail instead of reaching users.

Reusable: `check(binding, service_model)` compares one model field with one botocore shape; each kind
adds its rows to BINDINGS. Paths: dotted property names in the model (`authConfiguration.roleArn`),
`""` for the model itself, `tags{key}` / `tags{value}` for a map's keys and values, `categories[]`
for a list's items. Shapes:
`ShapeName` or `ShapeName.member.member`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import botocore.loaders
import botocore.model
import botocore.session
import pytest
from pydantic import BaseModel

from q_operator.kinds import appflowconnector, qplugin
from q_operator.kinds.appflowconnector import AppFlowConnectorSpec
from q_operator.kinds.qlibraryitem import QLibraryItemSpec
from q_operator.kinds.qplugin import QPluginSpec

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Binding:
    """One model field held against one botocore shape (or structure member)."""

    model: type[BaseModel]
    path: str
    service: str
    shape: str
    #: for structures: botocore members the model leaves out on purpose (with the reason in a comment).
    ignore_members: frozenset[str] = frozenset()
    #: for structures: model properties botocore does not have.
    extra_members: frozenset[str] = frozenset()
    #: for structures: members the model requires although botocore does not.
    extra_required: frozenset[str] = frozenset()
    #: list/map maximum the model keeps below botocore's for entries the operator reserves.
    reserved_entries: int = 0
    #: whether the leaf's requiredness in its parent must match botocore's.
    check_required: bool = True

    @property
    def id(self) -> str:
        return f"{self.model.__name__}.{self.path or '<root>'}={self.service}:{self.shape}"


def _s(*names: str) -> frozenset[str]:
    return frozenset(names)


Q = "qbusiness"
AUTH = "authConfiguration"
CUSTOM = "customPluginConfiguration"

BINDINGS: list[Binding] = [
    # QPlugin spec ↔ CreatePluginRequest: clientToken is the engine's; region/deletionPolicy are
    # ours; state is an UpdatePlugin member (CreatePlugin has none).
    Binding(
        QPluginSpec,
        "",
        Q,
        "CreatePluginRequest",
        ignore_members=_s("clientToken"),
        extra_members=_s("region", "deletionPolicy", "managementPolicy", "state"),
    ),
    Binding(QPluginSpec, "applicationId", Q, "CreatePluginRequest.applicationId"),
    Binding(QPluginSpec, "displayName", Q, "CreatePluginRequest.displayName"),
    Binding(QPluginSpec, "type", Q, "CreatePluginRequest.type"),
    Binding(QPluginSpec, "serverUrl", Q, "CreatePluginRequest.serverUrl"),
    Binding(QPluginSpec, "state", Q, "UpdatePluginRequest.state"),
    Binding(QPluginSpec, AUTH, Q, "CreatePluginRequest.authConfiguration"),
    Binding(QPluginSpec, f"{AUTH}.basicAuthConfiguration", Q, "BasicAuthConfiguration"),
    Binding(QPluginSpec, f"{AUTH}.basicAuthConfiguration.secretArn", Q, "BasicAuthConfiguration.secretArn"),
    Binding(QPluginSpec, f"{AUTH}.basicAuthConfiguration.roleArn", Q, "BasicAuthConfiguration.roleArn"),
    Binding(
        QPluginSpec, f"{AUTH}.oAuth2ClientCredentialConfiguration", Q, "OAuth2ClientCredentialConfiguration"
    ),
    *[
        Binding(
            QPluginSpec,
            f"{AUTH}.oAuth2ClientCredentialConfiguration.{m}",
            Q,
            f"OAuth2ClientCredentialConfiguration.{m}",
        )
        for m in ("secretArn", "roleArn", "authorizationUrl", "tokenUrl")
    ],
    Binding(QPluginSpec, f"{AUTH}.noAuthConfiguration", Q, "NoAuthConfiguration"),
    Binding(QPluginSpec, f"{AUTH}.idcAuthConfiguration", Q, "IdcAuthConfiguration"),
    Binding(
        QPluginSpec,
        f"{AUTH}.idcAuthConfiguration.idcApplicationArn",
        Q,
        "IdcAuthConfiguration.idcApplicationArn",
    ),
    Binding(QPluginSpec, f"{AUTH}.idcAuthConfiguration.roleArn", Q, "IdcAuthConfiguration.roleArn"),
    # apiSchema is optional in botocore, but a custom plugin without its OpenAPI document is useless.
    Binding(QPluginSpec, CUSTOM, Q, "CustomPluginConfiguration", extra_required=_s("apiSchema")),
    Binding(QPluginSpec, f"{CUSTOM}.description", Q, "CustomPluginConfiguration.description"),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchemaType", Q, "CustomPluginConfiguration.apiSchemaType"),
    # payloadFrom is ours: the engine resolves it into `payload`.
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema", Q, "APISchema", extra_members=_s("payloadFrom")),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema.payload", Q, "APISchema.payload"),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema.s3", Q, "S3"),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema.s3.bucket", Q, "S3.bucket"),
    Binding(QPluginSpec, f"{CUSTOM}.apiSchema.s3.key", Q, "S3.key"),
    # Status fields are not bound: status holds whatever AWS answers (a new buildStatus value must not
    # make the status write fail), so they are plain strings.
    # The API's list of {key, value} is a map in the spec; two entries are the operator's own tags.
    Binding(QPluginSpec, "tags", Q, "CreatePluginRequest.tags", reserved_entries=2),
    Binding(QPluginSpec, "tags{key}", Q, "Tag.key"),
    Binding(QPluginSpec, "tags{value}", Q, "Tag.value"),
]

QA = "qapps"
AF = "appflow"
FLOW_LAMBDA = "connectorProvisioningConfig.lambda"

BINDINGS += [
    # QLibraryItem spec ↔ CreateLibraryItemInput. botocore requires categories but accepts []: the
    # spec defaults it to [] and the adapter always sends it. itemStatus and isVerified are members of
    # UpdateLibraryItem / UpdateLibraryItemMetadata (CreateLibraryItem has neither).
    Binding(
        QLibraryItemSpec,
        "",
        QA,
        "CreateLibraryItemInput",
        ignore_members=_s("categories"),
        extra_members=_s("categories", "region", "deletionPolicy", "managementPolicy", "itemStatus", "isVerified"),
    ),
    # instanceId is not bound: botocore's InstanceId has no constraints at all, while the model asks
    # for one character at least (an empty instance-id header names no instance).
    Binding(QLibraryItemSpec, "appId", QA, "CreateLibraryItemInput.appId"),
    Binding(QLibraryItemSpec, "appVersion", QA, "CreateLibraryItemInput.appVersion"),
    Binding(QLibraryItemSpec, "categories", QA, "CreateLibraryItemInput.categories", check_required=False),
    Binding(QLibraryItemSpec, "categories[]", QA, "UUID"),
    Binding(QLibraryItemSpec, "itemStatus", QA, "UpdateLibraryItemInput.status"),
    Binding(QLibraryItemSpec, "isVerified", QA, "UpdateLibraryItemMetadataInput.isVerified"),
    # AppFlowConnector spec ↔ RegisterConnectorRequest: clientToken is the engine's; tags go through
    # TagResource and forceDelete through UnregisterConnector. botocore requires nothing, but a
    # connector cannot register without its Lambda, so the model requires the provisioning config.
    Binding(
        AppFlowConnectorSpec,
        "",
        AF,
        "RegisterConnectorRequest",
        ignore_members=_s("clientToken"),
        extra_members=_s("region", "deletionPolicy", "managementPolicy", "tags", "forceDelete"),
        extra_required=_s("connectorProvisioningConfig"),
    ),
    Binding(AppFlowConnectorSpec, "connectorLabel", AF, "RegisterConnectorRequest.connectorLabel"),
    Binding(AppFlowConnectorSpec, "description", AF, "RegisterConnectorRequest.description"),
    Binding(
        AppFlowConnectorSpec,
        "connectorProvisioningType",
        AF,
        "RegisterConnectorRequest.connectorProvisioningType",
    ),
    Binding(
        AppFlowConnectorSpec,
        "connectorProvisioningConfig",
        AF,
        "RegisterConnectorRequest.connectorProvisioningConfig",
        extra_required=_s("lambda"),
        check_required=False,
    ),
    Binding(AppFlowConnectorSpec, FLOW_LAMBDA, AF, "LambdaConnectorProvisioningConfig"),
    Binding(
        AppFlowConnectorSpec, f"{FLOW_LAMBDA}.lambdaArn", AF, "LambdaConnectorProvisioningConfig.lambdaArn"
    ),
    Binding(AppFlowConnectorSpec, "forceDelete", AF, "UnregisterConnectorRequest.forceDelete"),
    # One of AppFlow's 50 tags is the operator's owner tag. The keys' pattern has a lookahead, which a
    # CRD cannot hold: test_appflow_tag_key_rules_match_botocore below checks them.
    Binding(
        AppFlowConnectorSpec, "tags", AF, "TagResourceRequest.tags", reserved_entries=1, check_required=False
    ),
    Binding(AppFlowConnectorSpec, "tags{value}", AF, "TagValue"),
]


# --- the checker ---------------------------------------------------------------------------------------


def _inline(node: Any, defs: JsonDict) -> Any:
    """pydantic's JSON schema with $refs inlined and Optional[X] as X (keywords kept)."""
    if isinstance(node, list):
        return [_inline(n, defs) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        real = [o for o in node["anyOf"] if o.get("type") != "null"]
        if len(real) == 1:
            node = {**{k: v for k, v in node.items() if k != "anyOf"}, **real[0]}
            return _inline(node, defs)
    return {k: _inline(v, defs) for k, v in node.items()}


def model_node(model: type[BaseModel], path: str) -> tuple[JsonDict, JsonDict | None, str]:
    """(schema node at path, its parent object node, the leaf name)."""
    raw = model.model_json_schema(mode="validation")
    node: JsonDict = _inline(raw, raw.get("$defs", {}))
    parent: JsonDict | None = None
    leaf = ""
    if not path:
        return node, None, ""
    for part in path.split("."):
        if part.endswith("{key}"):
            parent, leaf = None, ""
            node = node["properties"][part[: -len("{key}")]]["propertyNames"]
        elif part.endswith("{value}"):
            parent, leaf = None, ""
            node = node["properties"][part[: -len("{value}")]]["additionalProperties"]
        elif part.endswith("[]"):
            parent, leaf = None, ""
            node = node["properties"][part[: -len("[]")]]["items"]
        else:
            parent, leaf = node, part
            node = node["properties"][part]
    return node, parent, leaf


def botocore_shape(service_model: botocore.model.ServiceModel, path: str) -> tuple[Any, Any, str]:
    """(shape at path, parent structure shape or None, member name)."""
    first, *members = path.split(".")
    shape = service_model.shape_for(first)
    parent, leaf = None, ""
    for member in members:
        parent, leaf = shape, member
        shape = shape.members[member]
    return shape, parent, leaf


def _anchored(pattern: str) -> set[str]:
    return {f"^{pattern}$", f"^(?:{pattern})$"}


def check(binding: Binding, service_model: botocore.model.ServiceModel) -> list[str]:
    """Every way the model field disagrees with the botocore shape (empty when they agree)."""
    node, parent, leaf = model_node(binding.model, binding.path)
    shape, bc_parent, bc_leaf = botocore_shape(service_model, binding.shape)
    meta = shape.metadata
    problems: list[str] = []

    def differ(what: str, ours: Any, theirs: Any) -> None:
        if ours != theirs:
            problems.append(f"{binding.id}: {what}: model has {ours!r}, botocore has {theirs!r}")

    if shape.type_name == "string":
        if "pattern" in meta:
            if node.get("pattern") not in _anchored(meta["pattern"]):
                differ("pattern (anchored)", node.get("pattern"), f"^{meta['pattern']}$")
        else:
            differ("pattern", node.get("pattern"), None)
        differ("min length", node.get("minLength", 0), meta.get("min", 0))
        differ("max length", node.get("maxLength"), meta.get("max"))
        if shape.enum:
            differ("enum", sorted(node.get("enum", [node.get("const")])), sorted(shape.enum))
    elif shape.type_name in ("integer", "long"):
        differ("minimum", node.get("minimum"), meta.get("min"))
        differ("maximum", node.get("maximum"), meta.get("max"))
    elif shape.type_name in ("list", "map"):
        is_map = node.get("type") == "object"
        low, high = ("minProperties", "maxProperties") if is_map else ("minItems", "maxItems")
        differ("min entries", node.get(low, 0), meta.get("min", 0))
        bc_max = meta.get("max")
        differ("max entries", node.get(high), None if bc_max is None else bc_max - binding.reserved_entries)
    elif shape.type_name == "structure":
        props = set(node.get("properties", {}))
        differ(
            "members",
            sorted(props - binding.extra_members),
            sorted(set(shape.members) - binding.ignore_members),
        )
        differ(
            "required members",
            sorted(set(node.get("required", [])) - binding.extra_required),
            sorted(set(shape.required_members) - binding.ignore_members),
        )
        if meta.get("union"):
            rules = " ".join(r["rule"] for r in node.get("x-kubernetes-validations", []))
            missing = [m for m in shape.members if f"has(self.{m})" not in rules]
            if missing:
                problems.append(f"{binding.id}: union without an exactly-one CEL rule over {missing}")
    if binding.check_required and parent is not None and bc_parent is not None:
        differ(
            "required",
            leaf in parent.get("required", []),
            bc_leaf in bc_parent.required_members,
        )
    return problems


@pytest.fixture(scope="module")
def service_models() -> dict[str, botocore.model.ServiceModel]:
    session = botocore.session.get_session()
    return {s: session.get_service_model(s) for s in {b.service for b in BINDINGS}}


@pytest.mark.parametrize("binding", BINDINGS, ids=lambda b: b.id)
def test_model_field_matches_botocore(binding: Binding, service_models: dict[str, Any]) -> None:
    assert check(binding, service_models[binding.service]) == []


def test_every_spec_field_is_bound_to_botocore() -> None:
    """A field added to a spec model without a row here would escape this test."""
    ours = {"region", "deletionPolicy", "managementPolicy", "tags{key}", "tags{value}"}
    bound = {b.path for b in BINDINGS if b.model is QPluginSpec}
    node, _, _ = model_node(QPluginSpec, "")
    unbound = [
        path
        for path in _leaf_paths(node, "")
        if path not in bound and path not in ours and not path.startswith(f"{CUSTOM}.apiSchema.payloadFrom")
    ]
    assert unbound == []


def _leaf_paths(node: JsonDict, prefix: str) -> list[str]:
    paths = []
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        paths.append(path)
        paths += _leaf_paths(child, path)
    return paths


# --- the checker catches an AWS API change ---------------------------------------------------------------


def _changed_qbusiness(change: Any) -> botocore.model.ServiceModel:
    raw = copy.deepcopy(botocore.loaders.Loader().load_service_model("qbusiness", "service-2"))
    change(raw["shapes"])
    return botocore.model.ServiceModel(raw, service_name="qbusiness")


def _binding(path: str) -> Binding:
    return next(b for b in BINDINGS if b.model is QPluginSpec and b.path == path)


def test_a_new_plugin_type_in_botocore_fails_the_check() -> None:
    model = _changed_qbusiness(lambda shapes: shapes["PluginType"]["enum"].append("GITHUB"))
    assert any("enum" in p for p in check(_binding("type"), model))


def test_a_longer_display_name_in_botocore_fails_the_check() -> None:
    model = _changed_qbusiness(lambda shapes: shapes["PluginName"].update(max=200))
    assert any("max length" in p for p in check(_binding("displayName"), model))


def test_a_changed_pattern_in_botocore_fails_the_check() -> None:
    model = _changed_qbusiness(lambda shapes: shapes["Url"].update(pattern="https://[^\\s]*"))
    assert any("pattern" in p for p in check(_binding("serverUrl"), model))


def test_a_new_auth_member_in_botocore_fails_the_check() -> None:
    def add_member(shapes: JsonDict) -> None:
        shapes["PluginAuthConfiguration"]["members"]["samlAuthConfiguration"] = {
            "shape": "NoAuthConfiguration"
        }

    model = _changed_qbusiness(add_member)
    problems = check(_binding(AUTH), model)
    assert any("members" in p for p in problems)
    assert any("union" in p for p in problems)


def test_a_newly_required_member_in_botocore_fails_the_check() -> None:
    model = _changed_qbusiness(lambda shapes: shapes["CreatePluginRequest"]["required"].append("serverUrl"))
    assert check(_binding("serverUrl"), model)


def test_reserved_tag_count_matches_the_operators_own_tags() -> None:
    assert 200 - len({qplugin.OWNER_TAG, qplugin.PAYLOAD_HASH_TAG}) == qplugin.MAX_USER_TAGS


def test_every_build_status_has_a_phase(service_models: dict[str, Any]) -> None:
    assert sorted(qplugin.BUILD_PHASES) == sorted(service_models[Q].shape_for("PluginBuildStatus").enum)


# --- QLibraryItem and AppFlowConnector ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "ours"),
    [
        (QLibraryItemSpec, {"region", "deletionPolicy", "managementPolicy", "instanceId"}),
        (AppFlowConnectorSpec, {"region", "deletionPolicy", "managementPolicy"}),
    ],
    ids=["QLibraryItem", "AppFlowConnector"],
)
def test_every_qapps_and_appflow_spec_field_is_bound_to_botocore(
    spec: type[BaseModel], ours: set[str]
) -> None:
    bound = {b.path for b in BINDINGS if b.model is spec}
    node, _, _ = model_node(spec, "")
    assert [path for path in _leaf_paths(node, "") if path not in bound | ours] == []


def test_appflow_tag_key_rules_match_botocore(service_models: dict[str, Any]) -> None:
    tag_key = service_models[AF].shape_for("TagKey").metadata
    assert tag_key["pattern"] == appflowconnector.TAG_KEY_AWS_PATTERN
    assert tag_key["pattern"].replace("(?!aws:)", "") == appflowconnector.TAG_KEY_PATTERN
    assert (tag_key["min"], tag_key["max"]) == (1, appflowconnector.TAG_KEY_MAX)


def test_a_longer_connector_label_in_botocore_fails_the_check() -> None:
    raw = copy.deepcopy(botocore.loaders.Loader().load_service_model("appflow", "service-2"))
    raw["shapes"]["ConnectorLabel"]["max"] = 512
    model = botocore.model.ServiceModel(raw, service_name="appflow")
    binding = next(b for b in BINDINGS if b.model is AppFlowConnectorSpec and b.path == "connectorLabel")
    assert any("max length" in p for p in check(binding, model))
