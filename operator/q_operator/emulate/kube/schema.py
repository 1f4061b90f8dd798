"""Structural schemas as the API server applies them to custom resources: prune, default, validate.

The order is the API server's: unknown fields are pruned (and reported for fieldValidation), then
defaults are filled in, then the value validations run. Messages follow kube-openapi's validator as
apiextensions-apiserver converts them to field errors.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any

from q_operator.emulate.kube.errors import (
    FieldError,
    duplicate,
    forbidden,
    go_quote,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
    type_name,
)

JSON = dict[str, Any]

OBJECT_META_FIELDS = frozenset(
    {
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    }
)


def child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _preserves(schema: JSON) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


def prune_root(schema: JSON | None, obj: JSON) -> list[str]:
    """Prune a whole object in place: standard metadata fields only, the rest by the schema."""
    unknown: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in [k for k in meta if k not in OBJECT_META_FIELDS]:
            unknown.append(f"metadata.{key}")
            del meta[key]
    if schema is None:
        return unknown
    props = schema.get("properties") or {}
    for key in list(obj):
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key in props:
            unknown.extend(prune(props[key], obj[key], key))
        elif not _preserves(schema):
            unknown.append(key)
            del obj[key]
    return unknown


def prune(schema: JSON, value: Any, path: str) -> list[str]:
    """Drop fields the schema does not know (unless preserved) and return their paths."""
    unknown: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        for key in list(value):
            if props is not None and key in props:
                unknown.extend(prune(props[key], value[key], child(path, key)))
            elif isinstance(additional, dict):
                unknown.extend(prune(additional, value[key], child(path, key)))
            elif (
                additional is True
                or _preserves(schema)
                or (embedded and key in ("apiVersion", "kind", "metadata"))
            ):
                continue
            else:
                # Includes a map where the schema expects no object (an array, say): none of its keys
                # are known.
                unknown.append(child(path, key))
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                unknown.extend(prune(items, item, f"{path}[{i}]"))
    return unknown


def drop_nulls(schema: JSON | None, value: Any) -> None:
    """Remove nulls the schema neither allows (nullable) nor defaults, as the API server does right
    after pruning: `{"color": null}` for a non-nullable color means "unset", not a type error."""
    if isinstance(value, dict):
        props = (schema or {}).get("properties") or {}
        additional = (schema or {}).get("additionalProperties")
        for key in list(value):
            sub = props.get(key) if key in props else additional if isinstance(additional, dict) else None
            if value[key] is None and sub is not None and not sub.get("nullable") and "default" not in sub:
                del value[key]
            else:
                drop_nulls(sub, value[key])
    elif isinstance(value, list):
        items = (schema or {}).get("items")
        for item in value:
            drop_nulls(items if isinstance(items, dict) else None, item)


def apply_defaults(schema: JSON, value: Any) -> None:
    """Fill in `default`s in place, then default inside what is (now) present."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if "default" in sub and (key not in value or (value[key] is None and not sub.get("nullable"))):
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(sub, value[key])
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            props = schema.get("properties") or {}
            for key, item in value.items():
                if key not in props:
                    apply_defaults(additional, item)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in value:
                apply_defaults(items, item)


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _format_ok(fmt: str, value: Any) -> bool:
    """Lenient checks of the formats the API server knows; unknown formats pass."""
    if isinstance(value, str):
        if fmt == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                return False
        elif fmt == "date":
            try:
                datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                return False
        elif fmt == "byte":
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
        elif fmt == "uuid":
            try:
                uuid.UUID(value)
            except ValueError:
                return False
    elif _is_int(value):
        if fmt == "int32":
            return -(2**31) <= int(value) < 2**31
        if fmt == "int64":
            return -(2**63) <= int(value) < 2**63
    return True


