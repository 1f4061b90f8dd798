"""The patch formats the API server accepts: JSON merge patch, JSON patch, and strategic merge patch.

Strategic merge patch is served for built-in resources only (as a real server does; custom resources
answer 415 and kubectl falls back to merge patch), with the list merge strategies of the built-in
kinds served here written down in a table instead of read from Go struct tags.
"""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class PatchError(Exception):
    """A patch that cannot be applied; `test_failed` distinguishes a failed `test` operation."""

    def __init__(self, message: str, test_failed: bool = False) -> None:
        super().__init__(message)
        self.test_failed = test_failed


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Lists that strategic merge patch merges (by key, or as a set of primitives) in the kinds served here;
# every other list is replaced, as Go types without a patch strategy are.
_MERGE_KEYS = {
    "metadata.ownerReferences": "uid",
    "spec.versions": "name",  # CustomResourceDefinition
    "secrets": "name",  # ServiceAccount
    "imagePullSecrets": "name",
    # Deployment pod template and Service, the fields charts commonly change.
    "spec.template.spec.containers": "name",
    "spec.template.spec.initContainers": "name",
    "spec.template.spec.volumes": "name",
    "spec.template.spec.containers.env": "name",
    "spec.template.spec.containers.volumeMounts": "mountPath",
    "spec.template.spec.containers.ports": "containerPort",
    "spec.ports": "port",
}
_MERGE_PRIMITIVES = {"metadata.finalizers"}


def strategic_merge_patch(target: Any, patch: Any, path: str = "") -> Any:
    """Strategic merge patch with the merge strategies of the built-in kinds served here."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        field = f"{path}.{key}" if path else key
        current = result.get(key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and field in _MERGE_KEYS and isinstance(current, list):
            result[key] = _merge_by_key(current, value, _MERGE_KEYS[field], field)
        elif isinstance(value, list) and field in _MERGE_PRIMITIVES and isinstance(current, list):
            # The patch's items come first, then the ones it did not name (as kube-apiserver merges).
            result[key] = value + [v for v in current if v not in value]
        else:
            merged = strategic_merge_patch(current, value, field)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [x for x in result[field] if x not in value]
    return result


def _merge_by_key(current: list[Any], patch: list[Any], merge_key: str, path: str) -> list[Any]:
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        if not isinstance(item, dict):
            continue
        idx = next(
            (
                n
                for n, cur in enumerate(out)
                if isinstance(cur, dict) and cur.get(merge_key) == item.get(merge_key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append({k: copy.deepcopy(v) for k, v in item.items() if not k.startswith("$")})
        else:
            out[idx] = strategic_merge_patch(out[idx], item, path)
    return out


def apply_as_merge_patch(previous: JSON | None, applied: JSON) -> JSON:
    """Server-side apply approximated: the applied config as a merge patch that also removes the fields
    this field manager applied last time and no longer applies (what SSA's field ownership achieves)."""
    out: JSON = copy.deepcopy(applied)
    if not previous:
        return out
    for key, old in previous.items():
        if key not in applied:
            out[key] = None
        elif isinstance(old, dict) and isinstance(applied[key], dict):
            out[key] = apply_as_merge_patch(old, applied[key])
    return out


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {pointer!r}")
    return [_unescape(t) for t in pointer[1:].split("/")]


def _resolve(doc: Any, tokens: list[str], pointer: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"doc is missing path: {pointer}: missing value")
            node = node[token]
        elif isinstance(node, list):
            try:
                node = node[int(token)]
            except (ValueError, IndexError):
                raise PatchError(f"doc is missing path: {pointer}: missing value") from None
        else:
            raise PatchError(f"doc is missing path: {pointer}: missing value")
    return node


def _add(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1], pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            try:
                idx = int(last)
            except ValueError:
                raise PatchError(f"add operation does not apply: doc is missing path: {pointer}") from None
            if idx < 0 or idx > len(parent):
                raise PatchError(f"add operation does not apply: doc is missing path: {pointer}")
            parent.insert(idx, value)
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: {pointer}")
    return doc


def _remove(doc: Any, tokens: list[str], pointer: str) -> Any:
    if not tokens:
        raise PatchError("unable to remove the whole document")
    parent = _resolve(doc, tokens[:-1], pointer)
    last = tokens[-1]
    try:
        if isinstance(parent, dict):
            return parent.pop(last)
        if isinstance(parent, list):
            return parent.pop(int(last))
    except (KeyError, ValueError, IndexError):
        pass
    raise PatchError(f"remove operation does not apply: doc is missing path: {pointer}")


def json_patch(target: Any, operations: Any) -> Any:
    """RFC 6902 on a copy of `target`."""
    if not isinstance(operations, list):
        raise PatchError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op:
            raise PatchError("Unexpected kind: <nil>")
        kind = op["op"]
        pointer = str(op.get("path", ""))
        tokens = _parse_pointer(pointer)
        if kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")), pointer)
        elif kind == "remove":
            _remove(doc, tokens, pointer)
        elif kind == "replace":
            # As the API server's JSON patch library: replacing a missing member of an object adds it.
            parent = _resolve(doc, tokens[:-1], pointer) if tokens else None
            if tokens and not (isinstance(parent, dict) and tokens[-1] not in parent):
                _resolve(doc, tokens, pointer)
                _remove(doc, tokens, pointer)
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")), pointer)
        elif kind in ("move", "copy"):
            source = str(op.get("from", ""))
            src_tokens = _parse_pointer(source)
            try:
                value = copy.deepcopy(_resolve(doc, src_tokens, source))
            except PatchError:
                if kind == "move":
                    raise
                value = None  # copying a missing member copies null
            if kind == "move":
                _remove(doc, src_tokens, source)
            doc = _add(doc, tokens, value, pointer)
        elif kind == "test":
            try:
                current = _resolve(doc, tokens, pointer)
            except PatchError:
                raise PatchError(f"testing value {pointer} failed: test failed", test_failed=True) from None
            if current != op.get("value"):
                raise PatchError(f"testing value {pointer} failed: test failed", test_failed=True)
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc
