"""The ConfigMap watch: a ConfigMap a spec refers to (`...From.configMapKeyRef`) is watched, and when
its data changes (or it appears or goes), the objects that refer to it get the annotation
`q-operator.dev/configmap-hash` bumped. kopf sees that as a change and reconciles, so the new value
reaches AWS. Which objects refer to which ConfigMap is an index per kind (memory.Index, kept by
handlers.py and forgotten with the object)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import kopf

from q_operator import registry
from q_operator.engine import process
from q_operator.engine.reconcile import config_map_names
from q_operator.kinds.base import KindInfo

CONFIGMAP_HASH = "q-operator.dev/configmap-hash"


def index_name(kind: KindInfo[Any, Any]) -> str:
    return "configmap_refs_" + "".join(ch if ch.isalnum() else "_" for ch in kind.plural)


def references(namespace: str | None, name: str, spec: Mapping[str, Any]) -> dict[tuple[str, str], str]:
    """The index entries of one object: (its namespace, a ConfigMap it refers to) → its name."""
    return {(namespace or "", cm): name for cm in config_map_names(dict(spec))}


def _digest(data: Mapping[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(dict(data or {}), sort_keys=True).encode()).hexdigest()[:16]


async def _bump(kind: KindInfo[Any, Any], namespace: str, name: str, digest: str) -> None:
    await process.mark(kind, namespace, name, CONFIGMAP_HASH, digest, "for the ConfigMap change")


@kopf.on.event("", "v1", "configmaps", id="configmap-changes")
async def on_configmap(event: kopf.RawEvent, body: kopf.Body, **kwargs: Any) -> None:
    """Reconcile the objects that refer to a ConfigMap whose data changed (or that appeared or went)."""
    meta = body.get("metadata", {})
    key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
    kind_of_event = event.get("type")
    digest = "deleted" if kind_of_event == "DELETED" else _digest(body.get("data"))
    digests = process.state().configmap_digests
    previous = digests.get(key)
    digests[key] = digest
    if previous == digest:
        return  # no change in data
    if previous is None and kind_of_event is None:
        return  # first sight in the initial listing: resume reconciles everything anyway
    # (kopf re-lists when a watch is re-established: a change made in between arrives as a listing)
    for kind in registry.KINDS:
        for name in process.state().deps.memory.index(index_name(kind)).get(key):
            await _bump(kind, key[0], name, digest)