def _go_number(value: float) -> str:
    """A number as Go's %v prints it."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def _in_body(name: str) -> str:
    return name or "body"


def _range_error(value: Any, fmt: str, name: str, root: str) -> FieldError | None:
    """kube-openapi's check that a number fits an integer schema's format (a plain error: at the root)."""
    limit = 2**31 if fmt == "int32" else 2**63
    if _is_int(value) and -limit <= int(value) < limit:
        return None
    shape = f"with format {fmt}" if fmt else "(default format)"
    return FieldError(
        root or "<nil>",
        "FieldValueInvalid",
        f'Invalid value: "": Checked value must be of type integer {shape} in {name}',
    )


# The JSON type and Go format kube-openapi infers from a decoded value.
_DATA_FORMAT = {"integer": "int64", "number": "float64"}


def _type_error(path: str, name: str, expected: str, got: str) -> FieldError:
    detail = f'{_in_body(name)} in body must be of type {expected}: "{got}"'
    return FieldError(path, "FieldValueTypeInvalid", f"Invalid value: {go_quote(got)}: {detail}")


def validate(schema: JSON, value: Any, name: str, root: str = "") -> list[FieldError]:
    """The value validations of one schema node and everything below it, as kube-openapi runs them.

    `name` is the value's path as the validator names it ("spec.size"); errors are reported at
    `root` + name (root is "status" when the status subresource is validated on its own). Errors
    that kube-openapi raises as plain errors (oneOf, anyOf, number ranges) land on the root.
    Every validator runs, as there: a type error does not stop the others.
    """
    path = child(root, name) if name else (root or "<nil>")
    # x-kubernetes-int-or-string is the type list [integer, string] to the validator.
    kinds = ["integer", "string"] if schema.get("x-kubernetes-int-or-string") else []
    kind = str(schema.get("type") or "")
    kinds = kinds or ([kind] if kind else [])
    fmt = str(schema.get("format") or "")
    if value is None:
        if kinds and not schema.get("nullable"):
            return [_type_error(path, name, ",".join(kinds), "null")]
        return []
    errs: list[FieldError] = []
    actual = type_name(value)
    if kinds:
        float_int = actual == "number" and float(value).is_integer() and "integer" in kinds
        int_float = actual == "integer" and "number" in kinds
        data_format = _DATA_FORMAT.get(actual, "")
        if (
            actual not in ("string", "array")
            and fmt
            and not (actual in kinds or data_format == fmt or float_int or int_float)
        ):
            errs.append(_type_error(path, name, fmt, data_format))
        elif not (actual in kinds or float_int or int_float):
            errs.append(_type_error(path, name, ",".join(kinds), actual))
    errs.extend(_validate_combinators(schema, value, name, root))
    if isinstance(value, str):
        errs.extend(_validate_string(schema, value, path, name))
        if fmt and not _format_ok(fmt, value):
            errs.append(_type_error(path, name, fmt, value))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if kind == "integer":
            ranged = _range_error(value, fmt, name, root)
            if ranged is not None:
                errs.append(ranged)
        errs.extend(_validate_number(schema, value, path, name))
    elif isinstance(value, list):
        errs.extend(_validate_array(schema, value, path, name, root))
    if "enum" in schema and value not in schema["enum"]:
        errs.append(not_supported(path, value, list(schema["enum"])))
    if isinstance(value, dict):
        errs.extend(_validate_object(schema, value, path, name, root))
    return errs


def _validate_string(schema: JSON, value: str, path: str, name: str) -> list[FieldError]:
    """maxLength, then minLength, then pattern: the first that fails is the only error."""
    if "maxLength" in schema and len(value) > int(schema["maxLength"]):
        return [too_long(path, int(schema["maxLength"]))]
    if "minLength" in schema and len(value) < int(schema["minLength"]):
        return [
            invalid(
                path, value, f"{_in_body(name)} in body should be at least {schema['minLength']} chars long"
            )
        ]
    pattern = schema.get("pattern")
    if pattern and not _regex(str(pattern)).search(value):
        return [invalid(path, value, f"{_in_body(name)} in body should match '{pattern}'")]
    return []


def _validate_number(schema: JSON, value: float, path: str, name: str) -> list[FieldError]:
    errs: list[FieldError] = []
    where = _in_body(name)
    step = schema.get("multipleOf")
    if step and (value / step) != int(value / step):
        errs.append(invalid(path, value, f"{where} in body should be a multiple of {_go_number(step)}"))
    if "minimum" in schema:
        low = schema["minimum"]
        if schema.get("exclusiveMinimum") and value <= low:
            errs.append(invalid(path, value, f"{where} in body should be greater than {_go_number(low)}"))
        elif value < low:
            errs.append(
                invalid(path, value, f"{where} in body should be greater than or equal to {_go_number(low)}")
            )
    if "maximum" in schema:
        top = schema["maximum"]
        if schema.get("exclusiveMaximum") and value >= top:
            errs.append(invalid(path, value, f"{where} in body should be less than {_go_number(top)}"))
        elif value > top:
            errs.append(
                invalid(path, value, f"{where} in body should be less than or equal to {_go_number(top)}")
            )
    return errs


def _validate_array(schema: JSON, value: list[Any], path: str, name: str, root: str) -> list[FieldError]:
    errs: list[FieldError] = []
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            errs.extend(validate(items, item, f"{name}[{i}]", root))
    if "minItems" in schema and len(value) < int(schema["minItems"]):
        errs.append(
            invalid(
                path, len(value), f"{_in_body(name)} in body should have at least {schema['minItems']} items"
            )
        )
    if "maxItems" in schema and len(value) > int(schema["maxItems"]):
        errs.append(too_many(path, len(value), int(schema["maxItems"])))
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set" or schema.get("uniqueItems"):
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                errs.append(duplicate(f"{path}[{i}]", item))
            seen.append(item)
    elif list_type == "map":
        keys = list(schema.get("x-kubernetes-list-map-keys") or [])
        seen_keys: list[JSON] = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                ident = {k: item.get(k) for k in keys}
                if ident in seen_keys:
                    errs.append(duplicate(f"{path}[{i}]", ident))
                seen_keys.append(ident)
    return errs


def _validate_object(schema: JSON, value: JSON, path: str, name: str, root: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if "minProperties" in schema and len(value) < int(schema["minProperties"]):
        errs.append(
            invalid(
                path,
                len(value),
                f"{_in_body(name)} in body should have at least {schema['minProperties']} properties",
            )
        )
    if "maxProperties" in schema and len(value) > int(schema["maxProperties"]):
        errs.append(too_many(path, len(value), int(schema["maxProperties"])))
    props = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if key in props:
            errs.extend(validate(props[key], item, child(name, key), root))
        elif isinstance(additional, dict):
            errs.extend(validate(additional, item, child(name, key), root))
    for key in schema.get("required") or []:
        if key not in value:
            errs.append(required(child(path, key) if path != "<nil>" else key))
    return errs


def _best(results: list[list[FieldError]]) -> list[FieldError]:
    """The failures of the alternative that came closest (kube-openapi counts passed checks; the
    first of the ones with fewest errors stands in for that)."""
    failed = [r for r in results if r]
    return min(failed, key=len) if failed else []


def _validate_combinators(schema: JSON, value: Any, name: str, root: str) -> list[FieldError]:
    """allOf/anyOf/oneOf/not: their own failures are plain errors, reported at the root."""
    errs: list[FieldError] = []
    at = root or "<nil>"
    quoted = json.dumps(name)
    any_of = schema.get("anyOf")
    if any_of:
        results = [validate(sub, value, name, root) for sub in any_of]
        if all(results):
            errs.append(invalid(at, "", f"{quoted} must validate at least one schema (anyOf)"))
            errs.extend(_best(results))
    one_of = schema.get("oneOf")
    if one_of:
        results = [validate(sub, value, name, root) for sub in one_of]
        valid = sum(1 for r in results if not r)
        if valid == 0:
            errs.append(
                invalid(at, "", f"{quoted} must validate one and only one schema (oneOf). Found none valid")
            )
            errs.extend(_best(results))
        elif valid > 1:
            errs.append(
                invalid(
                    at,
                    "",
                    f"{quoted} must validate one and only one schema (oneOf). "
                    f"Found {valid} valid alternatives",
                )
            )
    all_of = schema.get("allOf")
    if all_of:
        results = [validate(sub, value, name, root) for sub in all_of]
        failed = [e for r in results for e in r]
        if failed:
            errs.append(invalid(at, "", f"{quoted} must validate all the schemas (allOf)"))
            errs.extend(failed)
    negated = schema.get("not")
    if isinstance(negated, dict) and not validate(negated, value, name, root):
        errs.append(invalid(at, "", f"{quoted} must not validate the schema (not)"))
    return errs


def validate_root(schema: JSON | None, obj: JSON) -> list[FieldError]:
    """Validate everything but metadata (which the server checks itself) against the schema."""
    if schema is None:
        return []
    errs: list[FieldError] = []
    props = schema.get("properties") or {}
    for key, item in obj.items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if key in props:
            errs.extend(validate(props[key], item, key))
    for key in schema.get("required") or []:
        if key not in obj:
            errs.append(required(key))
    return errs


def validate_status(schema: JSON | None, obj: JSON) -> list[FieldError]:
    """What a status subresource write validates: only `status`, named from inside it."""
    if schema is None or "status" not in obj:
        return []
    status_schema = (schema.get("properties") or {}).get("status")
    if not isinstance(status_schema, dict):
        return []
    return validate(status_schema, obj["status"], "", "status")


def default_root(schema: JSON | None, obj: JSON) -> None:
    if schema is None:
        return
    for key, sub in (schema.get("properties") or {}).items():
        if key in ("apiVersion", "kind", "metadata"):
            continue
        if "default" in sub and key not in obj:
            obj[key] = copy.deepcopy(sub["default"])
        if key in obj:
            apply_defaults(sub, obj[key])


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def unchanged_at(error: FieldError, new: JSON, old: JSON) -> bool:
    """Whether the value an error is about is the same in the old object (ratcheting).

    Lists are atomic here: below a list index, the whole list must be unchanged. A Required error is
    about its parent object. Paths that cannot be followed (map keys with dots) count as changed.
    """
    path = error.field
    if error.reason == "FieldValueRequired":
        path = path.rsplit(".", 1)[0] if "." in path else ""
    if not path or path == "<nil>":
        return False
    tokens: list[str] = []
    for name, index in _PATH_TOKEN.findall(path):
        if index:
            break
        tokens.append(name)
    new_node: Any = new
    old_node: Any = old
    for token in tokens:
        if not (isinstance(new_node, dict) and isinstance(old_node, dict)):
            return False
        if token not in new_node or token not in old_node:
            return False
        new_node, old_node = new_node[token], old_node[token]
    return bool(new_node == old_node)


_JUNCTORS = ("allOf", "anyOf", "oneOf")
_NOT_IN_JUNCTORS = (
    "type",
    "default",
    "description",
    "nullable",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
)
_INT_OR_STRING = [{"type": "integer"}, {"type": "string"}]


def structural_errors(schema: JSON, path: str) -> list[FieldError]:
    """The structural-schema rules a CRD version's openAPIV3Schema must meet to be accepted."""
    errs: list[FieldError] = []
    if not schema.get("type"):
        errs.append(required(f"{path}.type", "must not be empty at the root"))
    elif schema["type"] != "object":
        errs.append(invalid(f"{path}.type", schema["type"], "must be object at the root"))
    errs.extend(_structural_node(schema, path, "", root=True))
    return errs


