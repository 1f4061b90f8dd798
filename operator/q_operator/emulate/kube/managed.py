"""Field ownership: `metadata.managedFields` and server-side apply, as structured-merge-diff keeps them.

Every write records which manager owns which fields. An update (create, PUT, merge/JSON/strategic
patch) gives its manager the fields it added or changed and takes them from everyone else; an apply
gives its manager exactly the fields of the applied configuration, removes the fields it applied last
time and no longer applies (unless someone else owns them), and refuses, with 409 Conflict, to change
a field another manager owns to another value unless `force=true`.

Field sets are sets of paths in the `FieldsV1` notation: `f:<field>`, `k:{"key":value}` for items of
`x-kubernetes-list-type: map` lists, `v:<value>` for `set` lists; other lists and atomic maps are one
leaf. The shape of an object comes from its CRD schema (custom resources) or is deduced from the value
(maps are granular, lists atomic), with the list types of metadata written down below.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from q_operator.emulate.kube.errors import ApiError

JSON = dict[str, Any]
Path = tuple[str, ...]

_MISSING: Any = object()
_STRING: JSON = {"type": "string"}
_MAP_OF_STRINGS: JSON = {"type": "object", "additionalProperties": _STRING}
METADATA: JSON = {
    "type": "object",
    "properties": {
        "labels": _MAP_OF_STRINGS,
        "annotations": _MAP_OF_STRINGS,
        "finalizers": {"type": "array", "x-kubernetes-list-type": "set", "items": _STRING},
        "ownerReferences": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["uid"],
            "items": {
                "type": "object",
                "properties": {
                    key: {"type": "boolean" if key in ("controller", "blockOwnerDeletion") else "string"}
                    for key in ("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
                },
            },
        },
    },
    "x-kubernetes-preserve-unknown-fields": True,
}
# Never owned by anyone (structured-merge-diff's "strip meta").
_STRIPPED: frozenset[Path] = frozenset(
    {
        ("f:apiVersion",),
        ("f:kind",),
        ("f:metadata",),
        *(
            ("f:metadata", f"f:{key}")
            for key in (
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            )
        ),
    }
)


def root_schema(schema: JSON | None) -> JSON:
    """The shape of a whole object: its CRD schema (or deduced, for built-ins) plus metadata."""
    props = dict((schema or {}).get("properties") or {})
    props.update(metadata=METADATA, apiVersion=_STRING, kind=_STRING)
    root: JSON = {"type": "object", "properties": props}
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        root["x-kubernetes-preserve-unknown-fields"] = True
    return root


# ---- shapes ------------------------------------------------------------------------------------------


def _kind(schema: JSON | None, value: Any) -> str:
    """struct, map, list-map, list-set, atomic or scalar: how a node is owned."""
    if schema is None:  # deduced from the value
        return "map" if isinstance(value, dict) else "atomic" if isinstance(value, list) else "scalar"
    if isinstance(value, dict):
        if schema.get("x-kubernetes-map-type") == "atomic":
            return "atomic"
        if schema.get("type") not in (None, "object"):
            return "atomic"
        return "struct" if schema.get("properties") else "map"
    if isinstance(value, list):
        if schema.get("type") not in (None, "array"):
            return "atomic"
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map" and schema.get("x-kubernetes-list-map-keys"):
            return "list-map"
        return "list-set" if list_type == "set" else "atomic"
    return "scalar"


def _child(schema: JSON | None, key: str) -> tuple[JSON | None, bool]:
    """The schema of a field, and whether it is a declared (named) field rather than a map entry."""
    if schema is None:
        return None, False
    props = schema.get("properties") or {}
    if key in props:
        return props[key], True
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        return additional, False
    return None, False


def _items(schema: JSON | None) -> JSON | None:
    items = (schema or {}).get("items")
    return items if isinstance(items, dict) else None


def _element(schema: JSON | None, kind: str, item: Any) -> str:
    """The path element of a list item: `k:{...}` by its keys, or `v:<value>`."""
    if kind == "list-map":
        keys = sorted((schema or {}).get("x-kubernetes-list-map-keys") or [])
        ident = {k: item.get(k) for k in keys if isinstance(item, dict) and k in item}
        return "k:" + json.dumps(ident, separators=(",", ":"), sort_keys=True)
    return "v:" + json.dumps(item, separators=(",", ":"), sort_keys=True)


def _by_element(schema: JSON | None, kind: str, items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items if isinstance(items, list) else []:
        out.setdefault(_element(schema, kind, item), item)
    return out


# ---- comparing and collecting --------------------------------------------------------------------------


@dataclass
class Comparison:
    added: set[Path]
    modified: set[Path]
    removed: set[Path]


def compare(old: Any, new: Any, schema: JSON | None) -> Comparison:
    """Which paths an update added, changed and removed (managedFields themselves left out)."""
    result = Comparison(set(), set(), set())
    _compare(_without_managed(old), _without_managed(new), schema, (), result)
    return result


def _compare(old: Any, new: Any, schema: JSON | None, path: Path, out: Comparison) -> None:
    kind = _kind(schema, new if new is not _MISSING else old)
    both_empty = all(v is _MISSING or v in ({}, []) for v in (old, new))
    shapes_match = (
        old is _MISSING or new is _MISSING or type(old) is type(new) or not isinstance(old, dict | list)
    )
    if kind in ("scalar", "atomic") or both_empty or not shapes_match:
        if old is _MISSING:
            out.added.add(path)
        elif new is _MISSING:
            out.removed.add(path)
        elif old != new:
            out.modified.add(path)
        return
    if path:
        if old is _MISSING:
            out.added.add(path)
        elif new is _MISSING:
            out.removed.add(path)
    if kind in ("struct", "map"):
        left = old if isinstance(old, dict) else {}
        right = new if isinstance(new, dict) else {}
        for key in list(left) + [k for k in right if k not in left]:
            sub, _ = _child(schema, key)
            _compare(left.get(key, _MISSING), right.get(key, _MISSING), sub, (*path, f"f:{key}"), out)
        return
    left_items = _by_element(schema, kind, old)
    right_items = _by_element(schema, kind, new)
    items = _items(schema)
    for element in list(left_items) + [e for e in right_items if e not in left_items]:
        _compare(
            left_items.get(element, _MISSING),
            right_items.get(element, _MISSING),
            items,
            (*path, element),
            out,
        )


def field_set(value: Any, schema: JSON | None) -> set[Path]:
    """The fields an applied configuration sets: its leaves, its map entries and list items."""
    out: set[Path] = set()
    _collect(_without_managed(value), schema, (), out)
    return out


def _collect(value: Any, schema: JSON | None, path: Path, out: set[Path]) -> None:
    kind = _kind(schema, value)
    if kind in ("scalar", "atomic"):
        out.add(path)
        return
    if kind in ("struct", "map"):
        for key, item in value.items():
            sub, declared = _child(schema, key)
            child_path = (*path, f"f:{key}")
            _collect(item, sub, child_path, out)
            if item is None or item == {} or not declared:
                out.add(child_path)
        return
    items = _items(schema)
    for item in value:
        child_path = (*path, _element(schema, kind, item))
        _collect(item, items, child_path, out)
        out.add(child_path)


def _without_managed(value: Any) -> Any:
    if (
        isinstance(value, dict)
        and isinstance(value.get("metadata"), dict)
        and "managedFields" in value["metadata"]
    ):
        value = {**value, "metadata": {k: v for k, v in value["metadata"].items() if k != "managedFields"}}
    return value


# ---- merging and removing (apply) ------------------------------------------------------------------------


def merge(live: Any, config: Any, schema: JSON | None) -> Any:
    """structured-merge-diff's merge of an applied configuration into the live object."""
    if config is _MISSING:
        return copy.deepcopy(live)
    if live is _MISSING or live is None:
        return copy.deepcopy(config)
    kind = _kind(schema, config)
    if kind in ("struct", "map") and isinstance(live, dict):
        out = dict(live)
        for key, value in config.items():
            sub, _ = _child(schema, key)
            out[key] = merge(live.get(key, _MISSING), value, sub)
        return out
    if kind in ("list-map", "list-set") and isinstance(live, list):
        items = _items(schema)
        configured = _by_element(schema, kind, config)
        merged = []
        for item in live:
            element = _element(schema, kind, item)
            merged.append(merge(item, configured.pop(element), items) if element in configured else item)
        return merged + [copy.deepcopy(v) for v in configured.values()]
    return copy.deepcopy(config)


