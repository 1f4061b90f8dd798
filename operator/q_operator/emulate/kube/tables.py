"""Server-side printing: the `meta.k8s.io/v1` Table that `kubectl get` asks for.

Custom resources get Name plus their CRD's additionalPrinterColumns (or Name and Age when the CRD
declares none), as apiextensions-apiserver prints them; a few built-ins get their usual columns.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from q_operator.emulate.kube.resources import PrinterColumn, ResourceType

JSON = dict[str, Any]

_NAME_COLUMN = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name automatically. "
    "Name is primarily intended for creation idempotence and configuration definition. Cannot be updated.",
    "priority": 0,
}
_AGE = PrinterColumn(
    name="Age",
    type="date",
    json_path=".metadata.creationTimestamp",
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)
_CREATED_AT = PrinterColumn(
    name="Created At",
    type="date",
    json_path=".metadata.creationTimestamp",
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)

_BUILTIN_COLUMNS: dict[tuple[str, str], tuple[PrinterColumn, ...]] = {
    ("", "namespaces"): (PrinterColumn("Status", "string", ".status.phase"), _AGE),
    ("", "configmaps"): (PrinterColumn("Data", "integer", "#len(.data)+len(.binaryData)"), _AGE),
    ("", "secrets"): (
        PrinterColumn("Type", "string", ".type"),
        PrinterColumn("Data", "integer", "#len(.data)"),
        _AGE,
    ),
    ("", "serviceaccounts"): (_AGE,),
    ("", "events"): (
        PrinterColumn("Last Seen", "date", ".lastTimestamp"),
        PrinterColumn("Type", "string", ".type"),
        PrinterColumn("Reason", "string", ".reason"),
        PrinterColumn("Object", "string", "#object"),
        PrinterColumn("Message", "string", ".message"),
    ),
    ("coordination.k8s.io", "leases"): (PrinterColumn("Holder", "string", ".spec.holderIdentity"), _AGE),
}


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
    if column.json_path == "#object":
        involved = obj.get("involvedObject") or {}
        return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"
    if column.json_path.startswith("#len("):
        fields = re.findall(r"\.(\w+)", column.json_path)
        return sum(len(obj.get(f) or {}) for f in fields)
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


def columns_for(rt: ResourceType) -> tuple[PrinterColumn, ...]:
    if rt.is_custom:
        return rt.printer_columns or (_AGE,)
    return _BUILTIN_COLUMNS.get(rt.key, (_CREATED_AT,))


def partial_metadata(obj: JSON) -> JSON:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(rt: ResourceType, objects: list[JSON], resource_version: str, include: str, cont: str = "") -> JSON:
    """A Table of `objects` with the resource's columns; `include` is None, Metadata or Object."""
    columns = columns_for(rt)
    definitions = [dict(_NAME_COLUMN)] + [
        {
            "name": c.name,
            "type": c.type,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        }
        for c in columns
    ]
    rows = []
    for obj in objects:
        row: JSON = {"cells": [obj.get("metadata", {}).get("name", "")] + [_cell(c, obj) for c in columns]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    meta: JSON = {"resourceVersion": resource_version}
    if cont:
        meta["continue"] = cont
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": definitions,
        "rows": rows,
    }
