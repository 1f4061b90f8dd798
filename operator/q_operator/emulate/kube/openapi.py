"""OpenAPI documents built from the served types, shaped as kube-apiserver publishes them.

kubectl reads /openapi/v3 for `explain` (the CRD schemas and the meta.k8s.io schemas beside them), for
the `fieldValidation` parameter of PATCH (so `--validate=strict` lets the server validate), and for
the request types of PATCH (no strategic merge patch for custom resources, so `kubectl apply` sends a
merge patch). /openapi/v2 is the one Swagger document of everything, served as JSON only: kubectl asks
for protobuf there, gets 406, and does without it.

Operations, parameters, media types and status codes follow what apiextensions-apiserver generates
for a CRD; the prose of operations and parameters is left out (no client reads it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from functools import cache
from importlib import resources
from typing import Any

from q_operator.emulate.kube.resources import Registry, ResourceType

JSON = dict[str, Any]

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = META + "ObjectMeta"
LIST_META = META + "ListMeta"
PATCH = META + "Patch"
DELETE_OPTIONS = META + "DeleteOptions"
STATUS = META + "Status"
_CONVENTIONS = "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values. More info: "
    f"{_CONVENTIONS}#resources"
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: "
    f"{_CONVENTIONS}#types-kinds"
)
_META_DOC = f"Standard object's metadata. More info: {_CONVENTIONS}#metadata"
_LIST_META_DOC = f"Standard list metadata. More info: {_CONVENTIONS}#types-kinds"
_YAML_JSON = ["application/json", "application/yaml"]
_PATCH_TYPES = ["application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json"]
# v2 lists the patch types in the order the API server registers them.
_PATCH_TYPES_V2 = [
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
]
_LIST_QUERY = (
    "allowWatchBookmarks",
    "continue",
    "fieldSelector",
    "labelSelector",
    "limit",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "shardSelector",
    "timeoutSeconds",
    "watch",
)
_BOOLEAN_QUERY = {"allowWatchBookmarks", "watch", "sendInitialEvents", "force", "orphanDependents"}
_INTEGER_QUERY = {"limit", "timeoutSeconds", "gracePeriodSeconds"}
_WRITE_QUERY = ("dryRun", "fieldManager", "fieldValidation")
_DELETE_QUERY = (
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
)


@cache
def meta_schemas() -> dict[str, JSON]:
    """The meta.k8s.io/v1 schemas a real server publishes beside every CRD (OpenAPI v3 form)."""
    text = resources.files("q_operator.emulate.kube").joinpath("meta_schemas.json").read_text()
    schemas: dict[str, JSON] = json.loads(text)["schemas"]
    return schemas


def definition_name(rt: ResourceType, suffix: str = "") -> str:
    """Reverse-DNS definition name, as the API server publishes CRD schemas."""
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}{suffix}"


def _camel(text: str, upper: bool) -> str:
    parts = [p for p in re.split(r"[.\-]", text) if p]
    joined = "".join(p[:1].upper() + p[1:] for p in parts)
    return joined if upper else joined[:1].lower() + joined[1:]


def _tag(rt: ResourceType) -> str:
    return f"{_camel(rt.group, upper=False)}_{rt.version}" if rt.group else f"core_{rt.version}"


def _operation_id(rt: ResourceType, verb: str, scope: str, suffix: str = "") -> str:
    group = _camel(rt.group, upper=True) if rt.group else "Core"
    return f"{verb}{group}{_camel(rt.version, upper=True)}{scope}{rt.kind}{suffix}"


def _gvk(rt: ResourceType, kind: str | None = None) -> JSON:
    return {"group": rt.group, "version": rt.version, "kind": kind or rt.kind}


# ---- schemas -------------------------------------------------------------------------------------------


def _ref(name: str, v3: bool) -> str:
    return ("#/components/schemas/" if v3 else "#/definitions/") + name


def _described_ref(name: str, description: str, v3: bool) -> JSON:
    if v3:
        return {"description": description, "allOf": [{"$ref": _ref(name, v3)}]}
    return {"description": description, "$ref": _ref(name, v3)}


def _selectable(rt: ResourceType) -> list[JSON]:
    return [{"fieldPath": path} for path in rt.field_labels] if rt.is_custom else []


def _to_v2(node: Any) -> Any:
    """What OpenAPI v2 can carry of a structural schema (as apiextensions-apiserver converts it):
    no junctors, no defaults, nullable and preserve-unknown-fields nodes left untyped."""
    if isinstance(node, list):
        return [_to_v2(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _to_v2(v) for k, v in node.items() if k not in ("allOf", "anyOf", "oneOf", "not", "default")}
    if out.get("nullable"):
        for key in ("type", "nullable", "items", "properties"):
            out.pop(key, None)
    if out.get("x-kubernetes-preserve-unknown-fields"):
        out.pop("items", None)
        out.pop("properties", None)
        if out.get("type") == "object":
            del out["type"]
    if out.get("type") == "array" and "items" not in out:
        del out["type"]
    nullable = [
        k for k, v in (node.get("properties") or {}).items() if isinstance(v, dict) and v.get("nullable")
    ]
    if nullable and "required" in out:
        out["required"] = [r for r in out["required"] if r not in nullable]
    return out


def _without_empty_properties(node: Any) -> Any:
    """Go leaves an empty `properties` map out of the JSON it writes."""
    if isinstance(node, list):
        return [_without_empty_properties(n) for n in node]
    if not isinstance(node, dict):
        return node
    return {k: _without_empty_properties(v) for k, v in node.items() if not (k == "properties" and v == {})}


def _kind_schema(rt: ResourceType, v3: bool) -> JSON:
    if rt.schema is not None:
        schema: JSON = _without_empty_properties(rt.schema)
    else:
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if not v3:
        schema = _to_v2(schema)
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": _API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": _KIND_DOC}
    props["metadata"] = _described_ref(OBJECT_META, _META_DOC, v3)
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt)]
    if _selectable(rt):
        schema["x-kubernetes-selectable-fields"] = _selectable(rt)
    return schema


def _list_schema(rt: ResourceType, v3: bool) -> JSON:
    schema: JSON = {
        "description": f"{rt.kind}List is a list of {rt.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION_DOC},
            "items": {
                "description": f"List of {rt.plural}. More info: {_CONVENTIONS}",
                "type": "array",
                "items": {"$ref": _ref(definition_name(rt), v3)},
            },
            "kind": {"type": "string", "description": _KIND_DOC},
            "metadata": _described_ref(LIST_META, _LIST_META_DOC, v3),
        },
        "x-kubernetes-group-version-kind": [_gvk(rt, rt.kind + "List")],
    }
    if _selectable(rt):
        schema["x-kubernetes-selectable-fields"] = _selectable(rt)
    return schema


def _v2_meta(node: Any) -> Any:
    """A meta.k8s.io schema in v2 form: plain $refs into #/definitions, no defaults."""
    if isinstance(node, list):
        return [_v2_meta(n) for n in node]
    if not isinstance(node, dict):
        return node
    if len(node.get("allOf") or []) == 1 and "$ref" in node["allOf"][0]:
        out = {k: _v2_meta(v) for k, v in node.items() if k not in ("allOf", "default")}
        out["$ref"] = node["allOf"][0]["$ref"].replace("#/components/schemas/", "#/definitions/")
        return out
    return {
        k: (v.replace("#/components/schemas/", "#/definitions/") if k == "$ref" else _v2_meta(v))
        for k, v in node.items()
        if k != "default"
    }


