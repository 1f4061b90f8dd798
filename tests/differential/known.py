"""The differences between the stand-in and kube-apiserver we accept, each with why it does not matter.

`case` and `path` are shell patterns over a case name and a difference's `label/json/path`. Keep this
list short and honest: docs/testing.md ("Stand-in vs the real server") explains each group to users.
"""

from __future__ import annotations

from tests.differential.harness import Known

_NO_GC = (
    "the real test server runs no garbage collector; in a cluster the collector removes the orphan or "
    "foregroundDeletion finalizer of an object without dependents at once, as the stand-in does"
)
_NO_NAMESPACE_CONTROLLER = (
    "the real test server runs no namespace controller, so a deleted namespace stays Terminating; in a "
    "cluster it empties and goes, as in the stand-in, after which a create there answers this 404"
)
_NOT_SERVED = (
    "the stand-in serves no TokenRequest and no service proxy (the operator uses neither; the RBAC proof "
    "with a ServiceAccount token runs on the real server)"
)

_CEL_WORDING = (
    "a CEL rule that does not compile is refused alike (422, same field); the compiler's own error text is "
    "cel-go's on the real server and cel-python's in the stand-in"
)
_GO_STRUCT = (
    "the real server prints the CRD's internal Go struct as the invalid value; the stand-in names its type"
)
_CRD_DELETION = (
    "the stand-in deletes a CRD and its objects at once; a real server first marks it Terminating "
    "(InstanceDeletionPending) while it removes the objects"
)
_BUILTIN_DEFAULTS = (
    "nothing runs Deployments or Services in the stand-in, so it fills in none of their defaults (cluster "
    "IPs, pod template defaults); the operator never reads them"
)

KNOWN: list[Known] = [
    Known("crd-validation", "bad-cel/body/message", _CEL_WORDING),
    Known("crd-validation", "bad-cel/body/details/causes/0/message", _CEL_WORDING),
    Known("crd-validation", "no-storage-version/body/message", _GO_STRUCT),
    Known("crd-validation", "no-storage-version/body/details/causes/0/message", _GO_STRUCT),
    Known("crd-validation", "delete-valid/body/status/conditions/2", _CRD_DELETION),
    Known("chart-objects", "create-Service/body/*", _BUILTIN_DEFAULTS),
    Known("chart-objects", "create-Deployment/body/*", _BUILTIN_DEFAULTS),
    Known("cascading-deletion", "get-after-fg/*", _NO_GC),
    Known("cascading-deletion", "get-after-orph/*", _NO_GC),
    Known("namespaces", "create-in-terminating/*", _NO_NAMESPACE_CONTROLLER),
    Known("discovery", "core-v1/body/resources/serviceaccounts/token", _NOT_SERVED),
    Known("discovery", "core-v1/body/resources/services/proxy", _NOT_SERVED),
    Known(
        "discovery",
        "aggregated-api/body/items/0/versions/v1/resources/serviceaccounts/subresources",
        _NOT_SERVED,
    ),
    Known(
        "discovery",
        "aggregated-api/body/items/0/versions/v1/resources/services/subresources/proxy",
        _NOT_SERVED,
    ),
]
