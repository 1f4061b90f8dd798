"""The Namespace watch: each Namespace's AWS binding (annotations a cluster admin sets: identity.py)
is kept as the watch sees it, so a changed binding takes effect without a restart.

When a binding changes, the namespace's objects are reconciled at once with the new one: their
annotation `q-operator.dev/namespace-binding` is set to a digest of the binding, which kopf sees as a
change (as configmaps.py does for a ConfigMap's data). Which objects live in which namespace is an
index per kind (memory.Index, kept by handlers.py). Namespaces are cluster-scoped, so this watch
reads every Namespace of the cluster, in a namespaced install too (the chart's RBAC grants list and
watch on namespaces, nothing more; a namespace not seen yet is read with a list narrowed to its name).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import kopf

from q_operator import registry
from q_operator.engine import process
from q_operator.engine.identity import binding_of, describe
from q_operator.kinds.base import KindInfo

BINDING_HASH = "q-operator.dev/namespace-binding"

log = logging.getLogger("q_operator.engine")


def index_name(kind: KindInfo[Any, Any]) -> str:
    return "namespace_objects_" + "".join(ch if ch.isalnum() else "_" for ch in kind.plural)


def digest(annotations: Mapping[str, str]) -> str:
    """A short digest of what the binding says (not of every annotation of the Namespace)."""
    binding = binding_of(annotations)
    text = json.dumps(
        [
            binding.role.arn if binding.role else None,
            binding.role.external_id if binding.role else None,
            binding.region,
            binding.adoption,
            binding.problem,
        ]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@kopf.on.event("", "v1", "namespaces", id="namespace-bindings")
async def on_namespace(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    """Keep the namespace's binding; when it changed, reconcile the namespace's objects now."""
    meta = body.get("metadata", {})
    name = str(meta.get("name", ""))
    identities = process.state().deps.identities
    if event.get("type") == "DELETED":
        identities.forget(name)
        return
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    if not identities.update(name, annotations):
        return
    value = digest(annotations)
    for kind in registry.KINDS:
        names = process.state().deps.memory.index(index_name(kind)).get(name)
        if not names:
            continue
        log.info(
            "namespace %s: %d %s object(s) reconciled for the new binding (%s)",
            name,
            len(names),
            kind.kind,
            describe(binding_of(annotations)),
        )
        for obj in names:
            await process.mark(kind, name, str(obj), BINDING_HASH, value, "for its namespace's new binding")
