"""Server-side printing columns of the built-in kinds served here, as kube-apiserver 1.37 defines them.

Names, types, priorities and descriptions are the API server's own (the descriptions are the API's
field documentation); tables.py computes the cells.
"""

from __future__ import annotations

JSON = dict[str, object]

_D0 = (
    "Name must be unique within a namespace. Is required when creating resources, although some "
    "resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be "
    "updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-"
    "objects/names#names"
)
_D1 = "The status of the namespace"
_D2 = (
    "CreationTimestamp is a timestamp representing the server time when this object was created. It "
    "is not guaranteed to be set in happens-before order across separate operations. Clients may not "
    "set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-"
    "only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-"
    "architecture/api-conventions.md#metadata"
)
_D3 = (
    "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_'"
    " or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in "
    "Data must not overlap with the keys in the BinaryData field, this is enforced during validation "
    "process."
)
_D4 = (
    "Used to facilitate programmatic handling of secret data. More info: "
    "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"
)
_D5 = (
    "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or "
    "'.'. The serialized form of the secret data is a base64 encoded string, representing the "
    "arbitrary (possibly non-string) data value here. Described in "
    "https://tools.ietf.org/html/rfc4648#section-4"
)
_D6 = "The time at which the most recent occurrence of this event was recorded."
_D7 = "Type of this event (Normal, Warning), new types could be added in the future"
_D8 = (
    "This should be a short, machine understandable string that gives the reason for the transition "
    "into the object's current status."
)
_D9 = "The object that this event is about."
_D10 = (
    "If referring to a piece of an object instead of an entire object, this string should contain a "
    "valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, "
    "if the object reference is to a container within a pod, this would take on a value like: "
    '"spec.containers{name}" (where "name" refers to the name of the container that triggered the '
    'event) or if no container name is specified "spec.containers[2]" (container with index 2 in this'
    " pod). This syntax is chosen only to have some well-defined way of referencing a part of an "
    "object."
)
_D11 = "The component reporting this event. Should be a short machine understandable string."
_D12 = "A human-readable description of the status of this operation."
_D13 = "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"
_D14 = "The number of times this event has occurred."
_D15 = (
    "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader "
    "Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name "
    "field."
)
_D16 = "Cluster/Namespaced"
_D17 = "Served versions"
_D18 = "API group"
_D19 = "CustomResource kind"
_D20 = "Short names"
_D21 = "Established status"


def _column(name: str, kind: str, description: str, priority: int = 0, fmt: str = "") -> JSON:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


NAME = _column("Name", "string", _D0, fmt="name")
CREATION_TIMESTAMP = _D2
CREATED_AT = _column("Created At", "date", _D2)

# (group, plural) -> every column, Name included where the server puts it.
BUILTIN: dict[tuple[str, str], list[JSON]] = {
    ("", "namespaces"): [
        NAME,
        _column("Status", "string", _D1),
        _column("Age", "string", _D2),
    ],
    ("", "configmaps"): [
        NAME,
        _column("Data", "string", _D3),
        _column("Age", "string", _D2),
    ],
    ("", "secrets"): [
        NAME,
        _column("Type", "string", _D4),
        _column("Data", "string", _D5),
        _column("Age", "string", _D2),
    ],
    ("", "serviceaccounts"): [
        NAME,
        _column("Age", "string", _D2),
    ],
    ("", "events"): [
        _column("Last Seen", "string", _D6),
        _column("Type", "string", _D7),
        _column("Reason", "string", _D8),
        _column("Object", "string", _D9),
        _column("Subobject", "string", _D10, priority=1),
        _column("Source", "string", _D11, priority=1),
        _column("Message", "string", _D12),
        _column("First Seen", "string", _D13, priority=1),
        _column("Count", "string", _D14, priority=1),
        _column("Name", "string", _D0, priority=1, fmt="name"),
    ],
    ("coordination.k8s.io", "leases"): [
        NAME,
        _column("Holder", "string", _D15),
        _column("Age", "string", _D2),
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        NAME,
        _column("Scope", "string", _D16),
        _column("Versions", "string", _D17),
        _column("Created At", "date", _D2),
        _column("Group", "string", _D18, priority=1),
        _column("Kind", "string", _D19, priority=1),
        _column("ShortNames", "string", _D20, priority=1),
        _column("Established", "boolean", _D21, priority=1),
    ],
}
BUILTIN[("events.k8s.io", "events")] = BUILTIN[("", "events")]
