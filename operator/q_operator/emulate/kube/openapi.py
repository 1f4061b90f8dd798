"""OpenAPI documents built from the served types, for `kubectl explain` and kubectl's validation.

kubectl looks in /openapi/v3 for the PATCH operation of a kind: its `fieldValidation` parameter tells
kubectl to let the server validate (so `--validate=strict` sends `fieldValidation=Strict`), and the
absence of strategic-merge-patch in its request body makes `kubectl apply` use a merge patch for
custom resources. /openapi/v2 is served as JSON only; kubectl asks for protobuf there, gets 406, and
does without it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from q_operator.emulate.kube.resources import Registry, ResourceType

JSON = dict[str, Any]

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
LIST_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
PATCH = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
STATUS = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"

_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should convert "
    "recognized schemas to the latest internal value, and may reject unrecognized values."
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers may infer this "
    "from the endpoint the client submits requests to. Cannot be updated. In CamelCase."
)
_META_DOC = "Standard object's metadata."

_OBJECT_META_SCHEMA: JSON = {
    "description": "ObjectMeta is metadata that all persisted resources must have, which includes all "
    "objects users must create.",
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "Name must be unique within a namespace."},
        "generateName": {
            "type": "string",
            "description": "GenerateName is an optional prefix, used by the "
            "server, to generate a unique name ONLY IF the Name field has not been provided.",
        },
        "namespace": {
            "type": "string",
            "description": "Namespace defines the space within which each name must be unique.",
        },
        "uid": {
            "type": "string",
            "description": "UID is the unique in time and space value for this object.",
        },
        "resourceVersion": {
            "type": "string",
            "description": "An opaque value that represents the internal version of this object.",
        },
        "generation": {
            "type": "integer",
            "format": "int64",
            "description": "A sequence number representing a specific generation of the desired state.",
        },
        "creationTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "CreationTimestamp is a "
            "timestamp representing the server time when this object was created.",
        },
        "deletionTimestamp": {
            "type": "string",
            "format": "date-time",
            "description": "DeletionTimestamp is "
            "RFC 3339 date and time at which this resource will be deleted.",
        },
        "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
        "labels": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Map of "
            "string keys and values that can be used to organize and categorize objects.",
        },
        "annotations": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "Annotations is an unstructured key value map stored with a resource.",
        },
        "finalizers": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Must be empty before the object is deleted from the registry.",
        },
        "ownerReferences": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "managedFields": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    },
}


def definition_name(rt: ResourceType, suffix: str = "") -> str:
    """Reverse-DNS definition name, as the API server publishes CRD schemas."""
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}{suffix}"


def _gvk(rt: ResourceType, kind: str | None = None) -> JSON:
    return {"group": rt.group, "version": rt.version, "kind": kind or rt.kind}


def _kind_schema(rt: ResourceType, ref_prefix: str) -> JSON:
    if rt.schema is not None:
        schema = copy.deepcopy(rt.schema)
    else:
        schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema.setdefault("type", "object")
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": _API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": _KIND_DOC}
    props["metadata"] = {"allOf": [{"$ref": ref_prefix + OBJECT_META}], "description": _META_DOC}
    schema["x-kubernetes-group-version-kind"] = [_gvk(rt)]
    return schema


def _list_schema(rt: ResourceType, ref_prefix: str) -> JSON:
    return {
        "type": "object",
        "description": f"{rt.kind}List is a list of {rt.kind}",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION_DOC},
            "kind": {"type": "string", "description": _KIND_DOC},
            "metadata": {"allOf": [{"$ref": ref_prefix + LIST_META}]},
            "items": {"type": "array", "items": {"$ref": ref_prefix + definition_name(rt)}},
        },
        "x-kubernetes-group-version-kind": [_gvk(rt, rt.kind + "List")],
    }


_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
_QUERY = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _paths(rt: ResourceType, v3: bool) -> JSON:
    prefix = f"/apis/{rt.group}/{rt.version}" if rt.group else f"/api/{rt.version}"
    ns = "/namespaces/{namespace}" if rt.namespaced else ""
    item = f"{prefix}{ns}/{rt.plural}/{{name}}"
    collection = f"{prefix}{ns}/{rt.plural}"
    ref = ("#/components/schemas/" if v3 else "#/definitions/") + definition_name(rt)

    def params(names: tuple[str, ...]) -> list[JSON]:
        if v3:
            return [
                {"name": n, "in": "query", "schema": {"type": "string"}, "uniqueItems": True} for n in names
            ]
        return [{"name": n, "in": "query", "type": "string", "uniqueItems": True} for n in names]

    def response() -> JSON:
        if v3:
            return {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": ref}}}}}
        return {"200": {"description": "OK", "schema": {"$ref": ref}}}

    def op(action: str, verb: str, with_body: str | None = None) -> JSON:
        body: JSON = {
            "operationId": f"{verb}{rt.kind}",
            "parameters": params(_QUERY if action in ("post", "put", "patch") else ("pretty",)),
            "responses": response(),
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": _gvk(rt),
        }
        if with_body is not None:
            types = _PATCH_TYPES if with_body == "patch" else ("application/json",)
            patch_ref = ("#/components/schemas/" if v3 else "#/definitions/") + PATCH
            target = patch_ref if with_body == "patch" else ref
            if v3:
                body["requestBody"] = {"content": {t: {"schema": {"$ref": target}} for t in types}}
            else:
                body["consumes"] = list(types)
                body["parameters"] = body["parameters"] + [
                    {"name": "body", "in": "body", "required": True, "schema": {"$ref": target}}
                ]
        return body

    item_ops = {
        "get": op("get", "read"),
        "put": op("put", "replace", "object"),
        "patch": op("patch", "patch", "patch"),
        "delete": op("delete", "delete"),
    }
    collection_ops = {"get": op("list", "list"), "post": op("post", "create", "object")}
    paths = {item: item_ops, collection: collection_ops}
    if rt.has_status:
        paths[item + "/status"] = {
            "get": op("get", "readStatus"),
            "put": op("put", "replaceStatus", "object"),
            "patch": op("patch", "patchStatus", "patch"),
        }
    return paths


def _common(ref_prefix: str) -> JSON:
    return {
        OBJECT_META: _OBJECT_META_SCHEMA,
        LIST_META: {
            "type": "object",
            "properties": {"resourceVersion": {"type": "string"}, "continue": {"type": "string"}},
        },
        PATCH: {
            "type": "object",
            "description": "Patch is provided to give a concrete name and type to the "
            "Kubernetes PATCH request body.",
        },
        STATUS: {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    }


def group_version_doc(registry: Registry, group: str, version: str) -> JSON | None:
    """The OpenAPI v3 document of one group/version."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    prefix = "#/components/schemas/"
    schemas = _common(prefix)
    paths: JSON = {}
    for rt in types:
        schemas[definition_name(rt)] = _kind_schema(rt, prefix)
        schemas[definition_name(rt, "List")] = _list_schema(rt, prefix)
        paths.update(_paths(rt, v3=True))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
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
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
            path = gv_path(group, version)
            paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def v2_doc(registry: Registry) -> JSON:
    """One Swagger 2.0 document of everything served."""
    prefix = "#/definitions/"
    definitions = _common(prefix)
    paths: JSON = {}
    for rt in registry.types.values():
        definitions[definition_name(rt)] = _kind_schema(rt, prefix)
        definitions[definition_name(rt, "List")] = _list_schema(rt, prefix)
        paths.update(_paths(rt, v3=False))
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "definitions": definitions,
    }
