"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

Custom resources get Name plus their CRD's additionalPrinterColumns (or Name and Age when the CRD
declares none), as apiextensions-apiserver prints them; a few built-ins get their usual columns.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from q_operator.emulate.kube import columns
from q_operator.emulate.kube.resources import CRD_GROUP, PrinterColumn, ResourceType

JSON = dict[str, Any]

_AGE = PrinterColumn(
    name="Age",
    type="date",
    json_path=".metadata.creationTimestamp",
    description=columns.CREATION_TIMESTAMP,
)

_TOKEN_RE = re.compile(
    r"""\.\.|\.([A-Za-z0-9_\-/$]+)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(-?\d+)\s*\]|\[\s*\*\s*\]|\[\?\((.*?)\)\]"""
)
_FILTER_RE = re.compile(
    r"""^@((?:\.[A-Za-z0-9_\-/$]+)+)\s*(?:(==|!=)\s*(?:"([^"]*)"|'([^']*)'|(-?[\d.]+|true|false)))?$"""
)


def _steps(path: str) -> list[tuple[str, Any]]:
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    steps: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN_RE.match(path, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath {path!r}")
        field, quoted1, quoted2, index, filt = m.group(1), m.group(2), m.group(3), m.group(4), m.group(5)
        text = m.group(0)
        if text == "..":
            raise ValueError("recursive descent is not supported")
        if field is not None:
            steps.append(("field", field))
        elif quoted1 is not None or quoted2 is not None:
            steps.append(("field", quoted1 if quoted1 is not None else quoted2))
        elif index is not None:
            steps.append(("index", int(index)))
        elif filt is not None:
            steps.append(("filter", filt.strip()))
        else:
            steps.append(("all", None))
        pos = m.end()
    return steps


def _filter_match(expr: str, item: Any) -> bool:
    m = _FILTER_RE.match(expr)
    if not m:
        return False
    fields, op, s1, s2, lit = m.groups()
    node: Any = item
    for part in fields.strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    if op is None:
        return True
    expected: Any = s1 if s1 is not None else s2
    if expected is None:
        expected = json.loads(lit)
    equal = node == expected or str(node) == str(expected)
    return equal if op == "==" else not equal


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate a simple JSONPath (fields, indexes, [*], [?(@.a=="b")]) and return every match."""
    current = [obj]
    for kind, arg in _steps(path):
        nxt: list[Any] = []
        for node in current:
            if (kind == "field" and isinstance(node, dict) and arg in node) or (
                kind == "index" and isinstance(node, list) and -len(node) <= arg < len(node)
            ):
                nxt.append(node[arg])
            elif kind == "all":
                nxt.extend(
                    node if isinstance(node, list) else node.values() if isinstance(node, dict) else []
                )
            elif kind == "filter" and isinstance(node, list):
                nxt.extend(item for item in node if _filter_match(arg, item))
        current = nxt
    return current


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        return f"{hours // (24 * 365)}y{(hours % (24 * 365)) // 24}d"
    return f"{hours // (24 * 365)}y"


def _age(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return "<unknown>"
    try:
        then = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _cell(column: PrinterColumn, obj: JSON) -> Any:
    try:
        results = jsonpath(obj, column.json_path)
    except ValueError:
        return None
    if not results:
        return None
    value = results[0]
    if column.type == "date":
        return _age(value)
    if column.type == "integer":
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column.type == "number":
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if column.type == "boolean":
        return value if isinstance(value, bool) else None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _event_cells(obj: JSON) -> list[Any]:
    """The core/v1 Event row, as kubectl's printers build it."""
    first = _age(obj.get("firstTimestamp")) if obj.get("firstTimestamp") else _age(obj.get("eventTime"))
    last = _age(obj.get("lastTimestamp")) if obj.get("lastTimestamp") else first
    count = obj.get("count") or 1
    series = obj.get("series")
    if isinstance(series, dict):
        last = _age(series.get("lastObservedTime"))
        count = series.get("count", count)
    involved = obj.get("involvedObject") or {}
    kind = str(involved.get("kind", "")).lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    source_info = obj.get("source") or {}
    if source_info.get("component"):
        parts = [source_info["component"], source_info.get("host", "")]
    else:
        parts = [obj.get("reportingComponent", ""), obj.get("reportingInstance", "")]
    source = ", ".join(p for p in parts if p)
    return [
        last,
        obj.get("type", ""),
        obj.get("reason", ""),
        target,
        involved.get("fieldPath", ""),
        source,
        obj.get("message", ""),
        first,
        count,
        (obj.get("metadata") or {}).get("name", ""),
    ]


def _crd_cells(obj: JSON) -> list[Any]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    versions = [
        f"{v.get('name')}(storage)" if v.get("storage") else str(v.get("name"))
        for v in spec.get("versions") or []
        if v.get("served", True)
    ]
    conditions = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
    meta = obj.get("metadata") or {}
    return [
        meta.get("name", ""),
        spec.get("scope", ""),
        ",".join(versions),
        meta.get("creationTimestamp", ""),
        spec.get("group", ""),
        names.get("kind", ""),
        ",".join(names.get("shortNames") or []),
        conditions.get("Established") == "True",
    ]


def _builtin_cells(rt: ResourceType, obj: JSON) -> list[Any]:
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    age = _age(meta.get("creationTimestamp"))
    key = rt.key
    if key == ("", "namespaces"):
        return [name, (obj.get("status") or {}).get("phase", ""), age]
    if key == ("", "configmaps"):
        return [name, len(obj.get("data") or {}) + len(obj.get("binaryData") or {}), age]
    if key == ("", "secrets"):
        return [name, obj.get("type", ""), len(obj.get("data") or {}), age]
    if key == ("coordination.k8s.io", "leases"):
        return [name, (obj.get("spec") or {}).get("holderIdentity") or "<none>", age]
    if key in (("", "events"), ("events.k8s.io", "events")):
        return _event_cells(obj)
    if key == (CRD_GROUP, "customresourcedefinitions"):
        return _crd_cells(obj)
    if key in columns.BUILTIN:
        return [name, age]
    return [name, meta.get("creationTimestamp", "")]


def column_definitions(rt: ResourceType) -> list[JSON]:
    if rt.is_custom:
        shown = rt.printer_columns or (_AGE,)
        return [dict(columns.NAME)] + [
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "description": c.description
                or f"Custom resource definition column (in JSONPath format): {c.json_path}",
                "priority": c.priority,
            }
            for c in shown
        ]
    return [dict(c) for c in columns.BUILTIN.get(rt.key, [columns.NAME, columns.CREATED_AT])]


def cells(rt: ResourceType, obj: JSON) -> list[Any]:
    if rt.is_custom:
        shown = rt.printer_columns or (_AGE,)
        return [obj.get("metadata", {}).get("name", "")] + [_cell(c, obj) for c in shown]
    return _builtin_cells(rt, obj)


def partial_metadata(obj: JSON, version: str = "v1") -> JSON:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": obj.get("metadata", {}),
    }


def table(
    rt: ResourceType,
    objects: list[JSON],
    resource_version: str,
    include: str,
    cont: str = "",
    remaining: int | None = None,
    version: str = "v1",
) -> JSON:
    """A Table of `objects` with the resource's columns; `include` is None, Metadata or Object."""
    rows = []
    for obj in objects:
        row: JSON = {"cells": cells(rt, obj)}
        if include == "Object":
            row["object"] = obj
        elif include == "None":
            row["object"] = None
        else:
            row["object"] = partial_metadata(obj, version)
        rows.append(row)
    meta: JSON = {"resourceVersion": resource_version}
    if cont:
        meta["continue"] = cont
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    return {
        "kind": "Table",
        "apiVersion": f"meta.k8s.io/{version}",
        "metadata": meta,
        "columnDefinitions": column_definitions(rt),
        "rows": rows,
    }
