"""Check objects against a generated CRD the way an API server would, without one.

Used by the CRD and sample tests: the API server's structural-schema rules, the openAPIV3Schema
(through jsonschema), unknown fields (kubectl's strict field validation) and the CEL rules
(`x-kubernetes-validations`, through cel-python).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import celpy
import jsonschema

JsonDict = dict[str, Any]

_CEL = celpy.Environment()


def openapi_schema(crd: Mapping[str, Any]) -> JsonDict:
    schema: JsonDict = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(schema: JsonDict, path: str = "") -> Iterator[tuple[str, JsonDict]]:
    """Every schema node with its path (properties by name, items as [], map values as {})."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def structural_problems(schema: JsonDict) -> list[str]:
    """Where the schema breaks the API server's structural rules (or our own: descriptions everywhere)."""
    problems = []
    for path, node in walk(schema):
        where = path or "<root>"
        if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            problems.append(f"{where}: no type")
        for keyword in ("$ref", "$defs", "definitions", "title", "const", "oneOf", "anyOf", "allOf", "not"):
            if keyword in node:
                problems.append(f"{where}: has {keyword}")
        if "default" in node and node["default"] is None:
            problems.append(f"{where}: default null")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{where}: both properties and additionalProperties")
        bare = "properties" not in node and "additionalProperties" not in node
        if node.get("type") == "object" and bare and path != "metadata":
            problems.append(f"{where}: object without properties")
        if node.get("type") != "array" and "items" in node:
            problems.append(f"{where}: items on a non-array")
    return problems


def undescribed(schema: JsonDict) -> list[str]:
    """Properties that `kubectl explain` would show without a description. `metadata` is exempt: the
    API server refuses a description there and publishes ObjectMeta's own."""
    return [
        path
        for path, node in walk(schema)
        if path and path != "metadata" and not path.endswith(("[]", "}")) and not node.get("description")
    ]


def _unknown_fields(schema: JsonDict, value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            if props is not None and key in props:
                yield from _unknown_fields(props[key], child, f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from _unknown_fields(extra, child, f"{path}.{key}")
            elif props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
                yield f'{path}.{key}: unknown field "{key}"'.lstrip(".")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, child in enumerate(value):
            yield from _unknown_fields(schema["items"], child, f"{path}[{i}]")


def _cel_failures(schema: JsonDict, value: Any, path: str) -> Iterator[str]:
    for rule in schema.get("x-kubernetes-validations", []):
        program = _CEL.program(_CEL.compile(rule["rule"]))
        if not bool(program.evaluate({"self": celpy.json_to_cel(value)})):
            where = path + rule.get("fieldPath", "")
            yield f"{where.lstrip('.')}: Invalid value: {rule['message']}"
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            if key in props:
                yield from _cel_failures(props[key], child, f"{path}.{key}")
            elif isinstance(extra, dict):
                yield from _cel_failures(extra, child, f"{path}.{key}")
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, child in enumerate(value):
            yield from _cel_failures(schema["items"], child, f"{path}[{i}]")


def rejections(crd: Mapping[str, Any], obj: Mapping[str, Any]) -> list[str]:
    """Why the API server would refuse `obj` (empty when it would accept it)."""
    schema = openapi_schema(crd)
    errors = [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(dict(obj))
    ]
    errors += list(_unknown_fields(schema, dict(obj), ""))
    if not errors:
        # Like the API server, CEL rules run only on objects that pass the schema.
        errors += list(_cel_failures(schema, dict(obj), ""))
    return errors