def remove(obj: Any, path: Path, schema: JSON | None) -> None:
    """Delete the node at `path` (if it is there)."""
    if not path:
        return
    node, node_schema = obj, schema
    for element in path[:-1]:
        node, node_schema = _step(node, node_schema, element)
        if node is _MISSING:
            return
    last = path[-1]
    if last.startswith("f:") and isinstance(node, dict):
        node.pop(last[2:], None)
    elif isinstance(node, list):
        kind = _kind(node_schema, node)
        for i, item in enumerate(node):
            if _element(node_schema, kind, item) == last:
                del node[i]
                return


def _step(node: Any, schema: JSON | None, element: str) -> tuple[Any, JSON | None]:
    if element.startswith("f:") and isinstance(node, dict):
        sub, _ = _child(schema, element[2:])
        return node.get(element[2:], _MISSING), sub
    if isinstance(node, list):
        kind = _kind(schema, node)
        for item in node:
            if _element(schema, kind, item) == element:
                return item, _items(schema)
    return _MISSING, None


def _prune(merged: Any, last: set[Path], kept: set[Path], schema: JSON | None) -> None:
    """Remove what the manager applied last time and nobody owns now; a declared field left empty by
    that goes too (structured-merge-diff removes named fields and adds back what is still owned)."""

    def owned_below(path: Path) -> bool:
        return any(k[: len(path)] == path for k in kept)

    for path in sorted(last - kept, key=len):
        if path not in _STRIPPED and not owned_below(path):
            remove(merged, path, schema)
    for path in sorted(_named_prefixes(last, schema) - last - kept, key=len, reverse=True):
        if path in _STRIPPED or owned_below(path):
            continue
        node, node_schema = merged, schema
        for element in path:
            node, node_schema = _step(node, node_schema, element)
        if node in ({}, []):
            remove(merged, path, schema)