def _structural_node(node: JSON, path: str, role: str, root: bool = False) -> list[FieldError]:
    errs: list[FieldError] = []
    typed = (
        node.get("type")
        or node.get("x-kubernetes-int-or-string")
        or node.get("x-kubernetes-preserve-unknown-fields")
    )
    if not root and not typed:
        errs.append(required(f"{path}.type", f"must not be empty for specified {role}"))
    if "properties" in node and "additionalProperties" in node:
        errs.append(
            forbidden(
                f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"
            )
        )
    for key, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            errs.extend(_structural_node(sub, f"{path}.properties[{key}]", "object fields"))
    if isinstance(node.get("items"), dict):
        errs.extend(_structural_node(node["items"], f"{path}.items", "array items"))
    if isinstance(node.get("additionalProperties"), dict):
        errs.extend(
            _structural_node(node["additionalProperties"], f"{path}.additionalProperties", "map values")
        )
    for junctor in _JUNCTORS:
        subs = node.get(junctor) or []
        if node.get("x-kubernetes-int-or-string") and junctor == "anyOf" and subs == _INT_OR_STRING:
            continue
        for i, sub in enumerate(subs):
            if isinstance(sub, dict):
                errs.extend(_junctor_node(sub, f"{path}.{junctor}[{i}]"))
    if isinstance(node.get("not"), dict):
        errs.extend(_junctor_node(node["not"], f"{path}.not"))
    return errs