def _common(v3: bool) -> JSON:
    schemas = meta_schemas()
    return copy.deepcopy(schemas) if v3 else {k: _v2_meta(v) for k, v in schemas.items()}


# ---- operations ------------------------------------------------------------------------------------------


def _parameter(name: str, where: str, v3: bool, required: bool = False) -> JSON:
    kind = "boolean" if name in _BOOLEAN_QUERY else "integer" if name in _INTEGER_QUERY else "string"
    param: JSON = {"name": name, "in": where}
    if required:
        param["required"] = True
    if v3:
        param["schema"] = {"type": kind, "uniqueItems": True}
    else:
        param.update(type=kind, uniqueItems=True)
    return param


def _body(v3: bool, target: str, types: list[str]) -> JSON:
    """The request body: v3's requestBody, or v2's `body` parameter."""
    if v3:
        return {
            "requestBody": {
                "content": {t: {"schema": {"$ref": _ref(target, v3)}} for t in types},
                "required": True,
            }
        }
    return {"body": {"name": "body", "in": "body", "required": True, "schema": {"$ref": _ref(target, v3)}}}


def _operation(
    rt: ResourceType,
    action: str,
    operation_id: str,
    query: tuple[str, ...],
    codes: tuple[str, ...],
    v3: bool,
    response: str | None,
    body: tuple[str, list[str]] | None = None,
) -> JSON:
    op: JSON = {"tags": [_tag(rt)], "operationId": operation_id}
    params = [_parameter(name, "query", v3) for name in query]
    if body is not None:
        shaped = _body(v3, body[0], body[1])
        if v3:
            op.update(shaped)
        else:
            params.insert(0, shaped["body"])
            op["consumes"] = body[1]
    if params:
        op["parameters"] = params
    responses: JSON = {}
    for code in codes:
        if code == "401":
            responses[code] = {"description": "Unauthorized"}
        elif v3:
            schema = {"$ref": _ref(response or definition_name(rt), v3)}
            responses[code] = {"description": "OK", "content": {t: {"schema": schema} for t in _YAML_JSON}}
        else:
            responses[code] = {
                "description": "OK",
                "schema": {"$ref": _ref(response or definition_name(rt), v3)},
            }
    op["responses"] = responses
    if not v3:
        op.setdefault("consumes", list(_YAML_JSON))
        op["produces"] = list(_YAML_JSON)
        op["schemes"] = ["https"]
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = _gvk(rt)
    return op


