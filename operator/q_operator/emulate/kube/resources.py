"""The resource types the stand-in serves: built-in ones and those that CRDs declare.

A `ResourceType` is one served group/version/plural. Objects are stored per (group, plural), so every
served version of a CRD shares one set of objects (conversion strategy None, as most CRDs use).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

JSON = dict[str, Any]

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")

CRD_GROUP = "apiextensions.k8s.io"

# The API groups a real kube-apiserver serves itself (not through CRDs or aggregation): their
# unknown paths answer a NotFound Status, where other groups get the mux's plain-text 404.
BUILTIN_GROUPS = frozenset(
    {
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "apiregistration.k8s.io",
        "apps",
        "authentication.k8s.io",
        "authorization.k8s.io",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "flowcontrol.apiserver.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "resource.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "storagemigration.k8s.io",
    }
)


@dataclass(frozen=True)
class PrinterColumn:
    """One additionalPrinterColumns entry of a CRD version."""

    name: str
    type: str
    json_path: str
    description: str = ""
    format: str = ""
    priority: int = 0


@dataclass
class ResourceType:
    """One served group/version/plural and the rules that apply to its objects."""

    group: str
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    has_status: bool = False
    schema: JSON | None = None
    printer_columns: tuple[PrinterColumn, ...] = ()
    builtin: bool = True
    tracks_generation: bool = False
    returns_deleted_object: bool = False
    unconditional_update: bool = True
    field_labels: tuple[str, ...] = ()
    top_fields: tuple[str, ...] | None = None  # built-ins: the fields a typed decoder knows at the top
    storage_version: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """Storage key shared by every version of the resource."""
        return (self.group, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """`plural.group` as the API server names resources in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_kind(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def is_custom(self) -> bool:
        return not self.builtin


def _builtin(group: str, version: str, plural: str, kind: str, namespaced: bool, **kw: Any) -> ResourceType:
    return ResourceType(
        group=group,
        version=version,
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        namespaced=namespaced,
        **kw,
    )


_EVENT_FIELDS = (
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)


def builtin_types() -> list[ResourceType]:
    """The built-in resources kopf, kubectl and the operator touch."""
    return [
        _builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            False,
            short_names=("ns",),
            has_status=True,
            returns_deleted_object=True,
            field_labels=("status.phase",),
            top_fields=("spec", "status"),
        ),
        _builtin("", "v1", "events", "Event", True, short_names=("ev",), field_labels=_EVENT_FIELDS),
        _builtin(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            True,
            short_names=("cm",),
            top_fields=("data", "binaryData", "immutable"),
        ),
        _builtin(
            "",
            "v1",
            "secrets",
            "Secret",
            True,
            field_labels=("type",),
            top_fields=("data", "stringData", "type", "immutable"),
        ),
        _builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            True,
            short_names=("sa",),
            top_fields=("secrets", "imagePullSecrets", "automountServiceAccountToken"),
        ),
        _builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            True,
            short_names=("ev",),
            field_labels=(
                "regarding.kind",
                "regarding.namespace",
                "regarding.name",
                "regarding.uid",
                "reason",
                "type",
                "reportingController",
            ),
        ),
        _builtin("coordination.k8s.io", "v1", "leases", "Lease", True, top_fields=("spec",)),
        # Stored so that a chart or manifest (`helm install`, `kubectl apply -f`) goes in; nothing runs them.
        _builtin(
            "", "v1", "services", "Service", True, short_names=("svc",), categories=("all",), has_status=True
        ),
        _builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            True,
            short_names=("deploy",),
            categories=("all",),
            has_status=True,
            tracks_generation=True,
        ),
        _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
        _builtin(
            CRD_GROUP,
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=("crd", "crds"),
            categories=("api-extensions",),
            has_status=True,
            tracks_generation=True,
            returns_deleted_object=True,
        ),
    ]


def types_from_crd(crd: JSON) -> list[ResourceType]:
    """Every served version of a CustomResourceDefinition as a ResourceType."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = str(spec.get("group", ""))
    plural = str(names.get("plural", ""))
    kind = str(names.get("kind", ""))
    versions = spec.get("versions") or []
    storage = next((str(v.get("name")) for v in versions if v.get("storage")), "")
    result = []
    for ver in versions:
        if not ver.get("served", True):
            continue
        schema = ((ver.get("schema") or {}).get("openAPIV3Schema")) or None
        columns = tuple(
            PrinterColumn(
                name=str(c.get("name", "")),
                type=str(c.get("type", "string")),
                json_path=str(c.get("jsonPath", "")),
                description=str(c.get("description", "")),
                format=str(c.get("format", "")),
                priority=int(c.get("priority", 0)),
            )
            for c in ver.get("additionalPrinterColumns") or []
        )
        result.append(
            ResourceType(
                group=group,
                version=str(ver.get("name")),
                plural=plural,
                singular=str(names.get("singular") or kind.lower()),
                kind=kind,
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                has_status="status" in (ver.get("subresources") or {}),
                schema=schema,
                printer_columns=columns,
                builtin=False,
                tracks_generation=True,
                unconditional_update=False,
                storage_version=storage,
                field_labels=tuple(
                    str(f.get("jsonPath", "")).lstrip(".")
                    for f in ver.get("selectableFields") or []
                    if f.get("jsonPath")
                ),
            )
        )
    return result


_VERSION_RE = re.compile(r"^v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first; others last by name."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major = int(m.group(1))
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, -major, -minor, "")


@dataclass
class Registry:
    """All served resource types, indexed for URL routing and discovery."""

    types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)
    crd_types: dict[str, list[ResourceType]] = field(default_factory=dict)
    generation: int = 0

    @classmethod
    def with_builtins(cls) -> Registry:
        reg = cls()
        for rt in builtin_types():
            reg.types[(rt.group, rt.version, rt.plural)] = rt
        return reg

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def add_crd(self, crd: JSON) -> list[ResourceType]:
        """Serve (or re-serve after an update) the versions of a CRD."""
        name = str((crd.get("metadata") or {}).get("name", ""))
        self.remove_crd(name)
        new = types_from_crd(crd)
        for rt in new:
            self.types[(rt.group, rt.version, rt.plural)] = rt
        self.crd_types[name] = new
        self.generation += 1
        return new

    def remove_crd(self, name: str) -> list[ResourceType]:
        old = self.crd_types.pop(name, [])
        for rt in old:
            self.types.pop((rt.group, rt.version, rt.plural), None)
        if old:
            self.generation += 1
        return old

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred first."""
        out: dict[str, set[str]] = {}
        for group, version, _ in self.types:
            out.setdefault(group, set()).add(version)
        return {g: sorted(vs, key=version_priority) for g, vs in sorted(out.items())}

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for (g, v, _), rt in sorted(self.types.items()) if g == group and v == version]

    def versions_of(self, key: tuple[str, str]) -> Iterator[ResourceType]:
        return (rt for rt in self.types.values() if rt.key == key)

    def storage_type(self, key: tuple[str, str]) -> ResourceType | None:
        """The version objects of `key` are validated as when stored (the storage version)."""
        candidates = list(self.versions_of(key))
        for rt in candidates:
            if rt.version == rt.storage_version:
                return rt
        return candidates[0] if candidates else None