def _junctor_node(node: JSON, path: str) -> list[FieldError]:
    """Inside allOf/anyOf/oneOf/not only value validations are allowed."""
    errs = [
        forbidden(f"{path}.{key}", "must be empty to be structural")
        for key in _NOT_IN_JUNCTORS
        if key in node
    ]
    for key, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            errs.extend(_junctor_node(sub, f"{path}.properties[{key}]"))
    if isinstance(node.get("items"), dict):
        errs.extend(_junctor_node(node["items"], f"{path}.items"))
    for junctor in (*_JUNCTORS, "not"):
        subs = node.get(junctor)
        for i, sub in enumerate(subs if isinstance(subs, list) else [subs] if isinstance(subs, dict) else []):
            errs.extend(_junctor_node(sub, f"{path}.{junctor}[{i}]" if junctor != "not" else f"{path}.not"))
    return errs


_REPEAT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def crd_schema_errors(root: JSON, path: str) -> list[FieldError]:
    """Further checks a real server makes of a CRD schema: root metadata may say nothing but
    `type: object` (and name/generateName), patterns must compile as Go (RE2) regular expressions,
    and CEL rules must compile."""
    from q_operator.emulate.kube import cel

    errs: list[FieldError] = []
    meta = (root.get("properties") or {}).get("metadata")
    if isinstance(meta, dict):
        rest = {k: v for k, v in meta.items() if k not in ("type", "properties")}
        props = set(meta.get("properties") or {})
        if rest or not props <= {"name", "generateName"}:
            errs.append(
                forbidden(
                    f"{path}.properties[metadata]",
                    "must not specify anything other than name and generateName, but metadata is implicitly "
                    "specified",
                )
            )

    def walk(node: Any, where: str) -> None:
        if not isinstance(node, dict):
            return
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            for m in _REPEAT.finditer(pattern):
                if any(g and int(g) > 1000 for g in m.groups()):
                    detail = (
                        "must be a valid regular expression, but isn't: error parsing regexp: invalid repeat "
                        f"count: `{m.group(0)}`"
                    )
                    errs.append(invalid(f"{where}.pattern", pattern, detail))
                    break
        for i, rule in enumerate(node.get("x-kubernetes-validations") or []):
            problem = cel.compile_error(str(rule.get("rule", ""))) if isinstance(rule, dict) else None
            if problem is not None:
                shown = {
                    "Rule": rule.get("rule", ""),
                    "Message": rule.get("message", ""),
                    "MessageExpression": rule.get("messageExpression", ""),
                    "Reason": rule.get("reason"),
                    "FieldPath": rule.get("fieldPath", ""),
                    "OptionalOldSelf": rule.get("optionalOldSelf"),
                }
                value = json.dumps(shown, separators=(",", ":"))
                errs.append(
                    FieldError(
                        f"{where}.x-kubernetes-validations[{i}].rule",
                        "FieldValueInvalid",
                        f"Invalid value: {value}: compilation failed: {problem}",
                    )
                )
        for key, sub in (node.get("properties") or {}).items():
            walk(sub, f"{where}.properties[{key}]")
        walk(node.get("items"), f"{where}.items")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{where}.additionalProperties")

    walk(root, path)
    return errs
