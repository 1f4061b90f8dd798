"""Discovery: the aggregated documents (apidiscovery.k8s.io/v2) and the legacy ones, as kube-apiserver
serves them.

kubectl and client-go ask for the aggregated `APIGroupDiscoveryList` first (one request for `/api`,
one for `/apis`); older clients and kopf read the legacy `APIVersions`, `APIGroupList`, `APIGroup`
and `APIResourceList` documents.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from q_operator.emulate.kube.resources import ALL_VERBS, Registry, ResourceType

JSON = dict[str, Any]

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"

VERSION = {
    "major": "1",
    "minor": "37",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
    "gitVersion": "v1.37.2-q-operator-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.26.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# Custom resources list their verbs in the order apiextensions-apiserver writes them.
_CUSTOM_VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
_STATUS_VERBS = ["get", "patch", "update"]


def wants_aggregated(accept: str) -> bool:
    """Whether the client asked for aggregated discovery (v2) before the legacy documents."""
    first = accept.split(",")[0]
    return "as=APIGroupDiscoveryList" in first and "v=v2" in first and "v=v2beta1" not in first


def verbs(rt: ResourceType) -> list[str]:
    if rt.is_custom:
        return list(_CUSTOM_VERBS)
    if rt.key == ("", "namespaces"):
        return [v for v in ALL_VERBS if v != "deletecollection"]
    return list(ALL_VERBS)


def storage_version_hash(rt: ResourceType) -> str:
    """What kube-apiserver publishes: the first 8 bytes of sha256("group/version/kind"), base64."""
    version = rt.storage_version or rt.version
    digest = hashlib.sha256(f"{rt.group}/{version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _subresources(rt: ResourceType) -> list[tuple[str, list[str]]]:
    subs: list[tuple[str, list[str]]] = []
    if rt.key == ("", "namespaces"):
        subs.append(("finalize", ["update"]))
    if rt.has_status:
        subs.append(("status", list(_STATUS_VERBS)))
    return subs


def _types(registry: Registry, group: str, version: str) -> list[ResourceType]:
    """Built-ins by name; custom resources in the order their CRDs were created, as served."""
    types = registry.in_group_version(group, version)
    return sorted(types, key=lambda rt: rt.plural) if all(rt.builtin for rt in types) else types


# ---- legacy --------------------------------------------------------------------------------------------


def api_versions(server_address: str) -> JSON:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group_doc(group: str, versions: list[str]) -> JSON:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> JSON:
    groups = [_group_doc(g, vs) for g, vs in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> JSON | None:
    versions = registry.groups().get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _resource_entry(rt: ResourceType) -> JSON:
    entry: JSON = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": verbs(rt),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    entry["storageVersionHash"] = storage_version_hash(rt)
    return entry


def api_resource_list(registry: Registry, group: str, version: str) -> JSON | None:
    types = _types(registry, group, version)
    if not types:
        return None
    resources: list[JSON] = []
    for rt in types:
        resources.append(_resource_entry(rt))
        for sub, sub_verbs in _subresources(rt):
            resources.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": sub_verbs,
                }
            )
    doc: JSON = {"kind": "APIResourceList"}
    if group:
        doc["apiVersion"] = "v1"  # the core group's list carries no apiVersion
    doc.update(groupVersion=f"{group}/{version}" if group else version, resources=resources)
    return doc


# ---- aggregated (apidiscovery.k8s.io/v2) ----------------------------------------------------------------


def _kind_ref(rt: ResourceType) -> JSON:
    # The core group's resources name neither group nor version in their responseKind.
    if not rt.group:
        return {"group": "", "version": "", "kind": rt.kind}
    return {"group": rt.group, "version": rt.version, "kind": rt.kind}


def _aggregated_resource(rt: ResourceType) -> JSON:
    entry: JSON = {
        "resource": rt.plural,
        "responseKind": _kind_ref(rt),
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": verbs(rt),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    subs = _subresources(rt)
    if subs:
        entry["subresources"] = [
            {"subresource": sub, "responseKind": _kind_ref(rt), "verbs": sub_verbs} for sub, sub_verbs in subs
        ]
    return entry


def _aggregated_group(registry: Registry, group: str, versions: list[str]) -> JSON:
    return {
        "metadata": {"name": group} if group else {},
        "versions": [
            {
                "version": version,
                "resources": [_aggregated_resource(rt) for rt in _types(registry, group, version)],
                "freshness": "Current",
            }
            for version in versions
        ],
    }


def aggregated(registry: Registry, core: bool) -> JSON:
    """/api (core) or /apis (every group) as one APIGroupDiscoveryList."""
    groups = registry.groups()
    items = (
        [_aggregated_group(registry, "", groups.get("", ["v1"]))]
        if core
        else [_aggregated_group(registry, g, vs) for g, vs in groups.items() if g]
    )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