def _named_prefixes(paths: Iterable[Path], schema: JSON | None) -> set[Path]:
    """Every declared field along the paths, as a path of its own (EnsureNamedFieldsAreMembers)."""
    out = set(paths)
    for path in list(out):
        node_schema = schema
        for i, element in enumerate(path[:-1]):
            if not element.startswith("f:"):
                node_schema = _items(node_schema)
                continue
            node_schema, declared = _child(node_schema, element[2:])
            if declared:
                out.add(path[: i + 1])
    return out


# ---- managers ---------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One managedFields entry: who, how, through which version and subresource, which fields."""

    manager: str
    operation: str
    api_version: str
    subresource: str
    fields: set[Path]
    time: str

    def identity(self) -> tuple[str, str, str, str]:
        version = self.api_version if self.operation == "Update" else ""
        return (self.manager, self.operation, version, self.subresource)

    def described(self) -> str:
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text

    def encode(self) -> JSON:
        entry: JSON = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": encode(self.fields),
        }
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode(paths: Iterable[Path]) -> JSON:
    """A set of paths as the FieldsV1 trie: a member with children carries `"."`."""
    members = set(paths)
    root: dict[str, Any] = {}
    for path in members:
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return _serialise(root, (), members)


def _serialise(node: dict[str, Any], path: Path, members: set[Path]) -> JSON:
    out: JSON = {}
    for element in sorted(node):
        child_path = (*path, element)
        child = _serialise(node[element], child_path, members)
        out[element] = {".": {}, **child} if child and child_path in members else child
    return out


def decode(fields: Any, path: Path = ()) -> set[Path]:
    out: set[Path] = set()
    if not isinstance(fields, dict):
        return out
    for element, child in fields.items():
        if element == ".":
            out.add(path)
            continue
        child_path = (*path, element)
        if not child:
            out.add(child_path)
        else:
            out |= decode(child, child_path)
    return out


def entries(obj: JSON) -> list[Entry]:
    """The managedFields of a stored object."""
    out = []
    for raw in (obj.get("metadata") or {}).get("managedFields") or []:
        if not isinstance(raw, dict) or not raw.get("manager"):
            continue
        out.append(
            Entry(
                manager=str(raw["manager"]),
                operation=str(raw.get("operation", "Update")),
                api_version=str(raw.get("apiVersion", "")),
                subresource=str(raw.get("subresource", "")),
                fields=decode(raw.get("fieldsV1")),
                time=str(raw.get("time", "")),
            )
        )
    return out


def encoded(managers: list[Entry]) -> list[JSON]:
    """Entries in the API server's order: Apply before Update, then by time, manager, version."""
    ordered = sorted(
        (m for m in managers if m.fields),
        key=lambda m: (m.operation, m.time, m.manager, m.api_version, m.subresource),
    )
    return [m.encode() for m in ordered]


