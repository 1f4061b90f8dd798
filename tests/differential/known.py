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

KNOWN: list[Known] = [
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
