"""What Argo CD would call OutOfSync: the fields a manifest sets that differ on the live object.

Argo CD compares only what Git sets (fields the API server or a controller add are left out), so an
app stays Synced as long as every field of the applied manifest still holds on the live object. The
end-to-end suite applies a manifest, lets the operator reconcile it to Ready, and asserts:

    assert user_fields_drift(manifest, live) == []
    assert live["metadata"]["generation"] == generation_right_after_apply   # nobody wrote spec

`metadata.generation` moves only when spec changes, so the second line catches an operator that
writes spec even where the manifest left a field out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def user_fields_drift(applied: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Dotted paths of spec fields, labels and annotations the manifest sets that differ when live."""
    drift: list[str] = []
    _compare(applied.get("spec"), live.get("spec"), "spec", drift)
    applied_meta = applied.get("metadata") or {}
    live_meta = live.get("metadata") or {}
    for section in ("labels", "annotations"):
        live_values = live_meta.get(section) or {}
        for key, value in (applied_meta.get(section) or {}).items():
            if live_values.get(key) != value:
                drift.append(f"metadata.{section}.{key}")
    return drift


def _compare(want: Any, have: Any, path: str, drift: list[str]) -> None:
    if want is None:
        return
    if isinstance(want, Mapping):
        if not isinstance(have, Mapping):
            drift.append(path)
            return
        for key, value in want.items():
            _compare(value, have.get(key), f"{path}.{key}", drift)
    elif isinstance(want, list):
        if not isinstance(have, list) or len(want) != len(have):
            drift.append(path)
            return
        for index, (w, h) in enumerate(zip(want, have, strict=True)):
            _compare(w, h, f"{path}[{index}]", drift)
    elif want != have:
        drift.append(path)