def _paths(rt: ResourceType, v3: bool) -> JSON:
    prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    scope = "Namespaced" if rt.namespaced else ""
    ns = "/namespaces/{namespace}" if rt.namespaced else ""
    collection = f"{prefix}{ns}/{rt.plural}"
    item = f"{collection}/{{name}}"
    ns_params = [_parameter("namespace", "path", v3, required=True)] if rt.namespaced else []
    name_param = [_parameter("name", "path", v3, required=True)]
    pretty = [_parameter("pretty", "query", v3)]
    patch_types = _PATCH_TYPES if v3 else _PATCH_TYPES_V2
    object_ref = definition_name(rt)
    list_ref = definition_name(rt, "List")

    def op(action: str, verb: str, query: tuple[str, ...], codes: tuple[str, ...], **kw: Any) -> JSON:
        suffix = kw.pop("suffix", "")
        collection_word = "Collection" if action == "deletecollection" else ""
        operation_id = _operation_id(rt, verb, f"{collection_word}{scope}", suffix)
        return _operation(rt, action, operation_id, query, codes, v3, **kw)

    paths: JSON = {
        collection: {
            "get": op("list", "list", _LIST_QUERY, ("200", "401"), response=list_ref),
            "post": op(
                "post",
                "create",
                _WRITE_QUERY,
                ("200", "201", "202", "401"),
                response=object_ref,
                body=(object_ref, list(_YAML_JSON)),
            ),
            "delete": op("deletecollection", "delete", _LIST_QUERY, ("200", "401"), response=STATUS),
            "parameters": ns_params + pretty,
        },
        item: {
            "get": op("get", "read", ("resourceVersion",), ("200", "401"), response=object_ref),
            "put": op(
                "put",
                "replace",
                _WRITE_QUERY,
                ("200", "201", "401"),
                response=object_ref,
                body=(object_ref, list(_YAML_JSON)),
            ),
            "delete": op(
                "delete",
                "delete",
                _DELETE_QUERY,
                ("200", "202", "401"),
                response=object_ref,
                body=(DELETE_OPTIONS, list(_YAML_JSON)),
            ),
            "patch": op(
                "patch",
                "patch",
                (*_WRITE_QUERY, "force"),
                ("200", "401"),
                response=object_ref,
                body=(PATCH, list(patch_types)),
            ),
            "parameters": name_param + ns_params + pretty,
        },
    }
    if rt.has_status:
        paths[f"{item}/status"] = {
            "get": op(
                "get", "read", ("resourceVersion",), ("200", "401"), response=object_ref, suffix="Status"
            ),
            "put": op(
                "put",
                "replace",
                _WRITE_QUERY,
                ("200", "201", "401"),
                response=object_ref,
                suffix="Status",
                body=(object_ref, list(_YAML_JSON)),
            ),
            "patch": op(
                "patch",
                "patch",
                (*_WRITE_QUERY, "force"),
                ("200", "401"),
                response=object_ref,
                suffix="Status",
                body=(PATCH, list(patch_types)),
            ),
            "parameters": name_param + ns_params + pretty,
        }
    if rt.namespaced:
        every = _operation(
            rt, "list", _operation_id(rt, "list", "", "ForAllNamespaces"), (), ("200", "401"), v3, list_ref
        )
        paths[f"{prefix}/{rt.plural}"] = {
            "get": every,
            "parameters": [_parameter(n, "query", v3) for n in sorted((*_LIST_QUERY, "pretty"))],
        }
    return paths


# ---- documents -----------------------------------------------------------------------------------------


def group_version_doc(registry: Registry, group: str, version: str) -> JSON | None:
    """The OpenAPI v3 document of one group/version."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    schemas = _common(v3=True)
    paths: JSON = {}
    for rt in types:
        schemas[definition_name(rt)] = _kind_schema(rt, v3=True)
        schemas[definition_name(rt, "List")] = _list_schema(rt, v3=True)
        paths.update(_paths(rt, v3=True))
    title = "Kubernetes CRD Swagger" if any(rt.is_custom for rt in types) else "Kubernetes"
    return {
        "openapi": "3.0.0",
        "info": {"title": title, "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def v3_root(registry: Registry) -> JSON:
    """The /openapi/v3 index: every group/version with a content hash the client caches by."""
    paths: JSON = {}
    for group, versions in registry.groups().items():
        for version in versions:
            doc = group_version_doc(registry, group, version)
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()
            path = gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def v2_doc(registry: Registry) -> JSON:
    """One Swagger 2.0 document of everything served."""
    definitions = _common(v3=False)
    paths: JSON = {}
    for rt in registry.types.values():
        definitions[definition_name(rt)] = _kind_schema(rt, v3=False)
        definitions[definition_name(rt, "List")] = _list_schema(rt, v3=False)
        paths.update(_paths(rt, v3=False))
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "1.37"},
        "paths": paths,
        "definitions": definitions,
    }