def owned(paths: set[Path], ignored: Any) -> set[Path]:
    """Drop the paths nobody may own (strip meta) and those the endpoint resets (status vs spec)."""
    return {p for p in paths if p not in _STRIPPED and not ignored(p)}


def ignore_for(subresource: str, has_status: bool, set_by_strategy: tuple[str, ...] = ()) -> Any:
    """What an endpoint resets and therefore records for nobody: status on the main resource (when
    there is a status subresource), everything but status on the status subresource, and the
    top-level fields the kind's strategy fills in after the field manager ran."""
    skipped = {f"f:{field}" for field in set_by_strategy}
    if subresource == "status":
        return lambda path: not path or path[0] != "f:status"
    if has_status:
        skipped.add("f:status")
    return lambda path: bool(path) and path[0] in skipped


def update(
    live: Any,
    new: Any,
    schema: JSON | None,
    managers: list[Entry],
    manager: str,
    api_version: str,
    subresource: str,
    ignored: Any,
) -> list[Entry]:
    """The managers after a non-apply write of `new` over `live` (an empty object for a create)."""
    diff = compare(live, new, schema)
    changed = owned(diff.added | diff.modified, ignored)
    removed = owned(diff.removed, ignored)
    me = Entry(manager, "Update", api_version, subresource, set(), "")
    out: list[Entry] = []
    previous: Entry | None = None
    for entry in managers:
        fields = {p for p in entry.fields if p not in changed and p not in removed}
        kept = Entry(entry.manager, entry.operation, entry.api_version, entry.subresource, fields, entry.time)
        if entry.identity() == me.identity():
            previous = kept
        elif fields:
            out.append(kept)
    if changed:
        me.fields = changed | (previous.fields if previous else set())
        me.time = now()
        out.append(me)
    elif previous is not None and previous.fields:
        out.append(previous)
    return out


def apply(
    live: Any,
    config: JSON,
    schema: JSON | None,
    managers: list[Entry],
    manager: str,
    api_version: str,
    subresource: str,
    ignored: Any,
    force: bool,
) -> tuple[Any, list[Entry]]:
    """Server-side apply: the new object and managers, or 409 Conflict naming the fields."""
    me = Entry(manager, "Apply", api_version, subresource, set(), "")
    applied = owned(field_set(config, schema), ignored)
    last = next((m for m in managers if m.identity() == me.identity()), None)
    others = [m for m in managers if m.identity() != me.identity()]
    merged = merge(_without_managed(live), _without_managed(config), schema)
    if last is not None:
        _prune(merged, last.fields, applied.union(*(m.fields for m in others)), schema)
    diff = compare(live, merged, schema)
    changed = owned(diff.added | diff.modified, ignored)
    removed = owned(diff.removed, ignored)
    conflicts = [(m, p) for m in others for p in sorted(m.fields & changed)]
    if conflicts and not force:
        raise conflict_error(conflicts)
    out = []
    for entry in others:
        fields = {p for p in entry.fields if p not in changed and p not in removed}
        if fields:
            out.append(
                Entry(
                    entry.manager, entry.operation, entry.api_version, entry.subresource, fields, entry.time
                )
            )
    me.fields = applied
    me.time = now() if (diff.added or diff.modified or diff.removed or last is None) else last.time
    out.append(me)
    return merged, out


def path_text(path: Path) -> str:
    """A path as structured-merge-diff prints it: `.spec.size`, `[type="Ready"]`, `[=value]`."""
    text = ""
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            text += f".{rest}"
        elif kind == "k":
            keys = json.loads(rest)
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in keys.items()) + "]"
        elif kind == "v":
            text += f"[={rest}]"
        else:
            text += f"[{rest}]"
    return text


def conflict_error(conflicts: list[tuple[Entry, Path]]) -> ApiError:
    causes = [
        {"reason": "FieldManagerConflict", "message": f"conflict with {m.described()}", "field": path_text(p)}
        for m, p in conflicts
    ]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {entry.described()}: {path_text(path)}"
    else:
        lines = []
        by_manager: dict[str, list[Path]] = {}
        for entry, path in conflicts:
            by_manager.setdefault(entry.described(), []).append(path)
        for described in sorted(by_manager):
            lines.append(f"conflicts with {described}:")
            lines.extend(f"- {path_text(p)}" for p in by_manager[described])
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


def manager_from_user_agent(user_agent: str) -> str:
    """The default field manager: the User-Agent up to its first `/`, at most 128 characters."""
    return user_agent.split("/", 1)[0][:128]
